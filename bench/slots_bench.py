"""Slots benchmark: aggregate throughput and latency under concurrency.

    python bench/slots_bench.py [--slots 1 2 4] [--streams 1 2 4 8] [--max-tokens 64] [--engines batched contexts]

For each engine (SLUICE_ENGINE) and slot count a real Sluice server starts (SLUICE_SLOTS=n,
queue large enough);
for each concurrency level that many clients stream at once. Reported per cell:
aggregate tokens/s (all completion tokens / wall time), p95 queue wait and p95 TTFT
(from the done events), and the ratio to one stream on one slot measured in the same run.
Then, on the one-slot server, a cancellation check during prompt processing: a prompt near
the context size is dropped right after `started`; the next request's queue wait shows how
soon the slot was free again.
Writes bench/results/slots.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.harness import iter_events, start_server  # noqa: E402

PROMPT = "Catalogue item {n}. Write a product description for an insulated stainless steel water bottle:"


def one_stream(server, n: int, max_tokens: int, results: list, barrier: threading.Barrier) -> None:
    body = {"prompt": PROMPT.format(n=n), "max_tokens": max_tokens, "temperature": 0}
    with httpx.Client(timeout=600) as client:
        barrier.wait()
        with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
            for name, data in iter_events(response):
                if name == "done":
                    results.append(data)


def cell(server, streams: int, max_tokens: int, offset: int) -> dict:
    results: list[dict] = []
    barrier = threading.Barrier(streams + 1)
    threads = [
        threading.Thread(target=one_stream, args=(server, offset + i, max_tokens, results, barrier))
        for i in range(streams)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    tokens = sum(r["usage"]["completion_tokens"] for r in results)

    def p95(key):
        values = sorted(r["timings"][key] or 0 for r in results)
        return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]

    return {
        "streams": streams,
        "completed": len(results),
        "aggregate_tokens_per_second": round(tokens / wall, 2),
        "p95_queue_ms": p95("queue_ms"),
        "p95_ttft_ms": p95("ttft_ms"),
    }


def prompt_cancel_check(server) -> dict:
    """Cancel (disconnect) right after `started` on a prompt near the context size."""
    long_prompt = "Supplier terms and product notes. " * 450  # 15,300 characters, about 3,100 tokens
    with httpx.Client(timeout=600) as client:
        with client.stream(
            "POST", f"{server.url}/api/v1/generations",
            json={"prompt": long_prompt, "max_tokens": 16}, headers=server.headers(),
        ) as response:
            if response.status_code != 200:
                raise RuntimeError(f"prompt-cancel request refused: {response.status_code} {response.read()[:200]!r}")
            for name, data in iter_events(response):
                if name == "accepted":
                    request_id = data["request_id"]
                if name == "started":
                    break
        hung_up = time.perf_counter()
        follow = client.post(
            f"{server.url}/api/v1/generations", json={"prompt": "Hi", "max_tokens": 1, "stream": False},
            headers=server.headers(),
        ).json()
    row = server.row(request_id, timeout=120)
    return {
        "prompt_tokens": row["prompt_tokens"],
        "status": row["status"],
        "cancel_reason": row["cancel_reason"],
        "next_request_queue_ms": follow["timings"]["queue_ms"],
        "hang_up_to_next_done_ms": round((time.perf_counter() - hung_up) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--engines", nargs="+", default=["batched"], choices=["batched", "contexts"])
    parser.add_argument("--skip-cancel-check", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "slots.json"))
    args = parser.parse_args()
    import llama_cpp

    with open("/proc/cpuinfo", encoding="utf-8") as file:
        cpu_model = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), "")
    report = {
        "config": {**vars(args), "cpus": len(os.sched_getaffinity(0))},
        "machine": {"cpu_model": cpu_model, "llama_system_info": llama_cpp.llama_print_system_info().decode().strip()},
        "load_before": os.getloadavg(),
        "cells": [],
    }
    offset = 0
    for engine in args.engines:
        for slots in args.slots:
            server = start_server(Path(tempfile.mkdtemp(prefix="sluice-slots-")), SLUICE_SLOTS=slots, SLUICE_MAX_QUEUE=64,
                                  SLUICE_ENGINE=engine)
            try:
                for streams in args.streams:
                    time.sleep(1.0)
                    result = cell(server, streams, args.max_tokens, offset)
                    offset += streams
                    report["cells"].append({"engine": engine, "slots": slots, **result})
                    print(json.dumps(report["cells"][-1]), flush=True)
                if slots == min(args.slots) and engine == args.engines[0] and not args.skip_cancel_check:
                    report["prompt_cancel"] = prompt_cancel_check(server)  # one slot: the next request waits for it
            finally:
                server.stop()
    report["load_after"] = os.getloadavg()
    base = next(c for c in report["cells"] if c["slots"] == min(args.slots) and c["streams"] == 1)
    for c in report["cells"]:
        c["ratio_to_one_stream"] = round(c["aggregate_tokens_per_second"] / base["aggregate_tokens_per_second"], 2)
    four = [c for c in report["cells"] if c["streams"] == 4]
    if four:
        best = max(four, key=lambda c: c["aggregate_tokens_per_second"])
        report["target_4_streams_vs_1 >= 1.6"] = {"engine": best["engine"], "slots": best["slots"],
                                                   "ratio": best["ratio_to_one_stream"]}
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
