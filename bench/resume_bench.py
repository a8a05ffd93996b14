"""Resumable-stream benchmark: the cost of `"resumable": true` against a plain stream on the
same server in the same run, and how long a resume takes to answer.

    python bench/resume_bench.py [--runs 12] [--max-tokens 128] [--threads 2]

First Sluice's own path: plain vs resumable against an engine that answers at once (no
model time, so the difference is the code path alone). Then one real daphne server with the
real model, one slot. Runs alternate plain / resumable
(the order flips every pair, each run its own prompt, so neither gets the other's prefix
cache), temperature 0, read by an httpx client. Then resumes: a resumable stream is cut
after 10 deltas and resumed at once on the same server; the time from the GET to its first
replayed event is recorded, and the text checked against an uninterrupted run.
Writes bench/results/resume.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.harness import InstantEngine, iter_events, start_server  # noqa: E402

BASE_PROMPT = "Write a product description for a insulated stainless steel water bottle for hikers:"


def prompt_for(run: int) -> str:
    return f"Catalogue item {run}. {BASE_PROMPT}"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run_stream(client: httpx.Client, server, prompt: str, max_tokens: int, resumable: bool) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "resumable": resumable}
    started = time.perf_counter()
    stamps, usage = [], None
    with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
        for name, data in iter_events(response):
            if name == "delta":
                stamps.append(time.perf_counter())
            elif name == "done":
                usage = data["usage"]
    tokens = usage["completion_tokens"]
    return {
        "ttft_ms": (stamps[0] - started) * 1000,
        "tokens": tokens,
        "tokens_per_second": (tokens - 1) / (stamps[-1] - stamps[0]),
    }


def resume_once(client: httpx.Client, server, prompt: str, max_tokens: int, cut_after: int = 10) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "resumable": True}
    seen, last_id, request_id = [], 0, None
    with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
        for line in response.iter_lines():
            if line.startswith("id: "):
                last_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                request_id = request_id or data.get("request_id")
                if "text" in data:
                    seen.append(data["text"])
                if len(seen) >= cut_after:
                    break
    asked = time.perf_counter()
    first = None
    url = f"{server.url}/api/v1/generations/{request_id}/events"
    with client.stream("GET", url, headers={**server.headers(), "Last-Event-ID": str(last_id)}) as response:
        for name, data in iter_events(response):
            first = first or time.perf_counter()
            if name == "delta":
                seen.append(data["text"])
    row = server.row(request_id)
    return {"resume_first_event_ms": (first - asked) * 1000, "text": "".join(seen), "resumes": row["resumes"]}


def path_cost(runs: int) -> dict:
    """Plain vs resumable against an engine that answers at once (the remote backend over
    bench.harness.InstantEngine): no model time, so what is left is Sluice's own path."""
    engine = InstantEngine()
    server = start_server(
        Path(tempfile.mkdtemp(prefix="sluice-bench-")), SLUICE_BACKEND="generation.backends.remote.RemoteBackend",
        SLUICE_UPSTREAMS=engine.url, SLUICE_UPSTREAM_SLOTS="1", SLUICE_PRELOAD_MODEL="true",
    )
    plain, resumable = [], []
    try:
        with httpx.Client(timeout=60) as client:
            run_stream(client, server, prompt_for(-3), 8, False)
            run_stream(client, server, prompt_for(-4), 8, True)
            for run in range(runs):
                order = (False, True) if run % 2 == 0 else (True, False)
                for index, flag in enumerate(order):
                    result = run_stream(client, server, prompt_for(5000 + 2 * run + index), 32, flag)
                    (resumable if flag else plain).append(result["ttft_ms"])
    finally:
        server.stop()
        engine.stop()
    return {
        "runs": runs,
        "first_delta_ms_plain": round(statistics.median(plain), 2),
        "first_delta_ms_resumable": round(statistics.median(resumable), 2),
        "first_delta_ms_paired_delta_median": round(statistics.median(b - a for a, b in zip(plain, resumable)), 2),
    }


def summarize(results: list[dict]) -> dict:
    return {
        "tokens_per_second_median": round(statistics.median(r["tokens_per_second"] for r in results), 2),
        "ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in results), 2),
        "runs": len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--settle", type=float, default=1.0, help="idle seconds between runs")
    parser.add_argument("--resumes", type=int, default=5)
    parser.add_argument("--path-runs", type=int, default=100, help="pairs against an instant engine (no model)")
    args = parser.parse_args()
    path = path_cost(args.path_runs)

    server = start_server(
        Path(tempfile.mkdtemp(prefix="sluice-bench-")),
        SLUICE_SLOTS=1, SLUICE_N_THREADS=args.threads, SLUICE_N_CTX=4096, SLUICE_N_BATCH=256,
    )
    try:
        plain, resumable = [], []
        with httpx.Client(timeout=300) as client:
            run_stream(client, server, prompt_for(-1), 8, False)  # warm both paths
            run_stream(client, server, prompt_for(-2), 8, True)
            for run in range(args.runs):
                order = (False, True) if run % 2 == 0 else (True, False)
                for index, flag in enumerate(order):
                    time.sleep(args.settle)
                    result = run_stream(client, server, prompt_for(2 * run + index), args.max_tokens, flag)
                    (resumable if flag else plain).append(result)
            resumes = []
            for run in range(args.resumes):
                time.sleep(args.settle)
                prompt = prompt_for(1000 + run)
                whole = []
                body = {"prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0}
                with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as r:
                    whole = [data["text"] for name, data in iter_events(r) if name == "delta"]
                time.sleep(args.settle)
                resumed = resume_once(client, server, prompt, args.max_tokens)
                resumes.append({**resumed, "same_text": resumed.pop("text") == "".join(whole)})
    finally:
        server.stop()

    a, b = summarize(plain), summarize(resumable)
    paired = [y["ttft_ms"] - x["ttft_ms"] for x, y in zip(plain, resumable)]
    report = {
        "config": {
            **vars(args), "cpu": cpu_model(), "cpus": os.cpu_count(), "model": "embedded Gemma 3 270M Q4_K_M",
            "load_at_start": os.getloadavg()[0],
        },
        "path_without_model": path,
        "plain": a,
        "resumable": b,
        "tokens_per_second_ratio": round(b["tokens_per_second_median"] / a["tokens_per_second_median"], 4),
        "ttft_ms_median_delta": round(b["ttft_ms_median"] - a["ttft_ms_median"], 2),
        "ttft_ms_paired_delta_median": round(statistics.median(paired), 2),
        "resume": {
            "repeats": len(resumes),
            "first_event_ms_median": round(statistics.median(r["resume_first_event_ms"] for r in resumes), 2),
            "first_event_ms_max": round(max(r["resume_first_event_ms"] for r in resumes), 2),
            "all_same_text": all(r["same_text"] for r in resumes),
            "all_counted": all(r["resumes"] == 1 for r in resumes),
        },
    }
    report["targets"] = {
        "tokens_per_second_ratio >= 0.98": report["tokens_per_second_ratio"] >= 0.98,
        "ttft_ms_paired_delta_median <= 1": report["ttft_ms_paired_delta_median"] <= 1,
    }
    out = ROOT / "bench" / "results" / "resume.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
