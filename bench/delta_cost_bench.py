"""What serving costs per delta: the server's CPU time for each delta it streams, with a
backend that costs nothing but time (bench/paced_backend.py, 100 tokens/s per stream by
default), so the figure is Sluice's own path: worker thread, bridge, runner, output guard,
SSE framing, Django's ASGI handler, daphne and Twisted.

    python bench/delta_cost_bench.py [--streams 4] [--tokens 300] [--rounds 5]

Every round runs `--streams` streams at once on the native SSE API, then the same on
/v1/completions; the server's user and system CPU come from /proc/<pid>/stat (10 ms ticks)
around each round, divided by the deltas (or chunks) the clients received. On a machine
where the model takes the cores, this CPU is taken from the model's threads. Writes
bench/results/delta_cost.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from bench import harness


def stream(server, route: str, index: int, tokens: int) -> int:
    """One stream; returns the deltas (native) or text chunks (/v1) received."""
    received = 0
    with httpx.Client(timeout=120) as client:
        if route == "sse":
            body = {"prompt": f"Round {index}: write on", "max_tokens": tokens}
            with client.stream("POST", f"{server.url}/api/v1/generations", json=body,
                               headers=server.headers()) as response:
                for name, _ in harness.iter_events(response):
                    received += name == "delta"
        else:
            body = {"model": "scripted", "prompt": f"Round {index}: write on", "max_tokens": tokens, "stream": True}
            with client.stream("POST", f"{server.url}/v1/completions", json=body, headers=server.headers()) as response:
                for line in response.iter_lines():
                    received += line.startswith("data: {")
    return received


def run_round(server, route: str, streams: int, tokens: int, first: int) -> dict:
    counts = [0] * streams

    def one(k: int) -> None:
        counts[k] = stream(server, route, first + k, tokens)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(streams)]
    user0, sys0 = harness.cpu_times(server.process.pid)
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    user1, sys1 = harness.cpu_times(server.process.pid)
    deltas = sum(counts)
    return {"route": route, "deltas": deltas, "wall_s": round(wall, 3), "user_s": round(user1 - user0, 2),
            "sys_s": round(sys1 - sys0, 2),
            "cpu_ms_per_delta": round(1000 * (user1 - user0 + sys1 - sys0) / deltas, 3) if deltas else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds per token (default 0.01)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "delta_cost.json"))
    args = parser.parse_args()
    machine = harness.machine_info()
    work = Path(tempfile.mkdtemp(prefix="sluice-delta-cost-"))
    server = harness.start_server(work, SLUICE_BACKEND="bench.paced_backend.PacedBackend",
                                  SLUICE_SLOTS=args.streams, SLUICE_PACED_DELAY=args.delay,
                                  SLUICE_MAX_TOKENS=max(args.tokens, 1024))
    rounds = []
    try:
        for route in ("sse", "v1"):
            run_round(server, route, args.streams, 8, 0)  # warm: not kept
        for number in range(args.rounds):
            for route in ("sse", "v1") if number % 2 == 0 else ("v1", "sse"):
                found = run_round(server, route, args.streams, args.tokens, 1000 * number)
                rounds.append(found)
                print(f"round {number + 1} {route}: {found['deltas']} deltas, {found['cpu_ms_per_delta']} ms CPU each "
                      f"(user {found['user_s']} s, sys {found['sys_s']} s, {found['wall_s']} s)", flush=True)
    finally:
        server.stop()
    summary = {route: round(statistics.median(r["cpu_ms_per_delta"] for r in rounds if r["route"] == route), 3)
               for route in ("sse", "v1")}
    report = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine,
              "config": vars(args), "median_cpu_ms_per_delta": summary, "rounds": rounds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{machine['cpu_model']}, {machine['cores_usable']} cores: server CPU per delta, median of {args.rounds}: "
          f"native SSE {summary['sse']} ms, /v1 {summary['v1']} ms ({args.streams} streams at "
          f"{1 / args.delay:.0f} tokens/s each); wrote {args.out}")


if __name__ == "__main__":
    main()
