"""Gateway overhead: the mock upstream directly vs maas-gateway vs LiteLLM proxy, same run.

A benchmark, not a test. Processes and cores (the issue's setup, 2-core box):

* core 0: the mock OpenAI upstream (``loadtests.mock_upstream``, raw asyncio) and the
  load generator (``loadtests.loadgen``, closed loop, N keep-alive connections);
* core 1: the gateway under test, one worker: ``maas serve`` with one ``backend: openai``
  replica pointing at the mock (anonymous access, SQLite ledger, memory limits), or
  LiteLLM's proxy (installed by this script into a throwaway virtualenv, one worker,
  no database) in front of the same mock.

For every concurrency (default 1, 16, 64) the three targets are measured back to
back, ``--rounds`` times, and the median round is reported; then streaming time to
first byte at concurrency 1. Added latency = target minus direct at the same
concurrency. The markdown table (machine, command, date, targets met or not) is
printed and written to ``--out``.

    python -m loadtests.bench_overhead                          # full run, ~5 minutes
    python -m loadtests.bench_overhead --targets direct,maas    # no LiteLLM
    python -m loadtests.bench_overhead --profile loadtests/out/maas-c16.svg   # py-spy the gateway at c=16
    python -m loadtests.bench_overhead --targets direct,maas --tree ../v1 --out before.md   # an older checkout
    python -m loadtests.bench_overhead --cpu-before 1200    # judge "CPU per request halved" against that run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from loadtests.machine import describe_machine

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = Path(tempfile.gettempdir()) / "maas-bench-litellm"
#: the version the issue's reference figure (45-50 req/s on one core) was measured with
LITELLM_VERSION = "1.106.2"
MODEL = "bench-model"

#: issue 14's targets for one worker pinned to one core (ratios against the same run)
TARGET_ADDED_P50_MS = 0.35
TARGET_VS_LITELLM = 35
TARGET_P99_OVER_P50_C16 = 3.0
TARGET_TTFT_ADDED_MS = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pinned(cpu: int | None):  # noqa: ANN202 - a preexec_fn
    def pin() -> None:
        os.setsid()
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpu})

    return pin


@dataclass
class Service:
    """A server process started for the run (killed with its whole process group)."""

    name: str
    url: str  # base, e.g. http://127.0.0.1:9100
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def start_service(name: str, argv: list[str], *, url: str, ready_path: str, cpu: int | None, workdir: Path,
                  env: dict[str, str] | None = None, timeout: float = 120.0) -> Service:
    log = workdir / f"{name}.log"
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None and k != "DATABASE_URL"}
    proc = subprocess.Popen(argv, cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            preexec_fn=_pinned(cpu), env=environ)
    service = Service(name, url, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + ready_path, timeout=2) as response:
                if response.status == 200:
                    return service
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{name} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def start_mock(workdir: Path, cpu: int | None) -> Service:
    port = free_port()
    return start_service(
        "mock", [sys.executable, "-m", "loadtests.mock_upstream", "--port", str(port)],
        url=f"http://127.0.0.1:{port}", ready_path="/v1/models", cpu=cpu, workdir=ROOT,
    )


def start_maas(workdir: Path, mock: Service, cpu: int | None, tree: Path = ROOT) -> Service:
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "allow_anonymous": True, "log_level": "warning"},
        "models": [{"name": MODEL, "price": {"input_per_mtok": "0.20", "output_per_mtok": "0.60"}}],
        "replicas": [{"id": "mock-0", "model": MODEL, "backend": "openai", "url": mock.url + "/v1",
                      "chip": "nvidia-h100", "cost_per_hour": "2.50"}],
        "routing": {"policy": "cost_latency"},
        "ledger": f"sqlite:///{workdir}/maas-ledger.db",
        "limits": "memory",
    }
    path = workdir / "maas.yaml"
    path.write_text(yaml.safe_dump(config))
    return start_service(
        "maas", [sys.executable, "-m", "gateway.cli", "serve", "--config", str(path)],
        url=f"http://127.0.0.1:{port}", ready_path="/readyz", cpu=cpu, workdir=workdir,
        env={"PYTHONPATH": str(tree)},
    )


def ensure_litellm(venv: Path, version: str) -> Path:
    """LiteLLM's proxy in its own throwaway virtualenv (a peer to measure, not a dependency)."""
    exe = venv / "bin" / "litellm"
    marker = venv / f".installed-{version}"
    if exe.exists() and marker.exists():
        return exe
    print(f"installing litellm[proxy]=={version} into {venv} (once; a few minutes) ...", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={version}"], check=True)
    marker.write_text(version)
    return exe


def start_litellm(workdir: Path, mock: Service, cpu: int | None, exe: Path) -> Service:
    port = free_port()
    config = {
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": mock.url + "/v1", "api_key": "sk-mock"}}],
        "litellm_settings": {"drop_params": True},
        # no auth, like maas-gateway's allow_anonymous in this run (newer LiteLLM refuses to start otherwise)
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    # no DATABASE_URL (start_service never passes one on): LiteLLM runs without a database
    env = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    return start_service(
        "litellm", [str(exe), "--config", str(path), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        url=f"http://127.0.0.1:{port}", ready_path="/health/liveliness", cpu=cpu, workdir=workdir, env=env,
        timeout=240,
    )


def litellm_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def loadgen(url: str, connections: int, *, duration: float, warmup: float, stream: bool, cpu: int | None) -> dict:
    argv = [sys.executable, "-m", "loadtests.loadgen", "--url", url + "/v1/chat/completions",
            "--connections", str(connections), "--duration", str(duration), "--warmup", str(warmup)]
    if stream:
        argv.append("--stream")
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=duration + warmup + 60)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


@dataclass
class Cell:
    """The median round of one target at one concurrency."""

    rps: float
    p50: float
    p99: float
    first_byte_p50: float
    errors: int
    #: CPU time of the server's process tree per request (user + system), microseconds
    cpu_us: float = float("nan")
    rounds: list[dict] = field(default_factory=list)


def median_cell(rounds: list[dict]) -> Cell:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    return Cell(
        rps=med([r["rps"] for r in rounds]),
        p50=med([r["latency_ms"].get("p50", float("nan")) for r in rounds]),
        p99=med([r["latency_ms"].get("p99", float("nan")) for r in rounds]),
        first_byte_p50=med([r["first_byte_ms"].get("p50", float("nan")) for r in rounds]),
        errors=sum(r["errors"] for r in rounds),
        cpu_us=med([r["cpu_us_per_request"] for r in rounds if "cpu_us_per_request" in r]),
        rounds=rounds,
    )


def cpu_seconds(service: Service) -> float:
    """User + system CPU seconds of a server process and its children so far."""
    import psutil

    try:
        root = psutil.Process(service.proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def measure(service: Service, connections: int, args: argparse.Namespace, *, stream: bool) -> dict:
    """One loadgen round against ``service``, with the server's CPU per request added.

    CPU is read around the whole round (warm-up included), so it is divided by the
    requests of the whole round, estimated from the measured rate (closed loop, steady).
    """
    before = cpu_seconds(service)
    result = loadgen(service.url, connections, duration=args.duration, warmup=args.warmup, stream=stream,
                     cpu=args.client_cpu)
    spent = cpu_seconds(service) - before
    requests = result["rps"] * (args.duration + args.warmup)
    if requests > 0 and spent == spent:
        result["cpu_us_per_request"] = round(spent / requests * 1e6, 1)
    return result


@contextlib.contextmanager
def profiling(service: Service, out: Path | None, seconds: float) -> Iterator[None]:
    """py-spy the service while the block runs (when asked and py-spy is installed)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if out is None or not Path(spy).exists():
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([spy, "record", "-p", str(service.proc.pid), "-d", str(int(seconds)), "-r", "200",
                             "--nonblocking", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.wait(seconds + 30)


def machine() -> str:
    return describe_machine(with_load=True)


def git_commit(tree: Path = ROOT) -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree, capture_output=True, text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def report(results: dict[str, dict[int, Cell]], streams: dict[str, Cell], *, command: str, started: str,
           host: str, versions: dict[str, str], args: argparse.Namespace) -> str:
    direct = results.get("direct", {})
    lines = [
        "## Gateway overhead vs a mock upstream (maas-gateway vs LiteLLM, same run)",
        "",
        f"- date: {started}",
        f"- machine: {host}",
        f"- command: `{command}`",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
        f"- setup: mock upstream + load generator pinned to core {args.client_cpu}, gateway (one worker) pinned to "
        f"core {args.gateway_cpu}; closed loop, keep-alive; {args.rounds} rounds x {args.duration:g} s per cell "
        f"(+{args.warmup:g} s warm-up), median round shown; chat completions, 16 output tokens, usage included",
        "",
        "| target | concurrency | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU us/req | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cells in results.items():
        for conc, cell in cells.items():
            base = direct.get(conc)
            added50 = cell.p50 - base.p50 if base and name != "direct" else float("nan")
            added99 = cell.p99 - base.p99 if base and name != "direct" else float("nan")
            lines.append(f"| {name} | {conc} | {_fmt(cell.rps, 0)} | {_fmt(cell.p50, 3)} | {_fmt(cell.p99, 3)} | "
                         f"{_fmt(added50, 3)} | {_fmt(added99, 3)} | {_fmt(cell.cpu_us, 0)} | {cell.errors} |")
    if streams:
        lines += ["", "Streaming (concurrency 1): time to first byte of the SSE body", "",
                  "| target | TTFB p50 ms | added p50 ms | full stream p50 ms | req/s | CPU us/req |",
                  "|---|---:|---:|---:|---:|---:|"]
        base = streams.get("direct")
        for name, cell in streams.items():
            added = cell.first_byte_p50 - base.first_byte_p50 if base and name != "direct" else float("nan")
            lines.append(f"| {name} | {_fmt(cell.first_byte_p50, 3)} | {_fmt(added, 3)} | {_fmt(cell.p50, 3)} | "
                         f"{_fmt(cell.rps, 0)} | {_fmt(cell.cpu_us, 0)} |")
    lines += ["", "Targets (issue 14, one worker on one core):", ""]
    lines += [f"- {line}" for line in verdicts(results, streams, cpu_before=args.cpu_before)]
    return "\n".join(lines) + "\n"


def verdicts(results: dict[str, dict[int, Cell]], streams: dict[str, Cell], *, cpu_before: float | None = None
             ) -> list[str]:
    out: list[str] = []
    maas, direct, lite = results.get("maas", {}), results.get("direct", {}), results.get("litellm", {})

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    if 1 in maas and 1 in direct:
        a50 = maas[1].p50 - direct[1].p50
        out.append(f"added p50 at c=1 <= {TARGET_ADDED_P50_MS} ms: {_fmt(a50, 3)} ms, {mark(a50 <= TARGET_ADDED_P50_MS)}")
    if 16 in maas:
        cell = maas[16]
        if 16 in lite and lite[16].rps > 0:
            ratio = cell.rps / lite[16].rps
            out.append(f"req/s at c=16 >= {TARGET_VS_LITELLM}x LiteLLM: {ratio:.1f}x "
                       f"({_fmt(cell.rps, 0)} vs {_fmt(lite[16].rps, 0)}), {mark(ratio >= TARGET_VS_LITELLM)}")
        tail = cell.p99 / cell.p50 if cell.p50 > 0 else float("nan")
        out.append(f"p99 <= {TARGET_P99_OVER_P50_C16:g}x p50 at c=16: {tail:.2f}x "
                   f"({_fmt(cell.p99, 3)} vs {_fmt(cell.p50, 3)} ms), {mark(tail <= TARGET_P99_OVER_P50_C16)}")
        if cpu_before:
            out.append(f"CPU per request at c=16 <= half of {_fmt(cpu_before, 0)} us (before, --cpu-before): "
                       f"{_fmt(cell.cpu_us, 0)} us ({cell.cpu_us / cpu_before:.2f}x), "
                       f"{mark(cell.cpu_us <= cpu_before / 2)}")
        else:
            out.append(f"CPU per request at c=16: {_fmt(cell.cpu_us, 0)} us (give --cpu-before, the figure of a "
                       "--tree run of the revision before, to judge the halving target)")
    if "maas" in streams and "direct" in streams:
        added = streams["maas"].first_byte_p50 - streams["direct"].first_byte_p50
        out.append(f"streaming TTFT added p50 <= {TARGET_TTFT_ADDED_MS} ms: {_fmt(added, 3)} ms, "
                   f"{mark(added <= TARGET_TTFT_ADDED_MS)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="direct,maas,litellm")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per round")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming TTFT measurement")
    parser.add_argument("--client-cpu", type=int, default=0, help="core for the mock and the load generator")
    parser.add_argument("--gateway-cpu", type=int, default=1, help="core for the gateway under test")
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--litellm-version", default=LITELLM_VERSION)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="run the gateway of another checkout (same harness, mock and load generator)")
    parser.add_argument("--cpu-before", type=float, help="CPU us per request at c=16 before (from a --tree run)")
    parser.add_argument("--profile", type=Path, help="py-spy flamegraph (SVG) of maas-gateway during one c=16 round")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "RESULTS_overhead.md")
    parser.add_argument("--json", type=Path, help="also write every round's raw numbers here")
    args = parser.parse_args(argv)

    if (os.cpu_count() or 1) < 2:
        args.client_cpu = args.gateway_cpu = None  # type: ignore[assignment]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    levels = [int(c) for c in args.concurrency.split(",")]
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    command = "python -m loadtests.bench_overhead " + " ".join(argv if argv is not None else sys.argv[1:])
    versions = {"maas-gateway": git_commit(args.tree)}

    exe = ensure_litellm(args.litellm_venv, args.litellm_version) if "litellm" in targets else None
    if exe is not None:
        versions["litellm"] = litellm_version(args.litellm_venv)

    services: dict[str, Service] = {}
    results: dict[str, dict[int, Cell]] = {t: {} for t in targets}
    streams: dict[str, Cell] = {}
    with tempfile.TemporaryDirectory(prefix="maas-bench-") as tmp:
        workdir = Path(tmp)
        try:
            mock = services["direct"] = start_mock(workdir, args.client_cpu)
            if "maas" in targets:
                services["maas"] = start_maas(workdir, mock, args.gateway_cpu, args.tree)
            if exe is not None:
                services["litellm"] = start_litellm(workdir, mock, args.gateway_cpu, exe)
            for conc in levels:
                rounds: dict[str, list[dict]] = {t: [] for t in targets}
                for i in range(args.rounds):
                    for target in targets:
                        profile = args.profile if (target == "maas" and conc == 16 and i == 0) else None
                        with profiling(services[target], profile, args.duration + args.warmup):
                            r = measure(services[target], conc, args, stream=False)
                        rounds[target].append(r)
                        print(f"c={conc:<3} round {i + 1} {target:<8} {r['rps']:>9,.0f} req/s  "
                              f"p50 {r['latency_ms'].get('p50', float('nan')):8.3f} ms  "
                              f"p99 {r['latency_ms'].get('p99', float('nan')):8.3f} ms  "
                              f"cpu {r.get('cpu_us_per_request', float('nan')):7.0f} us/req  errors {r['errors']}",
                              flush=True)
                for target in targets:
                    results[target][conc] = median_cell(rounds[target])
            if not args.no_stream:
                stream_rounds: dict[str, list[dict]] = {t: [] for t in targets}
                for i in range(args.rounds):
                    for target in targets:
                        r = measure(services[target], 1, args, stream=True)
                        stream_rounds[target].append(r)
                        print(f"stream  round {i + 1} {target:<8} TTFB p50 {r['first_byte_ms'].get('p50', float('nan')):8.3f} ms"
                              f"  errors {r['errors']}", flush=True)
                streams = {t: median_cell(rows) for t, rows in stream_rounds.items()}
        finally:
            for service in reversed(list(services.values())):
                service.stop()

    text = report(results, streams, command=command, started=started, host=host, versions=versions, args=args)
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}")
    if args.json:
        raw = {"results": {t: {c: cell.rounds for c, cell in cells.items()} for t, cells in results.items()},
               "streams": {t: cell.rounds for t, cell in streams.items()}}
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
