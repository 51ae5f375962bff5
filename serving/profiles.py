"""vLLM launch profiles: YAML files in vLLM's own `vllm serve --config` format (long-form keys)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from serving.errors import ConfigError

PROFILES_DIR = Path(__file__).parent / "profiles"
EMBEDDED_PROFILE = "embedded-cpu"


class ModelAbility(StrEnum):
    """What a served model can be trusted to do, declared with it in serving/models.yaml."""

    # Write a full report: an outline and sections that synthesize the findings. Without it
    # the reporter writes the extractive answer card.
    FULL_REPORT = "full-report"
    # Judge whether a passage entails a sentence. Without it citations get the lexical check.
    ENTAILMENT = "entailment"


@dataclass(frozen=True)
class Profile:
    """A named set of vLLM engine options, exactly as `vllm serve --config` reads them."""

    name: str
    options: dict[str, Any]
    description: str = ""

    @property
    def model(self) -> str:
        """The model the profile serves (a hub id, or a registry name for the embedded one)."""
        return str(self.options["model"])

    @property
    def served_model_name(self) -> str:
        """The name clients ask for."""
        name = self.options.get("served-model-name", self.model)
        return str(name[0] if isinstance(name, list) else name)

    @property
    def max_num_seqs(self) -> int | None:
        """The engine's sequence cap (`max-num-seqs`), if the profile sets one."""
        value = self.options.get("max-num-seqs")
        return None if value is None else int(value)

    def with_options(self, **changes: Any) -> Profile:
        """A copy with some options replaced (keys in long form, `_` or `-` accepted)."""
        merged = dict(self.options)
        merged.update({key.replace("_", "-"): value for key, value in changes.items()})
        return Profile(self.name, merged, self.description)

    def write_config(self, path: Path) -> Path:
        """Write the options as a `vllm serve --config` YAML file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.options, sort_keys=False))
        return path


def profile_names() -> list[str]:
    """Every profile shipped with Fawn."""
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> Profile:
    """Load a shipped profile by name, or a profile file by path."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"Unknown profile {name!r}. Choose one of: {', '.join(profile_names())}, "
            "or pass the path of a vLLM config YAML."
        )
    text = path.read_text()
    options = yaml.safe_load(text) or {}
    if not isinstance(options, dict) or "model" not in options:
        raise ConfigError(f"Profile {path} must be a YAML mapping with a `model` key.")
    return Profile(path.stem, options, _leading_comment(text))


def _leading_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)
