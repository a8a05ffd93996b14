"""Against the alternatives: four ways to stream from the same model, in one run.

    python bench/compare_bench.py            # full: 5 rounds x 1/2/4/8 streams x 64 tokens (make bench)
    python bench/compare_bench.py --quick    # smoke run, about 2 minutes, not figures

Sides, all on the same GGUF, the same prompts (a distinct one per request, its first word
distinct from the previous 99 requests', so no side gets a prefix-cache hit), temperature 0,
the same max_tokens:

  floor             llama-cpp-python `Llama.create_completion(stream=True)` in this process, no
                    HTTP, at its best thread count (measured first, 1..cores threads, one stream).
                    N streams = N independent `Llama` contexts in this process, each driven by its
                    own thread at the same time, each with max(1, best // N) threads (together
                    at most the best count while N <= best; beyond, one thread per context).
  llama_cpp_server  llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`), a
                    subprocess on loopback, same model/context/batch, the floor's best thread
                    count, /v1/completions stream. It runs one request at a time (a lock);
                    the others wait for it.
  sluice_sse        Sluice's native SSE API (POST /api/v1/generations) on a real daphne server
                    (`manage.py serve`) with a fresh data folder, so default settings (no tuning
                    file) unless --sluice-env says otherwise, e.g.
                    --sluice-env SLUICE_TUNING_FILE=$PWD/var/tuning.json for `manage.py tune`'s.
                    Every SLUICE_* setting as the server computed it is recorded.
  sluice_v1         Sluice's /v1/completions stream, the same server, its own API key (another
                    caller: no shared prefix cache with sluice_sse).

At 1/2/4/8 concurrent streams each, for --rounds rounds; within a round the sides take turns
in an order that rotates every cell, with --settle idle seconds before each cell, so drift and
llama.cpp's post-decode spin hit every side alike. Per row: first visible text p50/p95 (client
side, from sending the request), tokens/s per stream (median; tokens over the span from the
first to the last text chunk), aggregate tokens/s (median over rounds of all tokens / wall).

Then lone streams (--lone-rounds, default 20): one stream at a time, the floor and both Sluice
routes in rotating order, 8 tokens each: the one-stream first-token target (p50 within 5 ms of
the floor's) is read from these, with each round's difference to the floor paired.

Then, when Sluice's configuration came from a tuning file, the configurations `tune` ranked
highest besides it (--tuned-alternatives, default 2), each in its own `manage.py serve`, against
the chosen one at 4 streams through the native SSE API, interleaved over --rounds rounds
(bench/tuned_alternatives.py says why tune's own figures are not the yardstick).

Then disconnects (each HTTP side, interleaved): a stream is dropped after a few text chunks,
and the server's CPU seconds in the next 2 s are read from /proc; tokens generated after the
hang-up come from Sluice's record (`tokens_after_cancel`); llama_cpp.server records none, so
for it they are estimated from its CPU (CPU seconds after / CPU seconds per token it spent on
the same stream before the hang-up).

Then queued streams (Sluice only): a second Sluice server (the same settings plus a queue
large enough) with every slot busy; --hold streams are opened and kept waiting in its queue,
receiving keep-alives; server RSS delta / open streams = memory per open stream, and the
longest silence any waiting stream saw against the keep-alive interval.

Writes bench/results/compare.json and PNG plots in docs/bench/ (--quick: compare-quick.json
and plots in bench/results/compare-quick/), prints a table with ratios to the floor and to
llama_cpp.server. Targets are reported as ratios, never asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import httpx

from bench import harness, tuned_alternatives

SIDES = ("floor", "llama_cpp_server", "sluice_sse", "sluice_v1")
LABELS = {
    "floor": "llama-cpp-python in-process (floor)",
    "llama_cpp_server": "llama_cpp.server",
    "sluice_sse": "Sluice native SSE",
    "sluice_v1": "Sluice /v1",
}
HTTP_SIDES = ("llama_cpp_server", "sluice_sse", "sluice_v1")

# First words of the prompts: each is its own first token (checked at start), and prompt i
# starts with WORDS[i % len(WORDS)], so no request shares its first token with any of the
# previous len(WORDS) - 1 requests (llama.cpp keeps a context's last prompt; Sluice a slot's).
WORDS = (
    "Amber", "Birch", "Cactus", "Dolphin", "Ember", "Falcon", "Glacier", "Harbor", "Iris", "Jasper", "Kettle",
    "Lantern", "Meadow", "Nectar", "Orchid", "Pepper", "Quartz", "Raven", "Saffron", "Thistle", "Umbrella",
    "Velvet", "Walnut", "Yarrow", "Zephyr", "Anchor", "Bamboo", "Arctic", "Dragon", "Echo", "Fern", "Granite",
    "Hazel", "Indigo", "Juniper", "Forest", "Lotus", "Maple", "Nutmeg", "Olive", "Pebble", "Quill", "River",
    "Sparrow", "Tulip", "Violet", "Willow", "Acorn", "Basil", "Cedar", "Daisy", "Elm", "Fig", "Garnet", "Heron",
    "Ivy", "Jade", "Koala", "Lemon", "Mango", "Nickel", "Otter", "Pine", "Radish", "Sage", "Tiger", "Vanilla",
    "Wren", "Apricot", "Badger", "Cobalt", "Emerald", "Eagle", "Fossil", "Ginger", "Hickory", "Igloo", "Jungle",
    "Kiwi", "Lilac", "Marble", "Nova", "Oyster", "Harvest", "Rose", "Salmon", "Topaz", "Urchin", "Vulture",
    "Galaxy", "Yak", "Zinnia", "Almond", "Beacon", "Copper", "Delta", "Gecko", "Hornet", "Iceberg", "Lobster",
)
PROMPT = "{word} catalogue, item {index}. Write a product description for an insulated stainless steel water bottle:"
BLOCKER_PROMPT = "Count from 1 to 5000, one number per line, without skipping any:"


def prompt_for(index: int) -> str:
    return PROMPT.format(word=WORDS[index % len(WORDS)], index=index)


# ---------------------------------------------------------------------------------------------
# Pure computations (tests/bench/test_compare_bench.py)

def percentile(values, q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation between closest ranks (numpy's default);
    None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def thread_candidates(cores: int) -> list[int]:
    """Thread counts the floor tries for one stream: every count up to 8 cores, else powers of
    two, a few around half and all of the cores."""
    if cores <= 8:
        return list(range(1, cores + 1))
    found = {1, cores, cores - 1, cores // 2, (3 * cores) // 4}
    power = 2
    while power < cores:
        found.add(power)
        power *= 2
    return sorted(found)


def stream_metrics(record: dict) -> dict:
    """From one stream's raw stamps (perf_counter seconds): first visible text in ms after the
    request was sent, and tokens/s over the span from the first to the last text chunk."""
    if not record.get("ok") or record.get("first") is None:
        return {"first_token_ms": None, "tokens_per_second": None}
    span = record["last"] - record["first"]
    tokens = record["tokens"]
    return {
        "first_token_ms": (record["first"] - record["sent"]) * 1000,
        "tokens_per_second": (tokens - 1) / span if tokens > 1 and span > 0 else None,
    }


def _round(value, digits=2):
    return None if value is None else round(value, digits)


def summarize_rows(streams: list[dict], cells: list[dict], sides=SIDES, levels=(1, 2, 4, 8)) -> list[dict]:
    """One row per (side, concurrent streams): first token p50/p95 over all of the row's streams,
    tokens/s per stream (median), aggregate tokens/s (median over the row's cells)."""
    rows = []
    for side in sides:
        for level in levels:
            mine = [s for s in streams if s["side"] == side and s["streams"] == level]
            ok = [s for s in mine if s["ok"]]
            firsts = [s["first_token_ms"] for s in ok if s["first_token_ms"] is not None]
            rates = [s["tokens_per_second"] for s in ok if s["tokens_per_second"] is not None]
            aggregates = [c["aggregate_tokens_per_second"] for c in cells
                          if c["side"] == side and c["streams"] == level and c["aggregate_tokens_per_second"]]
            if not mine:
                continue
            rows.append({
                "side": side,
                "streams": level,
                "first_token_ms_p50": _round(percentile(firsts, 0.5), 1),
                "first_token_ms_p95": _round(percentile(firsts, 0.95), 1),
                "tokens_per_second_per_stream": _round(statistics.median(rates) if rates else None),
                "aggregate_tokens_per_second": _round(statistics.median(aggregates) if aggregates else None),
                "streams_measured": len(ok),
                "errors": len(mine) - len(ok),
                "cells": len(aggregates),
            })
    return rows


def _ratio(a, b, digits=3):
    return round(a / b, digits) if a is not None and b else None


def _delta(a, b, digits=1):
    return round(a - b, digits) if a is not None and b is not None else None


def add_ratios(rows: list[dict]) -> list[dict]:
    """Each row's ratios to the floor and to llama_cpp.server at the same number of streams."""
    by = {(r["side"], r["streams"]): r for r in rows}
    for row in rows:
        for other, key in (("floor", "vs_floor"), ("llama_cpp_server", "vs_llama_cpp_server")):
            ref = by.get((other, row["streams"]))
            if ref is None or ref is row:
                row[key] = None
                continue
            row[key] = {
                "tokens_per_second_per_stream": _ratio(row["tokens_per_second_per_stream"],
                                                       ref["tokens_per_second_per_stream"]),
                "aggregate_tokens_per_second": _ratio(row["aggregate_tokens_per_second"],
                                                      ref["aggregate_tokens_per_second"]),
                "first_token_ms_p50_delta": _delta(row["first_token_ms_p50"], ref["first_token_ms_p50"]),
                "first_token_ms_p95_delta": _delta(row["first_token_ms_p95"], ref["first_token_ms_p95"]),
            }
        one = by.get((row["side"], 1))
        row["aggregate_vs_one_stream"] = _ratio(row["aggregate_tokens_per_second"],
                                                one["aggregate_tokens_per_second"] if one else None)
    return rows


def evaluate_targets(rows: list[dict], disconnect: dict | None = None, hold: dict | None = None,
                     tuned: dict | None = None, lone: dict | None = None) -> dict:
    """The issue's targets as ratios and yes/no; nothing here fails the run. The first-token
    target comes from the lone phase when it ran (its many paired samples), else the rounds."""
    by = {(r["side"], r["streams"]): r for r in rows}
    targets: dict = {}
    for side in ("sluice_sse", "sluice_v1"):
        row = by.get((side, 1))
        if row and row.get("vs_floor"):
            ratio = row["vs_floor"]["tokens_per_second_per_stream"]
            targets[f"{side}: one stream tokens/s >= 0.97x floor"] = {"ratio": ratio, "met": _ge(ratio, 0.97)}
            found = (lone or {}).get("sides", {}).get(side)
            if found:
                delta = found["delta_ms_p50_vs_floor"]
                measured = {"delta_ms": delta, "paired_delta_ms": found["paired_delta_ms_p50_vs_floor"],
                            "from": f"lone phase, {lone['pairs']} rounds"}
            else:
                delta = row["vs_floor"]["first_token_ms_p50_delta"]
                measured = {"delta_ms": delta, "from": "rounds"}
            targets[f"{side}: one stream first token p50 <= floor + 5 ms"] = {
                **measured, "met": None if delta is None else delta <= 5}
    scaling = {side: by[(side, 4)]["aggregate_vs_one_stream"] for side in SIDES if (side, 4) in by}
    if scaling:
        targets["aggregate at 4 streams >= 1.6x one stream"] = {
            "ratio_by_side": scaling,
            "reached_by": [side for side, ratio in scaling.items() if _ge(ratio, 1.6)],
        }
    if tuned and tuned.get("ratio") is not None:
        targets[f"aggregate at {tuned['level']} streams >= 0.95x the best configuration tune found (served, this run)"] = {
            "chosen": tuned["chosen"], "best_measured": tuned["best_measured"], "ratio": tuned["ratio"],
            "met": tuned["met"]}
    ahead = {}
    for (side, level), row in sorted(by.items()):
        if side not in ("sluice_sse", "sluice_v1") or not row.get("vs_llama_cpp_server"):
            continue
        versus = row["vs_llama_cpp_server"]
        ahead[f"{side} @ {level}"] = {
            "aggregate_ratio": versus["aggregate_tokens_per_second"],
            "per_stream_ratio": versus["tokens_per_second_per_stream"],
            "first_token_p50_delta_ms": versus["first_token_ms_p50_delta"],
            "first_token_p95_delta_ms": versus["first_token_ms_p95_delta"],
            "ahead": bool(_ge(versus["aggregate_tokens_per_second"], 1.0)
                          and versus["first_token_ms_p50_delta"] is not None
                          and versus["first_token_ms_p50_delta"] <= 0),
        }
    if ahead:
        targets["Sluice ahead of llama_cpp.server on every row (aggregate tokens/s and first token p50)"] = {
            "rows": ahead, "met": all(v["ahead"] for v in ahead.values())}
    for side, found in (disconnect or {}).items():
        tokens, cpu = found.get("tokens_after_hang_up_max"), found.get("server_cpu_seconds_next_2s_max")
        targets[f"{side}: <= 1 token and <= 0.05 CPU-seconds after a disconnect"] = {
            "tokens_max": tokens, "tokens_counted": found.get("tokens_counted"), "cpu_seconds_max": cpu,
            "met": None if tokens is None or cpu is None else tokens <= 1 and cpu <= 0.05,
        }
    if hold and hold.get("kib_per_open_stream") is not None:
        targets[f"{hold['held_open']} queued streams: < 100 KB server memory each, keep-alives on time"] = {
            "kib_per_open_stream": hold["kib_per_open_stream"],
            "max_silence_s": hold["keepalive"]["max_silence_s"],
            "interval_s": hold["keepalive"]["interval_s"],
            "met": hold["kib_per_open_stream"] * 1024 < 100_000 and hold["keepalive"]["on_time"],
        }
    return targets


def _ge(value, bound):
    return None if value is None else value >= bound


def keepalive_summary(silences: list[float], keepalives: list[int], interval: float, *, slack: float = 1.0) -> dict:
    """Each waiting stream's longest silence (seconds between two received lines, or from the
    last one to the end of the window) against the keep-alive interval, and how many
    keep-alives it got: on time when every stream got at least one and none was silent for
    more than the interval plus `slack` seconds."""
    return {
        "interval_s": interval,
        "streams": len(silences),
        "max_silence_s": _round(max(silences) if silences else None, 3),
        "p99_silence_s": _round(percentile(silences, 0.99), 3),
        "median_silence_s": _round(percentile(silences, 0.5), 3),
        "late_streams": sum(1 for s in silences if s > interval + slack),
        "streams_without_keepalive": sum(1 for k in keepalives if not k),
        "keepalives_per_stream_median": percentile(keepalives, 0.5),
        "slack_s": slack,
        "on_time": bool(silences) and all(s <= interval + slack for s in silences) and all(keepalives),
    }


def format_table(rows: list[dict]) -> str:
    """The rows as a readable table, ratios to the floor and to llama_cpp.server."""
    head = ("side", "streams", "1st p50 ms", "1st p95 ms", "tok/s/stream", "aggregate",
            "x one", "tok/s vs floor", "1st p50 - floor", "agg vs l.c.s", "1st p50 - l.c.s", "err")
    lines = [head]

    def fmt(value, pattern="{:.1f}"):
        return "-" if value is None else pattern.format(value)

    for row in sorted(rows, key=lambda r: (r["streams"], SIDES.index(r["side"]) if r["side"] in SIDES else 9)):
        floor, lcs = row.get("vs_floor") or {}, row.get("vs_llama_cpp_server") or {}
        lines.append((
            row["side"], str(row["streams"]), fmt(row["first_token_ms_p50"]), fmt(row["first_token_ms_p95"]),
            fmt(row["tokens_per_second_per_stream"], "{:.2f}"), fmt(row["aggregate_tokens_per_second"], "{:.2f}"),
            fmt(row.get("aggregate_vs_one_stream"), "{:.2f}x"),
            fmt(floor.get("tokens_per_second_per_stream"), "{:.3f}x"),
            fmt(floor.get("first_token_ms_p50_delta"), "{:+.1f}"),
            fmt(lcs.get("aggregate_tokens_per_second"), "{:.2f}x"),
            fmt(lcs.get("first_token_ms_p50_delta"), "{:+.1f}"),
            str(row["errors"]),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines)


# ---------------------------------------------------------------------------------------------
# One stream per side. Each returns raw stamps: sent, first/last text chunk (perf_counter),
# tokens, ok/error.

def _new_record() -> dict:
    return {"ok": False, "error": None, "sent": time.perf_counter(), "first": None, "last": None, "tokens": 0,
            "finish_reason": None}


def _stamp(record: dict) -> None:
    record["last"] = time.perf_counter()
    if record["first"] is None:
        record["first"] = record["last"]


def stream_in_process(llm, prompt: str, max_tokens: int) -> dict:
    record = _new_record()
    chunks = 0
    for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0, repeat_penalty=1.0, stream=True):
        choice = chunk["choices"][0]
        if choice["text"]:
            _stamp(record)
        chunks += 1 if choice["finish_reason"] is None else 0
        record["finish_reason"] = choice["finish_reason"] or record["finish_reason"]
    record["tokens"] = max_tokens if record["finish_reason"] == "length" else chunks
    record["ok"] = record["first"] is not None
    return record


def stream_sluice_sse(client: httpx.Client, server, prompt: str, max_tokens: int, api_key: str) -> dict:
    record = _new_record()
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    headers = {"Authorization": f"Bearer {api_key}"}
    with client.stream("POST", f"{server.url}/api/v1/generations", json=body, headers=headers) as response:
        if response.status_code != 200:
            record["error"] = f"HTTP {response.status_code}"
            response.read()
            return record
        for name, data in harness.iter_events(response):
            if name == "delta" and data.get("text"):
                _stamp(record)
            elif name == "done":
                record["tokens"] = data["usage"]["completion_tokens"]
                record["finish_reason"] = data.get("finish_reason")
                record["ok"] = record["first"] is not None
            elif name in ("error", "cancelled"):
                record["error"] = f"{name}: {data.get('code') or data.get('reason')}"
    return record


def _data_lines(response: httpx.Response):
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[6:]


def stream_openai(client: httpx.Client, url: str, body: dict, headers: dict, max_tokens: int) -> dict:
    """A /v1/completions stream (Sluice's or llama_cpp.server's)."""
    record = _new_record()
    chunks = 0
    usage = None
    with client.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as response:
        if response.status_code != 200:
            record["error"] = f"HTTP {response.status_code}"
            response.read()
            return record
        for data in _data_lines(response):
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                record["error"] = str(chunk["error"])[:200]
                return record
            usage = chunk.get("usage") or usage
            if chunk.get("choices"):
                choice = chunk["choices"][0]
                if choice.get("text"):
                    _stamp(record)
                    chunks += 1
                record["finish_reason"] = choice.get("finish_reason") or record["finish_reason"]
    if usage:
        record["tokens"] = usage["completion_tokens"]
    else:  # llama_cpp.server streams no usage: one chunk per token, or max_tokens when cut at the length
        record["tokens"] = max_tokens if record["finish_reason"] == "length" else chunks
    record["ok"] = record["first"] is not None
    return record


class Sides:
    """What runs one stream of each side on worker thread k (the floor's context k)."""

    def __init__(self, *, contexts, llama_server, sluice, sse_key, v1_key, v1_model, max_tokens):
        self.contexts = contexts
        self.llama_server = llama_server
        self.sluice = sluice
        self.sse_key, self.v1_key, self.v1_model = sse_key, v1_key, v1_model
        self.max_tokens = max_tokens
        self._local = threading.local()

    def client(self) -> httpx.Client:
        if getattr(self._local, "client", None) is None:
            self._local.client = httpx.Client(timeout=httpx.Timeout(900, connect=30))
        return self._local.client

    def run(self, side: str, worker: int, prompt: str, max_tokens: int) -> dict:
        try:
            if side == "floor":
                return stream_in_process(self.contexts[worker], prompt, max_tokens)
            if side == "sluice_sse":
                return stream_sluice_sse(self.client(), self.sluice, prompt, max_tokens, self.sse_key)
            if side == "sluice_v1":
                body = {"model": self.v1_model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                        "stream": True, "stream_options": {"include_usage": True}}
                return stream_openai(self.client(), self.sluice.url, body,
                                     {"Authorization": f"Bearer {self.v1_key}"}, max_tokens)
            if side == "llama_cpp_server":
                body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "repeat_penalty": 1.0,
                        "stream": True}
                return stream_openai(self.client(), self.llama_server.url, body, {}, max_tokens)
            raise ValueError(side)
        except Exception as exc:  # noqa: BLE001 - recorded as the stream's error, the run goes on
            record = _new_record()
            record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            return record


