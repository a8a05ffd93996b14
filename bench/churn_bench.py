"""Churn benchmark: does a server's aggregate at N streams hold up after runs have come and
gone in every order?

    python bench/churn_bench.py [--configs slots=4 slots=8] [--streams 4] [--phases 3] [--cells 3]

One real Sluice server per configuration (SQLite, a fresh data folder, no tuning file), all
up at once. Each phase measures `--cells` cells of `--streams` concurrent native SSE
streams on every server in turn (one idle second before each cell), then puts each server
through churn: cells of 8, 1, 2 and 8 streams, so runs end and begin in another order and
on other KV sequences. Every stream has its own prompt. Aggregate = all tokens of a cell /
its wall time. A server whose aggregate drops in one phase and not in another depends on
where its runs landed (docs/architecture.md, "One pass per step").

Writes bench/results/churn.json with the CPU model, cores, llama.cpp's build and the load.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench import harness  # noqa: E402
from bench.compare_bench import prompt_for, stream_sluice_sse  # noqa: E402
from bench.idle_slots_bench import parse_config  # noqa: E402

CHURN = (8, 1, 2, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["slots=4", "slots=8"])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "churn.json")
    args = parser.parse_args()

    machine = harness.machine_info()
    servers = {}
    prompts = itertools.count(1000)  # away from compare_bench's first indices
    width = max(args.streams, *CHURN)
    pool = ThreadPoolExecutor(width)
    clients = [httpx.Client(timeout=300) for _ in range(width)]

    def cell(server, streams: int) -> float:
        started = time.perf_counter()
        futures = [pool.submit(stream_sluice_sse, clients[k], server, prompt_for(next(prompts)), args.max_tokens,
                               server.api_key) for k in range(streams)]
        records = [future.result() for future in futures]
        errors = [record["error"] for record in records if record.get("error")]
        if errors:
            raise RuntimeError(f"streams failed: {errors}")
        return round(sum(record["tokens"] for record in records) / (time.perf_counter() - started), 2)

    phases = []
    try:
        for config in args.configs:
            servers[config] = harness.start_server(Path(tempfile.mkdtemp(prefix="sluice-churn-")), SLUICE_TUNING="false",
                                                   **parse_config(config))
        for server in servers.values():
            cell(server, 1)  # warm-up
        for phase in range(args.phases):
            figures = {config: [] for config in servers}
            for _ in range(args.cells):
                for config, server in servers.items():
                    time.sleep(1)
                    figures[config].append(cell(server, args.streams))
            phases.append(figures)
            print(f"phase {phase + 1}: " + "  ".join(f"{config}: {values}" for config, values in figures.items()),
                  flush=True)
            for server in servers.values():
                for streams in CHURN:
                    cell(server, streams)
    finally:
        for server in servers.values():
            server.stop()
        for client in clients:
            client.close()
    result = {
        "command": " ".join(sys.argv), "machine": machine, "load_average_at_end": harness.machine_info()["load_average"],
        "streams": args.streams, "max_tokens": args.max_tokens, "churn": CHURN,
        "aggregate_tokens_per_second": {config: [phase[config] for phase in phases] for config in args.configs},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{machine['cpu_model']}, {machine['cores_usable']} cores; wrote {args.out}")


if __name__ == "__main__":
    main()
