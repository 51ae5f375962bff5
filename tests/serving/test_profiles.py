"""Every shipped profile is a config vLLM's own parser accepts, and plans as fitting its card.

The parser is the installed vLLM's (`vllm serve --config` path): options are read from the YAML,
validated, and turned into engine args; no engine config is built, so no model is downloaded.
"""

from __future__ import annotations

import pytest

from serving.planner import find_model, plan_profile, reference_gpu
from serving.profiles import EMBEDDED_PROFILE, PROFILES_DIR, load_profile, profile_names

pytest.importorskip("vllm", reason="needs vLLM (the cpu extra) to check its parser")

from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.launchers.cli_args import (
    make_arg_parser,
    validate_parsed_serve_args,
)
from vllm.tool_parsers import ToolParserManager
from vllm.utils.argparse_utils import FlexibleArgumentParser

GPU_PROFILES = [name for name in profile_names() if reference_gpu(name) is not None]


def test_qwen_profiles_cover_12_to_80_gb_cards_with_awq_and_fp8_variants() -> None:
    sizes = {name.rsplit("-", 1)[1] for name in GPU_PROFILES}
    assert sizes == {"12gb", "16gb", "24gb", "40gb", "80gb"}
    models = {load_profile(name).model for name in GPU_PROFILES}
    assert {find_model(model).quantization.value for model in models} == {"bf16", "fp8", "awq"}


@pytest.mark.parametrize("name", profile_names())
def test_profile_passes_vllms_own_argument_parser(name: str) -> None:
    profile = load_profile(name)
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(
        ["--config", str(PROFILES_DIR / f"{name}.yaml")]
    )
    validate_parsed_serve_args(args)
    engine_args = AsyncEngineArgs.from_cli_args(args)
    assert engine_args.model == profile.model
    assert engine_args.max_model_len == profile.options["max-model-len"]
    assert engine_args.max_num_seqs == profile.max_num_seqs == profile.options["max-num-seqs"]


@pytest.mark.parametrize("name", profile_names())
def test_profile_has_a_description_and_no_option_current_vllm_rejects_or_slows(name: str) -> None:
    profile = load_profile(name)
    assert profile.description, f"{name}.yaml must start with a # comment describing it"
    assert "swap-space" not in profile.options  # removed from vLLM's engine args
    # `quantization: awq` forces the slow AWQ GEMM kernel; vLLM picks awq_marlin by itself.
    assert profile.options.get("quantization") != "awq"


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_gpu_profile_plans_as_fitting_its_target_card(name: str) -> None:
    card = reference_gpu(name)
    assert card is not None
    plan = plan_profile(load_profile(name), card.memory_bytes, gpu_name=card.name)
    assert plan.fits, plan.explain()
    assert plan.max_concurrency >= 2, "a research run keeps several calls in flight"


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_qwen_profile_serves_one_name_with_hermes_tool_calls(name: str) -> None:
    options = load_profile(name).options
    assert options["served-model-name"] == "qwen3-4b-instruct-2507"
    assert options["enable-auto-tool-choice"] is True
    assert options["tool-call-parser"] == "hermes"
    assert "hermes" in ToolParserManager.list_registered()


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_gpu_profile_orders_its_queue_by_the_gateways_priority(name: str) -> None:
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(
        ["--config", str(PROFILES_DIR / f"{name}.yaml")]
    )
    assert AsyncEngineArgs.from_cli_args(args).scheduling_policy == "priority"


def test_seed_profile_keeps_the_a10_settings() -> None:
    options = load_profile("qwen3-4b-24gb").options
    assert options["model"] == "Qwen/Qwen3-4B-Instruct-2507"
    assert (options["max-model-len"], options["block-size"], options["max-num-seqs"]) == (
        8192,
        16,
        8,
    )
    assert options["max-num-batched-tokens"] == 4096
    assert options["gpu-memory-utilization"] == 0.9


def test_embedded_profile_keeps_the_settings_verified_to_start_on_cpu() -> None:
    options = load_profile(EMBEDDED_PROFILE).options
    assert options["model"] == "smollm2-135m-instruct"
    assert options["enforce-eager"] is True
    assert options["optimization-level"] == 0
    assert (options["max-num-seqs"], options["max-model-len"]) == (8, 4096)
    assert plan_profile(load_profile(EMBEDDED_PROFILE), None).fits