def set_floor_threads(contexts, streams: int, best: int) -> int:
    """The floor at N streams: contexts 0..N-1, max(1, best // N) threads each."""
    import llama_cpp

    threads = max(1, best // streams)
    for llm in contexts[:streams]:
        llama_cpp.llama_set_n_threads(llm.ctx, threads, threads)
    return threads


def run_cell(sides: Sides, workers: list[ThreadPoolExecutor], side: str, streams: int, first_index: int,
             max_tokens: int) -> tuple[list[dict], float]:
    """`streams` streams of one side started together (a barrier), stream k on worker k with
    prompt first_index + k; returns the raw records and the wall time to the last one's end."""
    barrier = threading.Barrier(streams + 1)

    def one(k):
        barrier.wait()
        return sides.run(side, k, prompt_for(first_index + k), max_tokens)

    futures = [workers[k].submit(one, k) for k in range(streams)]
    barrier.wait()
    started = time.perf_counter()
    records = [future.result() for future in futures]
    wall = time.perf_counter() - started
    for record in records:
        record["sent"] = max(record["sent"], started)  # a record made on error has no later send time
    return records, wall


LONE_SIDES = ("floor", "sluice_sse", "sluice_v1")


def lone_first_token_phase(sides: Sides, workers: list[ThreadPoolExecutor], contexts, best: int, *, pairs: int,
                           first_index: int, settle: float, max_tokens: int = 8) -> tuple[dict, int]:
    """One stream at a time, `pairs` rounds of the floor and both Sluice routes in an order
    that rotates every round: the first-token target is a p50 within 5 ms of the floor's, and
    on a VM whose lone first tokens move by tens of ms the rounds' five samples per side do
    not resolve that. Each round's differences to the floor are paired, so drift between
    rounds cancels out of their median."""
    set_floor_threads(contexts, 1, best)
    firsts: dict[str, list[float | None]] = {side: [] for side in LONE_SIDES}
    index = first_index
    for pair in range(pairs):
        order = LONE_SIDES[pair % 3:] + LONE_SIDES[:pair % 3]
        for side in order:
            time.sleep(settle)
            records, _ = run_cell(sides, workers, side, 1, index, max_tokens)
            firsts[side].append(stream_metrics(records[0])["first_token_ms"])
            index += 1
    result: dict = {"pairs": pairs, "max_tokens": max_tokens, "sides": {}}
    for side in LONE_SIDES:
        values = [v for v in firsts[side] if v is not None]
        result["sides"][side] = {"first_token_ms_p50": _round(percentile(values, 0.5), 1),
                                 "first_token_ms_p95": _round(percentile(values, 0.95), 1),
                                 "errors": len(firsts[side]) - len(values)}
        if side != "floor":
            paired = [mine - floor for mine, floor in zip(firsts[side], firsts["floor"])
                      if mine is not None and floor is not None]
            result["sides"][side]["delta_ms_p50_vs_floor"] = _delta(result["sides"][side]["first_token_ms_p50"],
                                                                    result["sides"]["floor"]["first_token_ms_p50"])
            result["sides"][side]["paired_delta_ms_p50_vs_floor"] = _round(percentile(paired, 0.5), 1)
    result["first_token_ms"] = {side: [_round(v, 1) for v in firsts[side]] for side in LONE_SIDES}
    return result, index


def tuned_phase(sluice, sluice_settings: dict, sluice_env: dict, work: Path, workers: list[ThreadPoolExecutor], *,
                count: int, rounds: int, level: int, first_index: int, max_tokens: int, settle: float) -> tuple[dict, int]:
    """The chosen configuration against the `count` others tune ranked highest, each served by
    its own `manage.py serve`, `level` streams per cell, interleaved; returns the summary and
    the next prompt index."""
    sources = sluice_settings.get("SLUICE_CONFIG_SOURCES") or {}
    if not count or "tuning file" not in sources.values():
        return {"note": "skipped: Sluice's configuration did not come from a tuning file"
                        if count else "skipped (--tuned-alternatives 0)"}, first_index
    tuning = json.loads(Path(sluice_settings["SLUICE_TUNING_FILE"]).read_text())
    chosen = {name: sluice_settings[name] for name in tuned_alternatives.TUNED}
    picked = tuned_alternatives.alternatives(tuning, chosen, level, count)
    if not picked:
        return {"note": "skipped: the tuning file ranks no other configuration"}, first_index
    index = first_index

    def sides_for(server) -> Sides:
        return Sides(contexts=[], llama_server=None, sluice=server, sse_key=server.api_key, v1_key="", v1_model="",
                     max_tokens=max_tokens)

    configs = {tuned_alternatives.label(chosen): sides_for(sluice)}
    started, sources_in_effect, cells, failed = [], {}, [], {}
    try:
        for number, alternative in enumerate(picked):
            (work / f"tuned-{number}").mkdir()
            values = {name: str(value) for name, value in alternative["values"].items()}
            name = tuned_alternatives.label(alternative["values"])
            try:
                server = harness.start_server(work / f"tuned-{number}", **{**sluice_env, **values})
            except RuntimeError as exc:  # recorded; the rest of the run goes on without it
                failed[name] = str(exc)[-500:]
                log(f"tuned: {name} did not start; left out")
                continue
            started.append(server)
            configs[name] = sides_for(server)
            sources_in_effect[name] = harness.settings_in_effect(server).get("SLUICE_CONFIG_SOURCES")
        for found in configs.values():  # warm each server and every worker's connection to it; not kept
            run_cell(found, workers, "sluice_sse", level, index, 4)
            index += level
        names = list(configs)
        for round_number in range(rounds):
            for name in names[round_number % len(names):] + names[:round_number % len(names)]:
                time.sleep(settle)
                records, wall = run_cell(configs[name], workers, "sluice_sse", level, index, max_tokens)
                index += level
                tokens = sum(r["tokens"] for r in records if r["ok"])
                cells.append({"config": name, "round": round_number, "wall_s": round(wall, 3), "tokens": tokens,
                              "errors": [r["error"] for r in records if not r["ok"]],
                              "aggregate_tokens_per_second": round(tokens / wall, 2) if tokens else None})
                log(f"tuned round {round_number + 1}/{rounds} {name}: {cells[-1]['aggregate_tokens_per_second']} "
                    f"tok/s aggregate at {level}")
    finally:
        for server in started:
            server.stop()
    summary = tuned_alternatives.summarize(cells, chosen, tuning, level)
    summary.update(sources_in_effect=sources_in_effect, tuning_measured=tuning.get("measured"), cells=cells,
                   failed_to_start=failed)
    return summary, index


# ---------------------------------------------------------------------------------------------
# Disconnects

def disconnect_sluice(client: httpx.Client, sluice, side: str, api_key: str, model: str, prompt: str,
                      after_chunks: int, window: float) -> dict:
    headers = {"Authorization": f"Bearer {api_key}"}
    request_id = None
    chunks = 0
    if side == "sluice_sse":
        body = {"prompt": prompt, "max_tokens": 512, "temperature": 0}
        with client.stream("POST", f"{sluice.url}/api/v1/generations", json=body, headers=headers) as response:
            for name, data in harness.iter_events(response):
                if name == "accepted":
                    request_id = data["request_id"]
                chunks += name == "delta"
                if chunks >= after_chunks:
                    break
    else:
        body = {"model": model, "prompt": prompt, "max_tokens": 512, "temperature": 0, "stream": True}
        with client.stream("POST", f"{sluice.url}/v1/completions", json=body, headers=headers) as response:
            request_id = response.headers["X-Request-ID"]
            for data in _data_lines(response):
                chunks += data != "[DONE]"
                if chunks >= after_chunks:
                    break
    hung_up = harness.cpu_seconds(sluice.process.pid)
    time.sleep(window)
    spent = harness.cpu_seconds(sluice.process.pid) - hung_up
    row = sluice.row(request_id)
    return {
        "status": row["status"], "cancel_reason": row["cancel_reason"],
        "tokens_after_hang_up": row["tokens_after_cancel"], "tokens_counted": "exact (Sluice's record)",
        "completion_tokens": row.get("completion_tokens"),
        "server_cpu_seconds_next_2s": round(spent, 4),
    }


def disconnect_llama_server(client: httpx.Client, server, prompt: str, after_chunks: int, window: float) -> dict:
    body = {"prompt": prompt, "max_tokens": 512, "temperature": 0, "repeat_penalty": 1.0, "stream": True}
    before = harness.cpu_seconds(server.process.pid)
    chunks = 0
    with client.stream("POST", f"{server.url}/v1/completions", json=body) as response:
        for data in _data_lines(response):
            chunks += data != "[DONE]"
            if chunks >= after_chunks:
                break
    hung_up = harness.cpu_seconds(server.process.pid)
    time.sleep(window)
    spent = harness.cpu_seconds(server.process.pid) - hung_up
    per_token = (hung_up - before) / chunks if chunks else None  # includes the prompt: an over-estimate per token
    return {
        "chunks_received": chunks,
        "tokens_after_hang_up": round(spent / per_token, 1) if per_token else None,
        "tokens_counted": "estimated: CPU after / CPU per token before the hang-up (the server records none)",
        "server_cpu_seconds_next_2s": round(spent, 4),
    }


def disconnect_checks(sides: Sides, repeats: int, after_chunks: int, first_index: int, settle: float,
                      window: float = 2.0) -> dict:
    client = sides.client()
    found: dict = {side: [] for side in HTTP_SIDES}
    index = first_index
    for repeat in range(repeats + 1):  # the first round warms each disconnect path and is not kept
        for side in HTTP_SIDES:
            time.sleep(settle)
            prompt = prompt_for(index)
            index += 1
            if side == "llama_cpp_server":
                result = disconnect_llama_server(client, sides.llama_server, prompt, after_chunks, window)
            else:
                key = sides.sse_key if side == "sluice_sse" else sides.v1_key
                result = disconnect_sluice(client, sides.sluice, side, key, sides.v1_model, prompt, after_chunks,
                                           window)
            if repeat:
                found[side].append(result)
    summary = {}
    for side, results in found.items():
        tokens = [r["tokens_after_hang_up"] for r in results if r["tokens_after_hang_up"] is not None]
        cpu = [r["server_cpu_seconds_next_2s"] for r in results]
        summary[side] = {
            "repeats": len(results),
            "tokens_after_hang_up_max": max(tokens) if tokens else None,
            "tokens_counted": results[0]["tokens_counted"] if results else None,
            "server_cpu_seconds_next_2s_median": _round(statistics.median(cpu), 4) if cpu else None,
            "server_cpu_seconds_next_2s_max": _round(max(cpu), 4) if cpu else None,
            "runs": results,
        }
    summary["floor"] = {"note": "n/a: no connection; closing the generator stops it between two tokens"}
    return summary


# ---------------------------------------------------------------------------------------------
# Queued streams held open (Sluice)

def raise_fd_limit(wanted: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def _held_stream(client: httpx.AsyncClient, url: str, body: dict, headers: dict, state: dict) -> None:
    """Read one stream until cancelled, noting when each line arrived."""
    try:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            state["status"] = response.status_code
            state["lines"].append(time.monotonic())
            async for line in response.aiter_lines():
                if not line:
                    continue
                now = time.monotonic()
                state["lines"].append(now)
                if line.startswith(":"):
                    state["keepalives"] += 1
                elif line.startswith("data:"):
                    state["data"] = state.get("data", 0) + 1
                elif line.startswith("event: "):
                    name = line[7:]
                    state["events"].append(name)
                    if name == "accepted":
                        state["accepted_at"] = now
                    elif name == "started":
                        state["started_at"] = now
            state["ended_at"] = time.monotonic()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001
        state["error"] = type(exc).__name__
        state["ended_at"] = time.monotonic()


async def _scheduler(client: httpx.AsyncClient, url: str) -> dict:
    response = await client.get(f"{url}/readyz", timeout=30)
    return response.json()["scheduler"]


async def hold_queued(server, api_key: str, count: int, *, slots: int, interval: float, window: float,
                      max_tokens_blocker: int) -> dict:
    headers = {"Authorization": f"Bearer {api_key}"}
    url = f"{server.url}/api/v1/generations"
    limits = httpx.Limits(max_connections=count + slots + 20, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(None, connect=60), limits=limits) as client, \
            httpx.AsyncClient(timeout=30) as probe:
        blockers = [{"lines": [], "events": [], "keepalives": 0} for _ in range(slots)]
        blocker_tasks = [
            asyncio.create_task(_held_stream(
                client, url, {"prompt": f"{BLOCKER_PROMPT} (list {n})", "max_tokens": max_tokens_blocker,
                              "temperature": 0}, headers, state))
            for n, state in enumerate(blockers)
        ]
        deadline = time.monotonic() + 60
        while (await _scheduler(probe, server.url))["slots_busy"] < slots and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        # The server's RSS steps up as the blockers start (about 20 MiB on 2 cores), then stays
        # flat: wait that out, then record what it does over a few seconds with the slots busy
        # and no stream held (recorded, not subtracted).
        await asyncio.sleep(3.0)
        drift_from, drift_started = harness.rss_bytes(server.process.pid), time.monotonic()
        await asyncio.sleep(3.0)
        rss_before = harness.rss_bytes(server.process.pid)
        drift = (rss_before - drift_from) / 1024 / (time.monotonic() - drift_started)
        ramp_started = time.monotonic()
        held = [{"lines": [], "events": [], "keepalives": 0} for _ in range(count)]
        tasks = []
        for index, state in enumerate(held):
            body = {"prompt": prompt_for(100_000 + index), "max_tokens": 4, "temperature": 0}
            tasks.append(asyncio.create_task(_held_stream(client, url, body, headers, state)))
            if index % 50 == 49:
                await asyncio.sleep(0.1)  # a ramp, not one burst of SYNs
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            accepted = sum(1 for s in held if "accepted_at" in s or "error" in s or s.get("status", 200) != 200)
            if accepted >= count:
                break
            await asyncio.sleep(0.25)
        ramp_s = time.monotonic() - ramp_started
        rss_ramped = harness.rss_bytes(server.process.pid)
        window_started = time.monotonic()
        await asyncio.sleep(window)
        scheduler = await _scheduler(probe, server.url)
        rss_after = harness.rss_bytes(server.process.pid)
        window_ended = time.monotonic()
        blockers_running = sum(1 for s in blockers if "ended_at" not in s)
        for task in tasks + blocker_tasks:
            task.cancel()
        await asyncio.gather(*tasks, *blocker_tasks, return_exceptions=True)
        settle_deadline = time.monotonic() + 120
        while time.monotonic() < settle_deadline:
            after = await _scheduler(probe, server.url)
            if after["slots_busy"] == 0 and after["queue_depth"] == 0:
                break
            await asyncio.sleep(0.5)

    open_queued = [s for s in held if s.get("status") == 200 and "accepted_at" in s and "started_at" not in s
                   and "ended_at" not in s and "error" not in s]
    silences = []
    for state in open_queued:
        stamps = [t for t in state["lines"] if t >= state["accepted_at"]] + [window_ended]
        silences.append(max(b - a for a, b in itertools.pairwise(stamps)))
    keepalives = [state["keepalives"] for state in open_queued]
    return {
        "held_requested": count,
        "held_open": len(open_queued),
        "status_counts": {str(k): sum(1 for s in held if s.get("status") == k) for k in {s.get("status") for s in held}},
        "errors": sum(1 for s in held if "error" in s),
        "error_kinds": {kind: sum(1 for s in held if s.get("error") == kind) for kind in {s.get("error") for s in held}
                        if kind},
        "started_while_held": sum(1 for s in held if "started_at" in s),
        "blockers": slots, "blockers_still_running_at_end": blockers_running,
        "queue_depth_at_end": scheduler.get("queue_depth"),
        "ramp_s": round(ramp_s, 1),
        "window_s": round(window_ended - window_started, 1),
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_after_ramp_mib": round(rss_ramped / 2**20, 1),
        "rss_held_mib": round(rss_after / 2**20, 1),
        "kib_per_open_stream": round((rss_after - rss_before) / 1024 / len(open_queued), 1) if open_queued else None,
        "rss_drift_before_ramp_kib_per_s": round(drift, 1),
        "keepalive": keepalive_summary(silences, keepalives, interval),
    }


async def hold_llama_cpp_server(server, count: int, *, window: float, max_tokens_blocker: int) -> dict:
    """What llama_cpp.server does with `count` streams waiting while one generates: how many
    got response headers, any bytes or pings, whether the running stream kept going, RSS."""
    url = f"{server.url}/v1/completions"
    limits = httpx.Limits(max_connections=count + 20, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(None, connect=60), limits=limits) as client:
        blocker = {"lines": [], "events": [], "keepalives": 0}
        body = {"prompt": BLOCKER_PROMPT, "max_tokens": max_tokens_blocker, "temperature": 0, "repeat_penalty": 1.0,
                "stream": True}
        blocker_task = asyncio.create_task(_held_stream(client, url, body, {}, blocker))
        deadline = time.monotonic() + 60
        while blocker.get("data", 0) < 2 and time.monotonic() < deadline and "ended_at" not in blocker:
            await asyncio.sleep(0.1)
        # Its RSS grows while a stream generates (llama-cpp-python's score rows fill in): what it
        # does over 3 s before the ramp is recorded, not subtracted.
        await asyncio.sleep(0.5)
        drift_from, drift_started = harness.rss_bytes(server.process.pid), time.monotonic()
        await asyncio.sleep(3.0)
        rss_before = harness.rss_bytes(server.process.pid)
        drift = (rss_before - drift_from) / 1024 / (time.monotonic() - drift_started)
        held = [{"lines": [], "events": [], "keepalives": 0} for _ in range(count)]
        tasks = []
        for index, state in enumerate(held):
            body = {"prompt": prompt_for(200_000 + index), "max_tokens": 4, "temperature": 0, "repeat_penalty": 1.0,
                    "stream": True}
            tasks.append(asyncio.create_task(_held_stream(client, url, body, {}, state)))
            if index % 50 == 49:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        blocker_chunks_at_start = blocker.get("data", 0)
        await asyncio.sleep(window)
        blocker_chunks_during = blocker.get("data", 0) - blocker_chunks_at_start
        rss_after = harness.rss_bytes(server.process.pid)
        for task in [*tasks, blocker_task]:
            task.cancel()
        await asyncio.gather(*tasks, blocker_task, return_exceptions=True)
    return {
        "held_requested": count,
        "got_response_headers": sum(1 for s in held if "status" in s),
        "got_any_line": sum(1 for s in held if len(s["lines"]) > 1),
        "pings": sum(s["keepalives"] for s in held),
        "errors": sum(1 for s in held if "error" in s),
        "window_s": window,
        "running_stream_chunks_during_window": blocker_chunks_during,
        "running_stream_stalled": blocker_chunks_during == 0 and "ended_at" not in blocker,
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_held_mib": round(rss_after / 2**20, 1),
        "kib_per_held_connection": round((rss_after - rss_before) / 1024 / count, 1),
        "rss_drift_before_ramp_kib_per_s": round(drift, 1),
    }


# ---------------------------------------------------------------------------------------------
# Plots

def write_plots(report: dict, out_dir: Path) -> list[str]:
    """tokens/s (per stream, aggregate) and first token (p50, p95) against streams, per side."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -r requirements-dev.txt)", flush=True)
        return []
    matplotlib.use("Agg")
    from matplotlib import pyplot

    out_dir.mkdir(parents=True, exist_ok=True)
    machine = report["machine"]
    title = (f"{machine['cpu_model']}, {machine['cores_usable']} cores, llama-cpp-python "
             f"{machine['llama_cpp_python']}, {report['date'][:10]}, {report['config']['max_tokens']} tokens"
             + (" (QUICK SMOKE RUN)" if report["config"]["quick"] else "")
             + f"\nthreads: floor and llama_cpp.server {report['sides']['floor']['best_threads']}, Sluice "
             f"{report['sides']['sluice_sse']['settings_in_effect'].get('llama_threads_in_effect')}; "
             f"load average at start {machine['load_average'][0]}")
    rows = report["rows"]
    levels = sorted({r["streams"] for r in rows})
    written = []

    def series(side, key):
        found = {r["streams"]: r[key] for r in rows if r["side"] == side}
        xs = [x for x in levels if found.get(x) is not None]
        return xs, [found[x] for x in xs]

    figure, axes = pyplot.subplots(1, 2, figsize=(12, 4.8))
    for side in SIDES:
        for axis, key in zip(axes, ("tokens_per_second_per_stream", "aggregate_tokens_per_second")):
            xs, ys = series(side, key)
            if xs:
                axis.plot(xs, ys, marker="o", label=LABELS[side])
    for axis, name in zip(axes, ("tokens/s per stream (median)", "aggregate tokens/s (median of rounds)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(x) for x in levels])
        axis.set_xlabel("concurrent streams")
        axis.set_ylabel(name)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = out_dir / "compare_tokens_per_second.png"
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    written.append(str(path))

    figure, axis = pyplot.subplots(figsize=(7, 4.8))
    for number, side in enumerate(SIDES):
        color = f"C{number}"
        xs, ys = series(side, "first_token_ms_p50")
        if xs:
            axis.plot(xs, ys, marker="o", color=color, label=f"{LABELS[side]} p50")
        xs, ys = series(side, "first_token_ms_p95")
        if xs:
            axis.plot(xs, ys, marker="x", linestyle="--", color=color, label=f"{LABELS[side]} p95")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xticks(levels, [str(x) for x in levels])
    axis.set_xlabel("concurrent streams")
    axis.set_ylabel("first token, ms (client side)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    path = out_dir / "compare_first_token.png"
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    written.append(str(path))
    return written


# ---------------------------------------------------------------------------------------------

def run_warnings(machine: dict, floor_threads: int, sluice_settings: dict) -> list[str]:
    """What makes a run's figures doubtful: a busy machine, or the sides on different threads."""
    warnings = []
    load = machine["load_average"][0]
    if load > 0.25 * machine["cores_usable"]:
        warnings.append(f"load average {load} at start on {machine['cores_usable']} cores: not a quiet machine; "
                        "a side with more llama.cpp threads than free cores slows down most")
    sluice_threads = sluice_settings.get("llama_threads_in_effect")
    if isinstance(sluice_threads, int) and sluice_threads != floor_threads:
        warnings.append(f"the floor's best thread count ({floor_threads}, also llama_cpp.server's) differs from "
                        f"Sluice's ({sluice_threads}); --sluice-env SLUICE_N_THREADS={floor_threads} compares "
                        "them at equal threads")
    return warnings


def parse_env(items: list[str]) -> dict:
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--sluice-env wants KEY=VALUE, got {item!r}")
        found[key] = value
    return found


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run (~2 min): 1 round, 16 tokens, 100 held")
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (quick: 1)")
    parser.add_argument("--lone-rounds", type=int, default=None,
                        help="rounds of one lone stream per side for the first-token target (default 20; quick 3)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--max-tokens", type=int, default=None, help="default 64 (quick: 16)")
    parser.add_argument("--settle", type=float, default=None, help="idle seconds before each cell (default 1; quick 0.3)")
    parser.add_argument("--sweep-runs", type=int, default=None, help="floor thread sweep runs per count (default 3)")
    parser.add_argument("--floor-threads", type=int, default=0, help="skip the sweep: use this thread count")
    parser.add_argument("--disconnects", type=int, default=None, help="per side (default 5; quick 1)")
    parser.add_argument("--hold", type=int, default=None, help="queued streams held open (default 1000; quick 100; 0: skip)")
    parser.add_argument("--hold-heartbeat", type=float, default=None,
                        help="SLUICE_HEARTBEAT_SECONDS on the hold server (default 5; quick 1; recorded)")
    parser.add_argument("--hold-window", type=float, default=None,
                        help="seconds held after the ramp (default 4 heartbeats)")
    parser.add_argument("--hold-llama-server", type=int, default=None,
                        help="streams held waiting on llama_cpp.server (default 100; quick 50; 0: skip)")
    parser.add_argument("--n-ctx", type=int, default=4096, help="floor and llama_cpp.server context (Sluice: its settings)")
    parser.add_argument("--n-batch", type=int, default=256, help="floor and llama_cpp.server batch")
    parser.add_argument("--tuned-alternatives", type=int, default=None,
                        help="configurations tune ranked highest, besides the chosen one, measured against it at "
                             "4 streams (default 2; quick 1; 0: skip; only with a tuning file in effect)")
    parser.add_argument("--sluice-env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the Sluice servers (repeatable), e.g. SLUICE_SLOTS=2")
    parser.add_argument("--out", default=None, help="results JSON (default bench/results/compare.json)")
    parser.add_argument("--plots", default=None, help="plot folder (default docs/bench)")
    args = parser.parse_args()
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 5)
    args.lone_rounds = args.lone_rounds or (3 if quick else 20)
    args.max_tokens = args.max_tokens or (16 if quick else 64)
    args.settle = args.settle if args.settle is not None else (0.3 if quick else 1.0)
    args.sweep_runs = args.sweep_runs or (1 if quick else 3)
    args.disconnects = args.disconnects if args.disconnects is not None else (1 if quick else 5)
    args.hold = args.hold if args.hold is not None else (100 if quick else 1000)
    args.tuned_alternatives = args.tuned_alternatives if args.tuned_alternatives is not None else (1 if quick else 2)
    args.hold_heartbeat = args.hold_heartbeat or (1.0 if quick else 5.0)
    args.hold_window = args.hold_window or 4 * args.hold_heartbeat
    args.hold_llama_server = args.hold_llama_server if args.hold_llama_server is not None else (50 if quick else 100)
    out = Path(args.out or ROOT / "bench" / "results" / ("compare-quick.json" if quick else "compare.json"))
    plots = Path(args.plots or (ROOT / "bench" / "results" / "compare-quick" if quick else ROOT / "docs" / "bench"))
    sluice_env = parse_env(args.sluice_env)
    levels = sorted(set(args.streams))
    begun = time.monotonic()
    phases: dict = {}

    machine = harness.machine_info()
    log(f"{machine['cpu_model']}, {machine['cores_usable']} usable cores, load {machine['load_average']}, "
        f"llama-cpp-python {machine['llama_cpp_python']}")
    import django

    django.setup()
    import logging

    import llama_cpp

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    from generation.backends.model_files import embedded_model_file

    model_path = str(embedded_model_file(ROOT / "var" / "models").path)
    work = Path(tempfile.mkdtemp(prefix="sluice-compare-"))
    raise_fd_limit(2 * args.hold + 1024)
    cores = machine["cores_usable"]

    # The floor's contexts: one per concurrent stream, loaded before any server starts.
    contexts = [
        harness.reference_llama(model_path=model_path, n_ctx=args.n_ctx, n_batch=args.n_batch, n_ubatch=args.n_batch,
                                n_threads=cores, n_threads_batch=cores, verbose=False)
        for _ in range(max(levels))
    ]
    first_tokens = [contexts[0].tokenize(f"{word} x".encode(), add_bos=False)[0] for word in WORDS]
    if len(set(first_tokens)) != len(first_tokens):
        log(f"warning: {len(first_tokens) - len(set(first_tokens))} prompt first words share a first token")
    workers = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stream{k}") for k in range(max(levels))]
    index = 0

    # Best thread count for one in-process stream (interleaved over the counts).
    sweep: dict = {}
    if args.floor_threads:
        best = args.floor_threads
    else:
        candidates = thread_candidates(cores)
        # Warm on the thread that runs context 0 from now on, never on this one: every thread
        # that runs a parallel decode keeps an OpenMP team, and once the teams hold more
        # threads than there are cores libgomp sleeps at ggml's barriers instead of spinning,
        # which slowed the floor's 2-thread stream below its 1-thread one.
        workers[0].submit(contexts[0].create_completion, prompt_for(index), max_tokens=4, temperature=0).result()
        index += 1
        for run in range(args.sweep_runs):
            for threads in candidates[run % len(candidates):] + candidates[:run % len(candidates)]:
                llama_cpp.llama_set_n_threads(contexts[0].ctx, threads, threads)
                time.sleep(args.settle)
                record = workers[0].submit(stream_in_process, contexts[0], prompt_for(index), args.max_tokens).result()
                index += 1
                sweep.setdefault(threads, []).append(stream_metrics(record))
        sweep = {
            threads: {
                "tokens_per_second_median": _round(statistics.median(m["tokens_per_second"] for m in found)),
                "first_token_ms_median": _round(statistics.median(m["first_token_ms"] for m in found), 1),
                "runs": len(found),
            }
            for threads, found in sweep.items()
        }
        best = max(sweep, key=lambda t: sweep[t]["tokens_per_second_median"])
    phases["floor_thread_sweep_s"] = round(time.monotonic() - begun, 1)
    log(f"floor: best thread count {best} {json.dumps(sweep)}")

    llama_server = sluice = None
    hold_llama: dict = {}
    try:
        llama_server = harness.start_llama_cpp_server(model_path, work, threads=best, n_ctx=args.n_ctx,
                                                      n_batch=args.n_batch)
        (work / "sluice").mkdir()
        sluice = harness.start_server(work / "sluice", **sluice_env)
        sluice_settings = harness.settings_in_effect(sluice)
        v1_key = harness.create_api_key(sluice, "bench-v1")
        v1_model = httpx.get(f"{sluice.url}/v1/models", headers={"Authorization": f"Bearer {v1_key}"},
                             timeout=30).json()["data"][0]["id"]
        sides = Sides(contexts=contexts, llama_server=llama_server, sluice=sluice, sse_key=sluice.api_key,
                      v1_key=v1_key, v1_model=v1_model, max_tokens=args.max_tokens)
        log(f"servers up: llama_cpp.server {llama_server.url}, Sluice {sluice.url} "
            f"(slots {sluice_settings.get('SLUICE_SLOTS')}, threads {sluice_settings.get('llama_threads_in_effect')}, "
            f"engine {sluice_settings.get('SLUICE_ENGINE')})")

        # Warm every side (also every worker's connection), not kept.
        set_floor_threads(contexts, max(levels), best)
        for side in SIDES:
            run_cell(sides, workers, side, max(levels), index, 4)
            index += max(levels)
        phase_started = time.monotonic()

        streams: list[dict] = []
        cells: list[dict] = []
        turn = 0
        for round_number in range(args.rounds):
            for level in levels:
                order = SIDES[turn % len(SIDES):] + SIDES[:turn % len(SIDES)]
                turn += 1
                for side in order:
                    floor_threads = set_floor_threads(contexts, level, best) if side == "floor" else None
                    time.sleep(args.settle)
                    records, wall = run_cell(sides, workers, side, level, index, args.max_tokens)
                    tokens = sum(r["tokens"] for r in records if r["ok"])
                    cells.append({
                        "side": side, "streams": level, "round": round_number, "first_prompt": index,
                        "wall_s": round(wall, 3), "tokens": tokens, "floor_threads_per_context": floor_threads,
                        "aggregate_tokens_per_second": round(tokens / wall, 2) if tokens else None,
                    })
                    for k, record in enumerate(records):
                        streams.append({
                            "side": side, "streams": level, "round": round_number, "prompt": index + k,
                            "ok": record["ok"], "error": record["error"], "tokens": record["tokens"],
                            "finish_reason": record["finish_reason"],
                            **{key: _round(value, 3) for key, value in stream_metrics(record).items()},
                        })
                    index += level
                    errors = [r["error"] for r in records if not r["ok"]]
                    log(f"round {round_number + 1}/{args.rounds} {side:16} x{level}: "
                        f"{cells[-1]['aggregate_tokens_per_second']} tok/s aggregate, {wall:.1f} s"
                        + (f", errors {errors[:2]}" if errors else ""))
        phases["rounds_s"] = round(time.monotonic() - phase_started, 1)

        phase_started = time.monotonic()
        lone, index = lone_first_token_phase(sides, workers, contexts, best, pairs=args.lone_rounds,
                                             first_index=index, settle=args.settle)
        phases["lone_s"] = round(time.monotonic() - phase_started, 1)
        log("lone first token p50 (ms): " + ", ".join(
            f"{side} {found['first_token_ms_p50']}" for side, found in lone["sides"].items()))

        phase_started = time.monotonic()
        tuned, index = tuned_phase(sluice, sluice_settings, sluice_env, work, workers,
                                   count=args.tuned_alternatives, rounds=args.rounds, level=4, first_index=index,
                                   max_tokens=args.max_tokens, settle=args.settle)
        phases["tuned_s"] = round(time.monotonic() - phase_started, 1)

        phase_started = time.monotonic()
        disconnect = disconnect_checks(sides, args.disconnects, after_chunks=3 if quick else 10, first_index=index,
                                       settle=args.settle)
        index += 3 * (args.disconnects + 1)
        phases["disconnects_s"] = round(time.monotonic() - phase_started, 1)
        for side in HTTP_SIDES:
            log(f"disconnect {side}: tokens after hang-up max {disconnect[side]['tokens_after_hang_up_max']}, "
                f"CPU-s next 2 s max {disconnect[side]['server_cpu_seconds_next_2s_max']}")

        # Last use of llama_cpp.server: past its thread pool (40) the waiting requests can wedge it.
        hold_llama = {"note": "skipped (--hold-llama-server 0)"}
        if args.hold_llama_server:
            phase_started = time.monotonic()
            sluice.stop()  # not measured here: its engine thread must not share the cores
            hold_llama = asyncio.run(hold_llama_cpp_server(
                llama_server, args.hold_llama_server, window=args.hold_window, max_tokens_blocker=1024))
            phases["hold_llama_cpp_server_s"] = round(time.monotonic() - phase_started, 1)
            log(f"llama_cpp.server with {args.hold_llama_server} waiting: {json.dumps(hold_llama)}")
    finally:
        for server in (sluice, llama_server):
            if server is not None:
                server.stop()
        for worker in workers:
            worker.shutdown(wait=False)

    hold = None
    if args.hold:
        phase_started = time.monotonic()
        # A queue for all of them, no queue timeout, and blockers that outlast the ramp and the
        # window: max_tokens up to the context (a counting prompt, so greedy output goes on).
        blocker_tokens = int(sluice_settings["SLUICE_N_CTX"]) - 128
        hold_env = {**sluice_env, "SLUICE_MAX_QUEUE": str(args.hold + 64), "SLUICE_QUEUE_TIMEOUT_SECONDS": "900",
                    "SLUICE_HEARTBEAT_SECONDS": str(args.hold_heartbeat), "SLUICE_MAX_TOKENS": str(blocker_tokens)}
        (work / "hold").mkdir()
        hold_server = harness.start_server(work / "hold", **hold_env)
        try:
            hold_settings = harness.settings_in_effect(hold_server)
            log(f"hold: {args.hold} streams queued behind {hold_settings['SLUICE_SLOTS']} busy slots, "
                f"keep-alive every {hold_settings['SLUICE_HEARTBEAT_SECONDS']} s")
            hold = asyncio.run(hold_queued(
                hold_server, hold_server.api_key, args.hold, slots=int(hold_settings["SLUICE_SLOTS"]),
                interval=float(hold_settings["SLUICE_HEARTBEAT_SECONDS"]), window=args.hold_window,
                max_tokens_blocker=int(hold_settings["SLUICE_MAX_TOKENS"]),
            ))
            hold["server_settings_overridden"] = hold_env
        finally:
            hold_server.stop()
        phases["hold_s"] = round(time.monotonic() - phase_started, 1)
        log(f"hold: {hold['held_open']} open, {hold['kib_per_open_stream']} KiB each, "
            f"longest silence {hold['keepalive']['max_silence_s']} s (interval {hold['keepalive']['interval_s']} s)")

    rows = add_ratios(summarize_rows(streams, cells, levels=levels))
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "config": {**{k: v for k, v in vars(args).items() if k not in ("out", "plots")}, "streams": levels,
                   "model": Path(model_path).name},
        "sides": {
            "floor": {
                "what": "llama-cpp-python Llama.create_completion(stream=True) in the bench process, no HTTP; "
                        "N streams = N independent Llama contexts run at once, one thread each driving it, "
                        "max(1, best // N) llama.cpp threads per context",
                "best_threads": best, "thread_sweep": sweep, "n_ctx": args.n_ctx, "n_batch": args.n_batch,
                "threads_per_context": {str(n): max(1, best // n) for n in levels},
            },
            "llama_cpp_server": {
                "what": "python -m llama_cpp.server, /v1/completions stream; one request at a time (its lock), "
                        "the others wait",
                "argv": llama_server.argv if llama_server else None,
            },
            "sluice_sse": {"what": "POST /api/v1/generations (native SSE) on manage.py serve (daphne)",
                           "settings_in_effect": sluice_settings, "sluice_env": sluice_env,
                           "tuning_status": sluice_settings.get("SLUICE_TUNING_STATUS"),
                           "config_sources": sluice_settings.get("SLUICE_CONFIG_SOURCES")},
            "sluice_v1": {"what": "POST /v1/completions stream on the same server, another API key",
                          "settings_in_effect": "as sluice_sse"},
        },
        "rows": rows,
        "lone": lone,
        "tuned": tuned,
        "disconnect": disconnect,
        "hold": hold or {"note": "skipped (--hold 0)"},
        "hold_llama_cpp_server": {
            **hold_llama,
            "note": "llama_cpp.server has no queue: a waiting request blocks one thread of its pool (anyio, 40 by "
                    "default) on the model lock inside a dependency, before any response byte; no keep-alives "
                    "(sse-starlette pings start with the response). Not comparable with a queue: recorded as is"},
        "targets": None,
        "phases_s": phases,
        "elapsed_s": round(time.monotonic() - begun, 1),
        "cells": cells,
        "streams": streams,
    }
    report["warnings"] = run_warnings(machine, best, sluice_settings)
    report["targets"] = evaluate_targets(rows, {s: disconnect[s] for s in HTTP_SIDES}, hold, tuned, lone)
    report["plots"] = write_plots(report, plots)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    print()
    print(f"{machine['cpu_model']} | {cores} usable cores | load at start {machine['load_average']} | "
          f"llama-cpp-python {machine['llama_cpp_python']} | {report['date']}")
    print(f"llama.cpp: {machine['llama_cpp_system_info']}")
    print(f"model {Path(model_path).name}, {args.max_tokens} tokens, {args.rounds} round(s), floor threads {best}, "
          f"Sluice: slots {sluice_settings.get('SLUICE_SLOTS')}, threads {sluice_settings.get('llama_threads_in_effect')}, "
          f"engine {sluice_settings.get('SLUICE_ENGINE')}, n_batch {sluice_settings.get('SLUICE_N_BATCH')}"
          + (f", env {sluice_env}" if sluice_env else ""))
    if sluice_settings.get("SLUICE_TUNING_STATUS"):
        print(f"Sluice tuning: {sluice_settings['SLUICE_TUNING_STATUS']}")
    for warning in run_warnings(machine, best, sluice_settings):
        print(f"WARNING: {warning}")
    print()
    print(format_table(rows))
    print()
    print(f"lone streams, {lone['pairs']} rounds: " + "; ".join(
        f"{side} first token p50 {found['first_token_ms_p50']} ms p95 {found['first_token_ms_p95']} ms"
        + (f" ({found['delta_ms_p50_vs_floor']:+} vs floor, paired {found['paired_delta_ms_p50_vs_floor']:+})"
           if side != "floor" and found.get("delta_ms_p50_vs_floor") is not None else "")
        for side, found in lone["sides"].items()))
    for name, found in (tuned.get("configs") or {}).items():
        print(f"tuned {'(chosen) ' if found['chosen'] else ''}{name}: {found['aggregate_median']} tok/s at "
              f"{tuned['level']} streams, median of {found['cells']} (tune recorded {found['tune_recorded']})")
    if tuned.get("note"):
        print(f"tuned: {tuned['note']}")
    for side in HTTP_SIDES:
        found = disconnect[side]
        print(f"disconnect {side:16}: tokens after hang-up max {found['tokens_after_hang_up_max']} "
              f"({found['tokens_counted']}), server CPU-s in the next 2 s max {found['server_cpu_seconds_next_2s_max']} "
              f"median {found['server_cpu_seconds_next_2s_median']} ({found['repeats']} runs)")
    if hold:
        print(f"held in queue: {hold['held_open']} of {hold['held_requested']} open, {hold['kib_per_open_stream']} "
              f"KiB server RSS each; longest silence {hold['keepalive']['max_silence_s']} s, p99 "
              f"{hold['keepalive']['p99_silence_s']} s, interval {hold['keepalive']['interval_s']} s, "
              f"late streams {hold['keepalive']['late_streams']}")
    if hold_llama.get("held_requested"):
        print(f"llama_cpp.server with {hold_llama['held_requested']} waiting: {hold_llama['got_response_headers']} got "
              f"headers, {hold_llama['pings']} pings, running stream {hold_llama['running_stream_chunks_during_window']} "
              f"chunks in {hold_llama['window_s']} s (stalled: {hold_llama['running_stream_stalled']}), "
              f"{hold_llama['kib_per_held_connection']} KiB RSS per waiting connection")
    print()
    print("targets (reported, not asserted):")
    for name, value in report["targets"].items():
        shown = {k: v for k, v in value.items() if k != "rows"}
        print(f"  {name}: {json.dumps(shown)}")
        if "rows" in value:
            for row_name, row in value["rows"].items():
                print(f"      {row_name}: {json.dumps(row)}")
    print(f"\nwrote {out}" + (f" and {', '.join(report['plots'])}" if report["plots"] else "")
          + f" in {report['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
