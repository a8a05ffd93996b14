"""Idle-slots benchmark: does a lone stream pay for slots (or engines) it does not use?

    python bench/idle_slots_bench.py [--configs slots=1 slots=4 slots=4,engine=contexts] [--runs 9]

One real Sluice server per configuration, all up at once (an idle server does no work).
Each run sends one stream to each server in turn, the order rotated run by run, with an
idle second before every stream (llama.cpp's threads spin briefly after a decode; the next
stream should not pay for the last one's spin). Every stream has its own prompt, different
from its first word, so no side gets a prefix-cache hit. Greedy, `--max-tokens` tokens.

Reported per configuration (medians over the runs): first delta seen by the client, the
server's `ttft_ms`, and tokens/s after the first delta (client side), with the differences
and ratios to the first configuration. The CPU model, core count, llama.cpp's build flags
and the load average before and after go into the result. Writes bench/results/idle_slots.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.harness import iter_events, start_server  # noqa: E402

SUBJECTS = [
    "Lanterns", "Gardening gloves", "Bicycle lights", "Teapots", "Rain jackets", "Chess sets", "Desk lamps",
    "Hiking boots", "Cutting boards", "Wool blankets", "Travel mugs", "Bird feeders", "Notebooks", "Backpacks",
    "Kitchen scales", "Umbrellas", "Picnic baskets", "Yoga mats", "Wall clocks", "Flower pots", "Camp stoves",
    "Sunglasses", "Bread knives", "Door mats", "Pillows", "Toolboxes", "Paint brushes", "Water filters",
    "Alarm clocks", "Spice racks", "Tents", "Headphones", "Candles", "Scarves", "Jigsaw puzzles", "Ladders",
]


def prompt_for(index: int) -> str:
    subject = SUBJECTS[index % len(SUBJECTS)]
    return f"{subject}, edition {index}: write two sentences a shop could print on the label."


def parse_config(text: str) -> dict:
    """`slots=4,engine=contexts` -> the SLUICE_* settings of one server."""
    settings = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        settings[f"SLUICE_{key.strip().upper()}"] = value.strip()
    return settings


def machine() -> dict:
    import llama_cpp

    model_name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            model_name = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu_model": model_name,
        "cores": len(os.sched_getaffinity(0)),
        "llama_cpp_python": llama_cpp.__version__,
        "llama_system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }


def one_stream(server, prompt: str, max_tokens: int) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    with httpx.Client(timeout=300) as client:
        started = time.perf_counter()
        stamps, done = [], None
        with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=server.headers()) as response:
            for name, data in iter_events(response):
                if name == "delta":
                    stamps.append(time.perf_counter())
                elif name == "done":
                    done = data
    if done is None or len(stamps) < 2:
        raise RuntimeError(f"stream did not complete: {len(stamps)} deltas")
    tokens = done["usage"]["completion_tokens"]
    return {
        "first_delta_ms": (stamps[0] - started) * 1000,
        "server_ttft_ms": done["timings"]["ttft_ms"],
        # deltas may coalesce tokens; the token count comes from the server
        "tokens_per_second": (tokens - 1) / (stamps[-1] - stamps[0]),
        "tokens": tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["slots=1", "slots=4"])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--idle", type=float, default=1.0, help="seconds of quiet before each stream")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "idle_slots.json"))
    args = parser.parse_args()
    report = {"machine": machine(), "config": vars(args), "load_before": os.getloadavg()}
    servers = {}
    try:
        for config in args.configs:
            servers[config] = start_server(Path(tempfile.mkdtemp(prefix="sluice-idle-")), **parse_config(config))
        samples = {config: [] for config in args.configs}
        index = 0
        for run in range(args.runs + 1):  # run 0 warms every server up and is not counted
            order = args.configs[run % len(args.configs):] + args.configs[: run % len(args.configs)]
            for config in order:
                time.sleep(args.idle)
                result = one_stream(servers[config], prompt_for(index), args.max_tokens)
                index += 1
                if run:
                    samples[config].append(result)
            print(f"run {run}: " + ", ".join(f"{c} {samples[c][-1]['first_delta_ms']:.1f} ms" for c in args.configs if run), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    report["load_after"] = os.getloadavg()
    base = args.configs[0]
    summary = {}
    for config, rows in samples.items():
        summary[config] = {key: round(statistics.median(r[key] for r in rows), 2)
                           for key in ("first_delta_ms", "server_ttft_ms", "tokens_per_second")}
    for config, row in summary.items():
        row["first_delta_minus_base_ms"] = round(row["first_delta_ms"] - summary[base]["first_delta_ms"], 2)
        row["server_ttft_minus_base_ms"] = round(row["server_ttft_ms"] - summary[base]["server_ttft_ms"], 2)
        row["tokens_per_second_vs_base"] = round(row["tokens_per_second"] / summary[base]["tokens_per_second"], 3)
    report["summary"] = summary
    report["samples"] = samples
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"machine": report["machine"], "load": [report["load_before"], report["load_after"]],
                      "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
