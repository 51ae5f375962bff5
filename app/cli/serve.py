"""`fawn serve`: launch vLLM from a profile; `plan`: will it fit; `prepare`: the embedded model.

`fawn serve` plans the profile against the first GPU before launching and refuses one that does
not fit, or a GPU profile on a machine without a GPU; `--force` skips that check and leaves the
verdict to vLLM (the planner is an estimate). The engine runs supervised (serving/supervisor.py):
restarted if it dies, and never left behind when `fawn serve` itself dies. By default it listens
on a loopback port of its own, behind Fawn's gateway on the public address, which owns the one
LLM budget every client shares and holds calls while the engine restarts.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.cli.errors import fail
from app.settings import load_settings
from serving.embedded_model import prepare_embedded_model
from serving.endpoint import gateway_health
from serving.engine import default_profile_name, free_port, port_answers
from serving.gateway import GatewayThread
from serving.planner import (
    MemoryPlan,
    PlanDoesNotFit,
    PlanRequest,
    Quantization,
    find_model,
    format_bytes,
    is_cpu_profile,
    parse_size,
    plan_launch,
    plan_memory,
    reference_gpu,
    request_for_profile,
)
from serving.profiles import Profile, load_profile
from serving.settings import UpstreamSettings
from serving.supervisor import EngineSupervisor

app = typer.Typer(help="Serve the model Fawn talks to.", no_args_is_help=False)
console = Console()


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    profile: str | None = typer.Option(
        None, help="Profile name or YAML path. Default: embedded-cpu without a GPU."
    ),
    host: str | None = typer.Option(
        None, help="Address to serve on (default 127.0.0.1); off loopback needs an API key."
    ),
    port: int | None = typer.Option(None, help="Port to serve on (default 8000)."),
    force: bool = typer.Option(
        False, "--force", help="Launch even if the memory planner says it does not fit."
    ),
    no_gateway: bool = typer.Option(
        False,
        "--no-gateway",
        help="Serve vLLM itself on the port, without Fawn's gateway and its shared budget.",
    ),
) -> None:
    """Start vLLM on a profile behind Fawn's gateway, keep it running, and serve until Ctrl-C.

    Clients use http://HOST:PORT/v1 (FAWN_LLM_BASE_URL). Off loopback the gateway needs
    FAWN_GATEWAY_API_KEY. A dead engine is restarted; the gateway holds calls meanwhile.

    Example: fawn serve --profile qwen3-4b-24gb --port 8000
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    host = host or settings.engine.host
    port = port or settings.engine.port
    chosen = load_profile(profile or settings.engine.profile or default_profile_name())
    if not force:
        _check_plan(chosen)
    _refuse_taken_port(host, port)
    engine_host, engine_port = (host, port) if no_gateway else ("127.0.0.1", free_port())
    # Built before the engine starts: it refuses an address off loopback without an API key.
    gateway = None
    if not no_gateway:
        upstream = UpstreamSettings(
            url=f"http://{engine_host}:{engine_port}", budget=chosen.max_num_seqs
        )
        config = settings.gateway.model_copy(
            update={"upstreams": [upstream], "host": host, "port": port}
        )
        gateway = GatewayThread(config, settings.pressure)
    supervisor = EngineSupervisor.for_profile(
        chosen,
        models_dir=settings.model_cache,
        host=engine_host,
        port=engine_port,
        startup_timeout_s=settings.engine.startup_timeout_s,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status(f"Starting {chosen.name} ...") as status:
            supervisor.start(on_tick=lambda s: _tick(status, chosen.name, s, stop))
            if gateway is not None:
                gateway.start(healthy=True)
        if gateway is not None:
            console.print(
                f"[green]Serving[/] {chosen.served_model_name} at [bold]{gateway.url}/v1[/] "
                f"through Fawn's gateway (engine at {supervisor.root_url})"
            )
        else:
            console.print(
                f"[green]Serving[/] {chosen.served_model_name} at [bold]{supervisor.base_url}[/]"
            )
        console.print("Press Ctrl-C to stop.")
        _watch(supervisor, gateway, stop)
    except _Interrupted:
        pass
    finally:
        if gateway is not None:
            gateway.stop()
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("Engine stopped.")


def _watch(
    supervisor: EngineSupervisor, gateway: GatewayThread | None, stop: threading.Event
) -> None:
    """Say when the engine goes down and is back; exit 1 if it is given up or the gateway dies."""
    healthy = True
    while not stop.wait(1.0):
        if not supervisor.running:
            console.print(f"[red]The engine is given up.[/] {supervisor.error}")
            raise typer.Exit(1)
        if gateway is not None and not gateway.alive:
            console.print("[red]The gateway stopped.[/]")
            raise typer.Exit(1)
        if healthy != supervisor.healthy:
            healthy = supervisor.healthy
            console.print(
                "[green]The engine is back.[/]"
                if healthy
                else "[yellow]The engine went down; restarting it.[/]"
            )


def _refuse_taken_port(host: str, port: int) -> None:
    """Fail before launching anything when something already answers on the public port."""
    if not port_answers(host, port):
        return
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    what = (
        "a Fawn gateway (another `fawn serve`?)"
        if gateway_health(f"http://{shown}:{port}", timeout_s=2.0)
        else "another server"
    )
    raise fail(
        f"Port {port} on {host} is taken by {what}. Stop it, or serve on another port with --port."
    )


@app.command()
def prepare() -> None:
    """Convert the embedded model (SmolLM2-135M-Instruct) once into the models dir."""
    settings = load_settings()
    path = prepare_embedded_model(settings.model_cache)
    console.print(f"Embedded model ready at {path}")


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the engine was starting."""


def _tick(status: object, name: str, elapsed: float, stop: threading.Event) -> None:
    if stop.is_set():
        raise _Interrupted
    status.update(f"Starting {name} ... {elapsed:.0f} s")  # type: ignore[attr-defined]


def _check_plan(profile: Profile) -> None:
    """Refuse to launch a profile the memory planner says does not fit."""
    from serving.gpu import read_gpus

    gpus = read_gpus()
    plan = plan_launch(profile, gpus[0] if gpus else None)
    console.print(
        f"Plan: {plan.kv_capacity_tokens:,} tokens of KV cache on {plan.request.device}, "
        f"{plan.max_concurrency:.1f} sequences of {plan.request.max_model_len:,} tokens at once."
    )


@app.command()
def plan(
    profile: str | None = typer.Option(None, help="Profile name or YAML path to plan."),
    model: str | None = typer.Option(
        None, help="Model to plan: a name from serving/models.yaml or its hub id."
    ),
    gpu_memory: str | None = typer.Option(
        None,
        help="GPU memory, e.g. 24GiB (2^30) or 24GB (10^9). "
        "Default: the detected GPU, else the card a profile is sized for.",
    ),
    kv_cache_dtype: str | None = typer.Option(None, help="auto (the model's dtype) or fp8."),
    max_model_len: int | None = typer.Option(None, help="Longest sequence, in tokens."),
    max_num_seqs: int | None = typer.Option(None, help="Most sequences running at once."),
    gpu_memory_utilization: float | None = typer.Option(
        None, help="Share of the GPU vLLM reserves (weights, overhead and KV cache)."
    ),
    quantization: Annotated[
        Quantization | None,
        typer.Option(help="Weight format; default: how the checkpoint stores them."),
    ] = None,
) -> None:
    """Show where a model's GPU memory goes and whether it fits, without launching anything.

    With --model, unset knobs take the 24 GB seed settings: max-model-len 8192, 8 sequences,
    gpu-memory-utilization 0.9. Exits 2 with the reason and the fixes when it does not fit.

    Example: fawn serve plan --model qwen3-4b-instruct-2507 --gpu-memory 24GiB --kv-cache-dtype fp8
    """
    if (profile is None) == (model is None):
        raise fail("Pass either --profile NAME or --model NAME (see `fawn serve plan --help`).")
    knobs = {
        "kv_cache_dtype": kv_cache_dtype,
        "max_model_len": max_model_len,
        "max_num_seqs": max_num_seqs,
        "gpu_memory_utilization": gpu_memory_utilization,
        "quantization": quantization,
    }
    base = _profile_request(profile, gpu_memory) if profile else _model_request(model, gpu_memory)
    result = plan_memory(replace(base, **{k: v for k, v in knobs.items() if v is not None}))
    console.print(_plan_table(result))
    if not result.fits:
        raise PlanDoesNotFit(result)
    console.print(f"[green]Fits[/] {result.request.device}.")
    if result.max_concurrency < result.request.max_num_seqs:
        console.print(
            f"Note: only {result.max_concurrency:.2f} of the {result.request.max_num_seqs} "
            "sequences fit at full length at once; vLLM queues or preempts the rest."
        )


def _model_request(model: str | None, gpu_memory: str | None) -> PlanRequest:
    spec = find_model(model or "")
    memory, name = _gpu_memory(gpu_memory)
    if memory is None:
        raise fail("No GPU detected: pass the card's memory, e.g. --gpu-memory 24GiB.")
    return PlanRequest(spec, gpu_memory_bytes=memory, gpu_name=name)


def _profile_request(profile: str, gpu_memory: str | None) -> PlanRequest:
    chosen = load_profile(profile)
    memory, name = _gpu_memory(gpu_memory)
    if memory is None and (target := reference_gpu(chosen.name)) is not None:
        memory, name = target.memory_bytes, target.name
    if memory is None and not is_cpu_profile(chosen):
        raise fail(
            f"No GPU detected: pass the memory to plan {chosen.name} for, e.g. --gpu-memory 24GiB."
        )
    return request_for_profile(chosen, memory, gpu_name=name)


def _gpu_memory(text: str | None) -> tuple[int | None, str]:
    """The memory to plan for: the option, else the first detected GPU, else none."""
    if text is not None:
        return parse_size(text), ""
    from serving.gpu import read_gpus

    gpus = read_gpus()
    return (gpus[0].memory_total_bytes, gpus[0].name) if gpus else (None, "")


def _plan_table(plan: MemoryPlan) -> Table:
    request, spec = plan.request, plan.request.model
    table = Table(title=f"{spec.name} ({spec.hf_id}) on {request.device}")
    table.add_column("Quantity", style="bold", no_wrap=True)
    table.add_column("Value", justify="right", no_wrap=True)
    table.add_column("How")
    overhead = plan.overhead
    table.add_row(
        "Weights",
        format_bytes(plan.weight_bytes),
        f"{spec.parameters:,} parameters as {request.weight_quantization}",
    )
    table.add_row(
        "Overhead",
        format_bytes(overhead.total_bytes),
        f"runtime {format_bytes(overhead.runtime_bytes)}, "
        f"CUDA graphs {format_bytes(overhead.cuda_graph_bytes)}, "
        f"activations {format_bytes(overhead.activation_bytes)}, "
        f"sampler {format_bytes(overhead.sampler_bytes)}",
    )
    if plan.budget_bytes is not None:
        table.add_row(
            "Budget",
            format_bytes(plan.budget_bytes),
            f"{format_bytes(request.gpu_memory_bytes or 0)} x gpu-memory-utilization "
            f"{request.gpu_memory_utilization:.2f}",
        )
        kv_how = "budget - weights - overhead"
    else:
        kv_how = "fixed space set for the engine"
    table.add_row("KV cache", format_bytes(plan.kv_cache_bytes), kv_how)
    element = plan.kv_bytes_per_token // (2 * spec.layers * spec.kv_heads * spec.head_dim)
    kv_dtype = request.kv_cache_dtype
    if kv_dtype == "auto":
        kv_dtype = f"auto = {'bf16' if element == 2 else 'fp32'}"
    table.add_row(
        "KV per token",
        f"{plan.kv_bytes_per_token:,} bytes",
        f"2 x {spec.layers} layers x {spec.kv_heads} KV heads x {spec.head_dim} head_dim "
        f"x {element} byte{'s' if element > 1 else ''} ({kv_dtype})",
    )
    table.add_row(
        "KV capacity", f"{plan.kv_capacity_tokens:,} tokens", f"blocks of {plan.block_size}"
    )
    table.add_row(
        "Max concurrency",
        f"{plan.max_concurrency:.2f}x",
        f"sequences of max-model-len {request.max_model_len:,} at once "
        f"(max-num-seqs {request.max_num_seqs})",
    )
    table.add_row(
        "Headroom",
        format_bytes(plan.headroom_bytes),
        f"KV cache beyond one {request.max_model_len:,}-token sequence",
    )
    return table
