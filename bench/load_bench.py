"""Load through the local production stack (deploy/localstack): nginx in front of two Sluice
processes on the real model, PostgreSQL, Redis. Loopback only, bounded in count and time.

    python bench/load_bench.py [--clients 200] [--rounds 3] [--hold 1000] [--max-tokens 8]

Rounds: `--clients` concurrent streams through nginx, a third of them hanging up at a random
moment; after each round: status counts, streams with exactly one terminal event, records
all terminal, slots and queues idle, RSS of each process, p50/p95 first token and queue wait.
Hold: every slot is kept busy, then `--hold` streams are opened and held queued (receiving
keep-alives) to find how many open streams a process carries and the memory each costs.
Writes bench/results/load.json. Never prints or stores generated text.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from deploy.localstack import Stack  # noqa: E402

PROMPT = "Write a product description for a cedar cutting board:"
API = "/api/v1/generations"
TERMINAL = {"done", "cancelled", "error"}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_stream(client: httpx.AsyncClient, stack: Stack, body: dict, *, hang_up_after: float | None,
                     hold: asyncio.Event | None = None) -> dict:
    """One client: its status, event names (and keep-alive count), first-token time, queue wait."""
    sent = time.monotonic()
    outcome = {"status": 0, "events": [], "keepalives": 0, "first_token_s": None, "queue_ms": None, "hung_up": False}
    try:
        async with client.stream("POST", stack.url + API, json=body, headers=stack.headers()) as response:
            outcome["status"] = response.status_code
            if response.status_code != 200:
                await response.aread()
                return outcome
            event = None
            async for line in response.aiter_lines():
                if hang_up_after is not None and time.monotonic() - sent > hang_up_after:
                    outcome["hung_up"] = True
                    return outcome
                if line.startswith(":"):
                    outcome["keepalives"] += 1
                    if hold is not None and hold.is_set():
                        outcome["hung_up"] = True
                        return outcome
                elif line.startswith("event: "):
                    event = line[7:]
                    outcome["events"].append(event)
                    if event == "delta" and outcome["first_token_s"] is None:
                        outcome["first_token_s"] = time.monotonic() - sent
                elif line.startswith("data: ") and event == "started":
                    outcome["queue_ms"] = json.loads(line[6:])["queue_ms"]
    except httpx.TransportError as exc:
        outcome["error"] = type(exc).__name__
    return outcome


async def settle(stack: Stack, timeout: float = 60) -> dict:
    """Wait until no row is queued or running and every scheduler is idle; report the state."""
    deadline = time.monotonic() + timeout
    while True:
        open_rows = stack.sql("SELECT count(*) AS n FROM generation_generation WHERE status IN ('queued', 'running')")[0]["n"]
        schedulers = [httpx.get(f"{p.url}/readyz", timeout=10).json()["scheduler"] for p in stack.processes]
        idle = all(s["slots_busy"] == 0 and s["queue_depth"] == 0 for s in schedulers)
        if (open_rows == 0 and idle) or time.monotonic() > deadline:
            return {"open_rows": open_rows, "schedulers": schedulers}
        await asyncio.sleep(0.5)


async def round_of(stack: Stack, clients: int, max_tokens: int, rng: random.Random) -> dict:
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300, connect=30), limits=limits) as client:
        tasks = []
        for index in range(clients):
            hang_up = rng.uniform(0.05, 8.0) if index % 3 == 0 else None
            body = {"prompt": PROMPT, "max_tokens": max_tokens, "seed": index}
            tasks.append(one_stream(client, stack, body, hang_up_after=hang_up))
        started = time.monotonic()
        since = stack.sql("SELECT now() AS t")[0]["t"]
        outcomes = await asyncio.gather(*tasks)
        wall = time.monotonic() - started
    state = await settle(stack)
    finished = [o for o in outcomes if o["status"] == 200 and not o["hung_up"]]
    recorded = stack.sql(
        "SELECT status, count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_p50,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY ttft_ms) AS ttft_p95 FROM generation_generation"
        " WHERE created_at >= %s GROUP BY status", (since,))
    first_tokens = [o["first_token_s"] for o in outcomes if o["first_token_s"] is not None]
    queue_waits = [o["queue_ms"] / 1000 for o in outcomes if o["queue_ms"] is not None]
    return {
        "wall_s": round(wall, 1),
        "status_counts": dict(Counter(o["status"] for o in outcomes)),
        "hung_up": sum(o["hung_up"] for o in outcomes),
        "transport_errors": sum(1 for o in outcomes if "error" in o),
        "server_ended": len(finished),
        "exactly_one_terminal": sum(1 for o in finished if sum(e in TERMINAL for e in o["events"]) == 1),
        "terminals": dict(Counter(next((e for e in o["events"] if e in TERMINAL), "none") for o in finished)),
        "records": {r["status"]: r["n"] for r in recorded},
        "server_ttft_ms_p50_p95": {r["status"]: [r["ttft_p50"], r["ttft_p95"]] for r in recorded},
        "open_rows_after": state["open_rows"],
        "schedulers_after": state["schedulers"],
        "rss_mib": [round(rss_mib(p.pid), 1) for p in stack.processes],
        "first_token_p50_s": percentile(first_tokens, 0.5),
        "first_token_p95_s": percentile(first_tokens, 0.95),
        "queue_wait_p50_s": percentile(queue_waits, 0.5),
        "queue_wait_p95_s": percentile(queue_waits, 0.95),
    }


async def hold_open(stack: Stack, count: int, slots: int) -> dict:
    """Fill every slot with a long generation, then hold `count` queued streams open."""
    release = asyncio.Event()
    limits = httpx.Limits(max_connections=count + 50, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=60), limits=limits) as client:
        long_body = {"prompt": PROMPT, "max_tokens": 1024, "temperature": 0}
        busy = [asyncio.create_task(one_stream(client, stack, long_body, hang_up_after=None, hold=release))
                for _ in range(slots * len(stack.processes))]
        await asyncio.sleep(3)
        before = [rss_mib(p.pid) for p in stack.processes]
        held = []
        for index in range(count):
            body = {"prompt": PROMPT, "max_tokens": 4, "seed": index}
            held.append(asyncio.create_task(one_stream(client, stack, body, hang_up_after=None, hold=release)))
            if index % 50 == 49:
                await asyncio.sleep(0.2)  # a ramp, not a burst of SYNs
        await asyncio.sleep(float(stack.env["SLUICE_HEARTBEAT_SECONDS"]) * 2 + 5)
        schedulers = [httpx.get(f"{p.url}/readyz", timeout=30).json()["scheduler"] for p in stack.processes]
        after = [rss_mib(p.pid) for p in stack.processes]
        release.set()  # every held client hangs up at its next keep-alive
        outcomes = await asyncio.gather(*held)
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
    state = await settle(stack, timeout=120)
    queued = sum(s["queue_depth"] for s in schedulers)
    return {
        "held_requested": count,
        "status_counts": dict(Counter(o["status"] for o in outcomes)),
        "transport_errors": dict(Counter(o.get("error") for o in outcomes if "error" in o)),
        "queued_while_held": [s["queue_depth"] for s in schedulers],
        "held_with_keepalives": sum(1 for o in outcomes if o["keepalives"] > 0),
        "rss_before_mib": [round(v, 1) for v in before],
        "rss_held_mib": [round(v, 1) for v in after],
        "kib_per_open_stream": round((sum(after) - sum(before)) * 1024 / queued, 1) if queued else None,
        "open_rows_after": state["open_rows"],
        "schedulers_after": state["schedulers"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = parser.parse_args()
    settings = {
        "SLUICE_N_THREADS": 1,
        "SLUICE_SLOTS": args.slots,
        # Large enough that the held streams are queued, not refused: the ceiling is measured, not configured.
        "SLUICE_MAX_QUEUE": max(args.hold, args.clients),
        "SLUICE_QUEUE_TIMEOUT_SECONDS": 300,
        "SLUICE_HEARTBEAT_SECONDS": 5,
        "SLUICE_OWNER_HEARTBEAT_SECONDS": 2,
    }
    results = {"command": " ".join(sys.argv), "cpu": cpu_model(), "settings": settings, "rounds": []}
    rng = random.Random(13)
    with Stack(processes=2, settings=settings, worker_connections=max(4096, args.hold * 3)) as stack:
        results["rss_start_mib"] = [round(rss_mib(p.pid), 1) for p in stack.processes]
        for number in range(args.rounds):
            result = asyncio.run(round_of(stack, args.clients, args.max_tokens, rng))
            results["rounds"].append(result)
            print(f"round {number + 1}: {json.dumps(result)}", flush=True)
        if args.hold:
            results["hold"] = asyncio.run(hold_open(stack, args.hold, args.slots))
            print(f"hold: {json.dumps(results['hold'])}", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
