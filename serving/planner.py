"""The memory planner: will a model, at a given context and concurrency, fit a GPU under vLLM?

vLLM reserves `gpu-memory-utilization x total` of the GPU (the budget), loads the weights,
profiles one forward pass, and gives what is left of the budget to the KV cache. It refuses to
start when that cache cannot hold one sequence of `max-model-len` tokens. The planner redoes that
arithmetic from the model's architecture before anything is launched:

    weights      parameters x bytes per weight, by quantization (`weight_bytes`)
    overhead     runtime + CUDA-graph allowances, activations and sampler (`estimate_overhead`)
    KV cache     budget - weights - overhead
    per token    2 (K and V) x layers x KV heads x head_dim x bytes per KV element
    capacity     the whole blocks of `block-size` tokens that fit in the KV cache
    concurrency  capacity / max-model-len (sequences at full length at once)
    headroom     KV cache - one full-length sequence (negative: vLLM would refuse to start)

On vLLM's CPU build the KV cache is a fixed space (`VLLM_CPU_KVCACHE_SPACE`), not a share of
device memory, so a CPU plan only checks that this space holds one full-length sequence.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from serving.embedded_model import EMBEDDED_MODEL_NAME
from serving.errors import ConfigError, FawnError
from serving.profiles import EMBEDDED_PROFILE, ModelAbility, Profile, load_profile, profile_names

if TYPE_CHECKING:
    from serving.gpu import GpuReading

MODELS_FILE = Path(__file__).with_name("models.yaml")

MiB, GiB = 1 << 20, 1 << 30

# Non-torch memory vLLM measures while profiling (cuBLAS and attention workspaces, NCCL buffers)
# plus allocator fragmentation. vLLM's logs show 0.1-1.8 GiB on one GPU; take the high end.
RUNTIME_ALLOWANCE_BYTES = 1 * GiB
# Captured CUDA graphs keep their own memory pool (a few hundred MiB for models this size).
CUDA_GRAPH_ALLOWANCE_BYTES = GiB // 2
# The CUDA context sits outside the budget: vLLM starts only if free memory >= the budget.
CUDA_CONTEXT_BYTES = GiB // 2
# Sampling holds fp32 logits for every running sequence plus a few same-sized work tensors.
SAMPLER_COPIES = 4
FP8_SCALE_BLOCK = 128 * 128
DEFAULT_INT4_GROUP_SIZE = 128
GPU_BLOCK_SIZE = 16
CPU_BLOCK_SIZE = 128
# The KV space Fawn gives vLLM's CPU build; 1 GiB holds ~46k tokens of SmolLM2.
CPU_KV_CACHE_BYTES = 1 * GiB
MAX_SUGGESTED_UTILIZATION = 0.95
_FP8_KV_DTYPES = frozenset({"fp8", "fp8_e4m3", "fp8_e5m2"})
_16BIT_KV_DTYPES = frozenset({"bfloat16", "float16"})


class Quantization(StrEnum):
    """How a checkpoint stores its linear-layer weights."""

    BF16 = "bf16"
    FP8 = "fp8"
    AWQ = "awq"
    GPTQ = "gptq"


# Preferred first when two profiles target the same card: higher precision wins.
_QUALITY = {Quantization.BF16: 3, Quantization.FP8: 2, Quantization.AWQ: 1, Quantization.GPTQ: 1}


class PlanDoesNotFit(FawnError):
    """The memory planner refuses a launch; `plan` holds the numbers and the suggested fixes."""

    def __init__(self, plan: MemoryPlan) -> None:
        super().__init__(plan.explain())
        self.plan = plan


@dataclass(frozen=True)
class ModelSpec:
    """A model's architecture: what its weights and its KV cache cost."""

    name: str
    hf_id: str
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    parameters: int
    native_context: int
    tie_word_embeddings: bool = True
    quantization: Quantization = Quantization.BF16
    group_size: int = DEFAULT_INT4_GROUP_SIZE
    base: str | None = None
    abilities: frozenset[ModelAbility] = frozenset()

    @property
    def family(self) -> str:
        """The unquantized model this checkpoint derives from (itself when it is one)."""
        return self.base or self.name

    @property
    def embedding_parameters(self) -> int:
        """Input embeddings plus the LM head (one shared matrix when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    def kv_bytes_per_token(self, element_bytes: int) -> int:
        """Bytes of K and V cached per token across every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * element_bytes

    def weight_bytes(self, quantization: Quantization, dtype_bytes: int = 2) -> int:
        """Bytes of weights on the device when stored as `quantization`."""
        # Quantized checkpoints keep embeddings and the LM head unquantized; the decoder's norms
        # (<0.01% of parameters) are counted with the linear layers.
        embeddings = self.embedding_parameters * dtype_bytes
        linear = self.parameters - self.embedding_parameters
        if quantization is Quantization.BF16:
            return embeddings + linear * dtype_bytes
        if quantization is Quantization.FP8:
            return embeddings + linear + math.ceil(linear / FP8_SCALE_BLOCK) * 4
        # int4: half a byte per weight, plus per group a 16-bit scale and a packed 4-bit zero.
        groups = math.ceil(linear / self.group_size)
        return embeddings + math.ceil(linear / 2) + groups * 2 + math.ceil(groups / 2)


@dataclass(frozen=True)
class PlanRequest:
    """What to plan: a model, the device, and vLLM's memory knobs (Fawn's seed defaults)."""

    model: ModelSpec
    gpu_memory_bytes: int | None = None
    gpu_memory_used_bytes: int = 0
    gpu_memory_utilization: float = 0.9
    max_model_len: int = 8192
    max_num_seqs: int = 8
    max_num_batched_tokens: int = 4096
    kv_cache_dtype: str = "auto"
    quantization: Quantization | None = None
    dtype_bytes: int = 2
    block_size: int | None = None
    enforce_eager: bool = False
    kv_cache_memory_bytes: int | None = None
    gpu_name: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"gpu-memory-utilization must be in (0, 1], not {self.gpu_memory_utilization}."
            )
        for name in ("max_model_len", "max_num_seqs", "max_num_batched_tokens"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number.")
        if self.max_model_len > self.model.native_context:
            raise ConfigError(
                f"max-model-len {self.max_model_len:,} exceeds {self.model.name}'s native context "
                f"of {self.model.native_context:,} tokens; lower it to at most that."
            )
        kv_element_bytes(self.kv_cache_dtype, self.dtype_bytes)
        if self.gpu_memory_bytes is None and self.kv_cache_memory_bytes is None:
            raise ConfigError("Give the GPU's memory (or, on CPU, the KV cache size) to plan.")

    @property
    def on_gpu(self) -> bool:
        """False for vLLM's CPU build, whose KV cache is a fixed space in RAM."""
        return self.gpu_memory_bytes is not None

    @property
    def device(self) -> str:
        """The device in words, for messages."""
        if self.gpu_memory_bytes is None:
            return f"vLLM's CPU KV space of {format_bytes(self.kv_cache_memory_bytes or 0)}"
        size = format_bytes(self.gpu_memory_bytes)
        return f"the {self.gpu_name} ({size})" if self.gpu_name else f"a GPU of {size}"

    @property
    def weight_quantization(self) -> Quantization:
        """The requested quantization, else the checkpoint's own."""
        return self.quantization or self.model.quantization


@dataclass(frozen=True)
class Overhead:
    """Memory vLLM uses besides weights and KV cache (allowances documented at the top)."""

    runtime_bytes: int
    cuda_graph_bytes: int
    activation_bytes: int
    sampler_bytes: int

    @property
    def total_bytes(self) -> int:
        """All of it."""
        parts = (self.runtime_bytes, self.cuda_graph_bytes, self.activation_bytes)
        return sum(parts) + self.sampler_bytes


@dataclass(frozen=True)
class MemoryPlan:
    """The planner's answer: where the memory goes, what fits, and how to fix what does not."""

    request: PlanRequest
    weight_bytes: int
    overhead: Overhead
    budget_bytes: int | None
    kv_cache_bytes: int
    kv_bytes_per_token: int
    block_size: int
    kv_capacity_tokens: int
    problems: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        """True when vLLM would start with these settings."""
        return not self.problems

    @property
    def one_sequence_kv_bytes(self) -> int:
        """KV cache one max-model-len sequence needs, in whole blocks."""
        blocks = math.ceil(self.request.max_model_len / self.block_size)
        return blocks * self.block_size * self.kv_bytes_per_token

    @property
    def reserved_bytes(self) -> int:
        """What vLLM takes of the GPU at start: the budget, or everything with a fixed KV size."""
        if self.budget_bytes is not None:
            return self.budget_bytes
        return self.weight_bytes + self.overhead.total_bytes + self.kv_cache_bytes

    @property
    def free_bytes(self) -> int:
        """GPU memory free for vLLM once other processes and its CUDA context are counted."""
        used = self.request.gpu_memory_used_bytes + CUDA_CONTEXT_BYTES
        return (self.request.gpu_memory_bytes or 0) - used

    @property
    def start_shortfall_bytes(self) -> int:
        """How much more free memory vLLM needs to start (0 or less: enough; 0 on CPU)."""
        if not self.request.on_gpu:
            return 0
        return self.reserved_bytes - self.free_bytes

    @property
    def max_concurrency(self) -> float:
        """How many max-model-len sequences the KV cache holds at once."""
        return self.kv_capacity_tokens / self.request.max_model_len

    @property
    def headroom_bytes(self) -> int:
        """KV cache beyond one full-length sequence; negative is the shortfall."""
        return self.kv_cache_bytes - self.one_sequence_kv_bytes

    def explain(self) -> str:
        """One line: what does not fit, by how much, and which knob fixes it."""
        if self.fits:
            return f"{self.request.model.name} fits {self.request.device}."
        fixes = "; or ".join(self.suggestions) or "use a larger GPU"
        return (
            f"{self.request.model.name} does not fit {self.request.device}: "
            f"{' '.join(self.problems)} Fix: {fixes}."
        )


@dataclass(frozen=True)
class ReferenceGpu:
    """The smallest common card of a memory class, as NVML reports its total."""

    name: str
    memory_bytes: int


# NVML totals are a little under the marketing size; plan against the smallest common card.
REFERENCE_GPUS = {
    12: ReferenceGpu("RTX 4070 12 GB", 12282 * MiB),
    16: ReferenceGpu("T4 16 GB", 15360 * MiB),
    24: ReferenceGpu("A10 24 GB", 23028 * MiB),
    40: ReferenceGpu("A100 40 GB", 40536 * MiB),
    80: ReferenceGpu("H100 80 GB", 81559 * MiB),
}
_SIZE_SUFFIX = re.compile(r"-(\d+)gb$")


def reference_gpu(profile_name: str) -> ReferenceGpu | None:
    """The card a `...-24gb` style profile targets; None for profiles with no size class."""
    match = _SIZE_SUFFIX.search(profile_name)
    return REFERENCE_GPUS.get(int(match.group(1))) if match else None


@functools.cache
def model_registry() -> dict[str, ModelSpec]:
    """Every model in serving/models.yaml, by registry name."""
    raw: dict[str, dict[str, Any]] = yaml.safe_load(MODELS_FILE.read_text())
    registry: dict[str, ModelSpec] = {}
    for name, entry in raw.items():
        fields = {**raw[entry["base"]], **entry} if "base" in entry else dict(entry)
        registry[name] = ModelSpec(
            name=name,
            quantization=Quantization(fields.pop("quantization", "bf16")),
            abilities=frozenset(ModelAbility(a) for a in fields.pop("abilities", ())),
            **{key.replace("-", "_"): value for key, value in fields.items()},
        )
    return registry


def find_model(name: str) -> ModelSpec:
    """A registry model by registry name, hub id, or a local dir named after it."""
    registry = model_registry()
    wanted = name.lower()
    for spec in registry.values():
        if wanted in (spec.name, spec.hf_id.lower()) or Path(name).name == spec.name:
            return spec
    raise ConfigError(
        f"Unknown model {name!r}: the planner knows {', '.join(sorted(registry))}. "
        f"Add its architecture to {MODELS_FILE}."
    )


def model_abilities(name: str) -> frozenset[ModelAbility]:
    """What the model `name` (registry name, hub id or model dir) can do; nothing for a model
    the registry does not know, so an unknown model gets the safe, extractive report."""
    try:
        return find_model(name).abilities
    except ConfigError:
        return frozenset()


def kv_element_bytes(kv_cache_dtype: str, dtype_bytes: int = 2) -> int:
    """Bytes per cached K or V element for vLLM's `kv-cache-dtype`."""
    if kv_cache_dtype == "auto":
        return dtype_bytes
    if kv_cache_dtype in _FP8_KV_DTYPES:
        return 1
    if kv_cache_dtype in _16BIT_KV_DTYPES:
        return 2
    known = ", ".join(["auto", *sorted(_16BIT_KV_DTYPES | _FP8_KV_DTYPES)])
    raise ConfigError(f"The planner does not know kv-cache-dtype {kv_cache_dtype!r}; use {known}.")


def estimate_overhead(request: PlanRequest) -> Overhead:
    """The non-weight, non-KV memory vLLM needs: fixed allowances plus peak activations."""
    spec = request.model
    # One layer's peak while prefilling a full batch: the residual stream, its normed copy, the
    # attention and MLP outputs (4 x hidden), the QKV projection, and the MLP's gate/up output
    # plus its activation (3 x intermediate), for every batched token.
    qkv = (spec.attention_heads + 2 * spec.kv_heads) * spec.head_dim
    per_token = 4 * spec.hidden_size + 3 * spec.intermediate_size + qkv
    activations = request.max_num_batched_tokens * per_token * request.dtype_bytes
    sampler = request.max_num_seqs * spec.vocab_size * 4 * SAMPLER_COPIES
    if not request.on_gpu:
        return Overhead(0, 0, activations, sampler)
    graphs = 0 if request.enforce_eager else CUDA_GRAPH_ALLOWANCE_BYTES
    return Overhead(RUNTIME_ALLOWANCE_BYTES, graphs, activations, sampler)


def plan_memory(request: PlanRequest) -> MemoryPlan:
    """Plan `request`; a plan that does not fit carries its problems and suggested fixes."""
    plan = _plan(request)
    if plan.fits:
        return plan
    return replace(plan, suggestions=tuple(_suggestions(plan)))


def _plan(request: PlanRequest) -> MemoryPlan:
    spec = request.model
    weights = spec.weight_bytes(request.weight_quantization, request.dtype_bytes)
    overhead = estimate_overhead(request)
    per_token = spec.kv_bytes_per_token(
        kv_element_bytes(request.kv_cache_dtype, request.dtype_bytes)
    )
    block = request.block_size or (GPU_BLOCK_SIZE if request.on_gpu else CPU_BLOCK_SIZE)
    budget = None
    if request.kv_cache_memory_bytes is not None:
        kv_cache = request.kv_cache_memory_bytes
    else:
        budget = int((request.gpu_memory_bytes or 0) * request.gpu_memory_utilization)
        kv_cache = budget - weights - overhead.total_bytes
    capacity = max(kv_cache, 0) // (per_token * block) * block
    plan = MemoryPlan(request, weights, overhead, budget, kv_cache, per_token, block, capacity)
    return replace(plan, problems=tuple(_problems(plan)))


def _problems(plan: MemoryPlan) -> list[str]:
    request = plan.request
    problems = []
    if plan.start_shortfall_bytes > 0:
        problems.append(
            f"vLLM would reserve {format_bytes(plan.reserved_bytes)} but only "
            f"{format_bytes(plan.free_bytes)} is free after other processes and the CUDA "
            f"context; short by {format_bytes(plan.start_shortfall_bytes)}."
        )
    fixed = plan.weight_bytes + plan.overhead.total_bytes
    if plan.budget_bytes is not None and fixed > plan.budget_bytes:
        problems.append(
            f"the weights ({format_bytes(plan.weight_bytes)}) and runtime overhead "
            f"({format_bytes(plan.overhead.total_bytes)}) need {format_bytes(fixed)} but the "
            f"budget is {format_bytes(plan.budget_bytes)}; short by "
            f"{format_bytes(fixed - plan.budget_bytes)}."
        )
    elif plan.headroom_bytes < 0:
        problems.append(
            f"one {request.max_model_len:,}-token sequence needs "
            f"{format_bytes(plan.one_sequence_kv_bytes)} of KV cache but only "
            f"{format_bytes(max(plan.kv_cache_bytes, 0))} is left for it; short by "
            f"{format_bytes(-plan.headroom_bytes)}."
        )
    return problems


def _suggestions(plan: MemoryPlan) -> list[str]:
    """Concrete knob settings that make the plan fit, each one checked by planning it."""
    request = plan.request
    found = []
    if (length := _fitting_max_model_len(plan)) is not None:
        found.append(f"--max-model-len {length}")
    if kv_element_bytes(request.kv_cache_dtype, request.dtype_bytes) > 1:
        fp8 = _plan(replace(request, kv_cache_dtype="fp8"))
        if fp8.fits:
            found.append(f"--kv-cache-dtype fp8 ({fp8.kv_capacity_tokens:,} tokens)")
    if (utilization := _fitting_utilization(plan)) is not None:
        found.append(f"--gpu-memory-utilization {utilization:.2f}")
    if (seqs := _fitting_max_num_seqs(request)) is not None:
        found.append(f"--max-num-seqs {seqs}")
    found.extend(
        f"use the {spec.quantization} checkpoint {spec.name} ({spec.hf_id})"
        for spec in _lighter_checkpoints(plan)
    )
    if request.gpu_memory_used_bytes and plan.start_shortfall_bytes > 0:
        used = format_bytes(request.gpu_memory_used_bytes)
        found.append(f"stop the other processes that hold {used} of the GPU")
    if (larger := _larger_gpu(plan)) is not None:
        found.append(f"use a GPU with at least {format_bytes(larger)}")
    return found


def _larger_gpu(plan: MemoryPlan) -> int | None:
    """The total memory a GPU needs for these settings, when it is more than this one has."""
    request = plan.request
    if not request.on_gpu or request.kv_cache_memory_bytes is not None:
        return None
    needed = plan.weight_bytes + plan.overhead.total_bytes + plan.one_sequence_kv_bytes
    utilization = min(request.gpu_memory_utilization, MAX_SUGGESTED_UTILIZATION)
    # The budget must hold everything, and the rest of an idle card the CUDA context.
    total = max(math.ceil(needed / utilization), math.ceil(CUDA_CONTEXT_BYTES / (1 - utilization)))
    return total if total > (request.gpu_memory_bytes or 0) else None


def _fitting_max_model_len(plan: MemoryPlan) -> int | None:
    """The largest max-model-len (a multiple of 1,024 when possible) the KV cache holds."""
    capacity = plan.kv_capacity_tokens
    if capacity < plan.block_size:
        return None
    step = 1024 if capacity >= 1024 else plan.block_size
    length = capacity // step * step
    return length if _plan(replace(plan.request, max_model_len=length)).fits else None


def _fitting_utilization(plan: MemoryPlan) -> float | None:
    """A gpu-memory-utilization that fits: raised for the KV cache, lowered for free memory."""
    request = plan.request
    if not request.on_gpu or request.kv_cache_memory_bytes is not None:
        return None
    total = request.gpu_memory_bytes or 0
    needed = plan.weight_bytes + plan.overhead.total_bytes + plan.one_sequence_kv_bytes
    free = total - request.gpu_memory_used_bytes - CUDA_CONTEXT_BYTES
    lowest = math.ceil(needed / total * 100) / 100
    highest = min(math.floor(free / total * 100) / 100, MAX_SUGGESTED_UTILIZATION)
    if lowest > highest:
        return None
    return highest if request.gpu_memory_utilization > highest else lowest


def _fitting_max_num_seqs(request: PlanRequest) -> int | None:
    """The most sequences (halving from the current setting) that fit, if fewer help at all."""
    seqs = request.max_num_seqs // 2
    while seqs >= 1:
        if _plan(replace(request, max_num_seqs=seqs)).fits:
            return seqs
        seqs //= 2
    return None


def _lighter_checkpoints(plan: MemoryPlan) -> list[ModelSpec]:
    """Registry checkpoints of the same model with smaller weights that fit these settings."""
    request = plan.request
    return [
        spec
        for spec in model_registry().values()
        if spec.family == request.model.family
        and spec.weight_bytes(spec.quantization, request.dtype_bytes) < plan.weight_bytes
        and _plan(replace(request, model=spec, quantization=None)).fits
    ]


def plan_profile(
    profile: Profile,
    gpu_memory_bytes: int | None,
    *,
    gpu_memory_used_bytes: int = 0,
    gpu_name: str = "",
) -> MemoryPlan:
    """Plan a profile on a GPU of `gpu_memory_bytes` (the embedded CPU profile ignores it)."""
    request = request_for_profile(
        profile, gpu_memory_bytes, gpu_memory_used_bytes=gpu_memory_used_bytes, gpu_name=gpu_name
    )
    return plan_memory(request)


def plan_launch(profile: Profile, gpu: GpuReading | None) -> MemoryPlan:
    """The plan for launching `profile` on this machine's first GPU (None: no GPU).

    Raises PlanDoesNotFit when vLLM would not start, and ConfigError for a GPU profile on a
    machine without a GPU. The embedded profile always plans against the CPU KV space.
    """
    if gpu is None:
        if not is_cpu_profile(profile):
            raise ConfigError(
                f"Profile {profile.name!r} needs an NVIDIA GPU and none was found. Use the "
                f"{EMBEDDED_PROFILE} profile, or launch anyway with `fawn serve --force`."
            )
        plan = plan_profile(profile, None)
    else:
        plan = plan_profile(
            profile,
            gpu.memory_total_bytes,
            gpu_memory_used_bytes=gpu.memory_used_bytes,
            gpu_name=gpu.name,
        )
    if not plan.fits:
        raise PlanDoesNotFit(plan)
    return plan


def is_cpu_profile(profile: Profile) -> bool:
    """True for profiles of the embedded model, which Fawn serves on vLLM's CPU build."""
    return Path(profile.model).name == EMBEDDED_MODEL_NAME


def request_for_profile(
    profile: Profile,
    gpu_memory_bytes: int | None,
    *,
    gpu_memory_used_bytes: int = 0,
    gpu_name: str = "",
) -> PlanRequest:
    """Read a profile's memory knobs, filling what it leaves out with vLLM's own defaults."""
    options = profile.options
    spec = find_model(profile.model)
    if _option_int(profile, "tensor-parallel-size", 1) != 1:
        raise ConfigError(f"Profile {profile.name!r} uses tensor parallelism; plan one GPU only.")
    on_cpu = is_cpu_profile(profile)
    if not on_cpu and gpu_memory_bytes is None:
        raise ConfigError(f"Profile {profile.name!r} runs on a GPU: give its memory to plan it.")
    memory = None if on_cpu else gpu_memory_bytes
    # vLLM's serve defaults (engine/arg_utils.py): larger batches on cards of 70 GiB and up.
    large = memory is not None and memory >= 70 * GiB
    kv_bytes = _option_int(profile, "kv-cache-memory-bytes", 0) or None
    return PlanRequest(
        model=spec,
        gpu_memory_bytes=memory,
        gpu_memory_used_bytes=0 if on_cpu else gpu_memory_used_bytes,
        gpu_memory_utilization=float(options.get("gpu-memory-utilization", 0.92)),
        max_model_len=_option_int(profile, "max-model-len", spec.native_context),
        max_num_seqs=_option_int(profile, "max-num-seqs", 1024 if large else 256),
        max_num_batched_tokens=_option_int(
            profile, "max-num-batched-tokens", 8192 if large else 2048
        ),
        kv_cache_dtype=str(options.get("kv-cache-dtype", "auto")),
        quantization=_profile_quantization(options.get("quantization")),
        dtype_bytes=4 if str(options.get("dtype", "auto")) in ("float32", "float") else 2,
        block_size=_option_int(profile, "block-size", 0) or None,
        enforce_eager=bool(options.get("enforce-eager", False)),
        kv_cache_memory_bytes=CPU_KV_CACHE_BYTES if on_cpu else kv_bytes,
        gpu_name="" if on_cpu else gpu_name,
    )


def profile_for_gpu_memory(total_bytes: int) -> str:
    """The largest shipped Qwen3 profile that fits a GPU of `total_bytes`; embedded-cpu if none.

    Profiles sized for this card or a smaller one come first, largest first and higher precision
    first on a tie; then those sized for larger cards, smallest first. The first that plans as
    fitting wins.
    """
    ranked = []
    for name in profile_names():
        target = reference_gpu(name)
        if target is None:
            continue
        profile = load_profile(name)
        quantization = _profile_quantization(profile.options.get("quantization"))
        quality = _QUALITY[quantization or find_model(profile.model).quantization]
        sized_for_it = target.memory_bytes <= total_bytes
        size = target.memory_bytes if sized_for_it else -target.memory_bytes
        ranked.append(((sized_for_it, size, quality), profile))
    for _, profile in sorted(ranked, key=lambda item: item[0], reverse=True):
        if plan_profile(profile, total_bytes).fits:
            return profile.name
    return EMBEDDED_PROFILE


def _profile_quantization(value: object) -> Quantization | None:
    # Only `fp8` changes the weight format (online quantization of a bf16 checkpoint); the
    # other methods name the kernel for an already quantized checkpoint.
    return Quantization.FP8 if value == "fp8" else None


# vLLM reads integer options like `32k` (10^3) and `32K` (2^10).
_VLLM_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "K": 2**10, "M": 2**20, "G": 2**30}


def _option_int(profile: Profile, key: str, default: int) -> int:
    value = profile.options.get(key, default)
    text = str(value).strip()
    multiplier = _VLLM_SUFFIXES.get(text[-1:])
    try:
        return int(float(text[:-1]) * multiplier) if multiplier else int(text)
    except ValueError:
        raise ConfigError(
            f"Profile {profile.name!r}: the planner needs {key} as a number (like 8192 or 32k), "
            f"not {value!r}."
        ) from None


def format_bytes(count: int) -> str:
    """Bytes as GiB (or MiB below 1 GiB), e.g. `7.49 GiB`."""
    if abs(count) >= GiB:
        return f"{count / GiB:.2f} GiB"
    return f"{count / MiB:.0f} MiB"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str) -> int:
    """Bytes from a size like `24GiB`, `24GB`, `80G` or `12gb` (G and GB are 10^9, GiB is 2^30)."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"Cannot read {text!r} as a memory size; write it like 24GiB or 24GB.")
    number, prefix, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _POWERS[prefix.lower()])
