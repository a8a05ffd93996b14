"""`manage.py tune`: measure this machine with the configured model and write the llama.cpp
configuration that serves the expected concurrency best to the tuning file (docs/cli.md)."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import llama_cpp
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.backends.cpu import threads_per_process, usable_cores
from generation.backends.llamacpp import ENGINES, LlamaCppBackend
from generation.backends.model_files import configured_model_file
from generation.ops.served_tuning import ServedTuning, ServedTuningError
from generation.ops.tuner import Outcome, Tuner
from generation.ops.tuning import (LEVELS, LONG_PROMPT_FIRST_TOKEN_TOLERANCE, Config, Row, choose, physical_cores, plan,
                                    table)
from project import tuning

DEFAULT_N_BATCH = 256  # project/settings.py; the alternative measured is half of it


@dataclass
class Result:
    """Both passes: the grid with short prompts, then n_batch with long ones."""

    grid: Outcome
    confirmed: Outcome | None = None
    n_batch: Outcome | None = None
    values: dict = field(default_factory=dict)  # what is written: the measured names only
    chosen: Row | None = None  # engine, threads and slots (n_batch is in `values`)
    stopped: str = ""
    disturbed: list[str] = field(default_factory=list)  # deciding figures whose every run shared the cores


class Command(BaseCommand):
    help = (
        "Measure llama.cpp configurations (threads, slots, engine, n_batch) on this machine with the "
        "configured model, print the table and write the best one for the expected concurrency to the "
        "tuning file, which serve uses for the values the environment leaves unset."
    )

    def add_arguments(self, parser):
        parser.add_argument("--budget-seconds", type=float, default=180.0,
                            help="stop measuring after this (default 180)")
        parser.add_argument("--expected-concurrency", type=int, default=4,
                            help="streams at once to serve best (default 4, the default SLUICE_SLOTS)")
        parser.add_argument("--tokens", type=int, default=32, help="tokens per measured stream (default 32)")
        parser.add_argument("--threads", type=int, nargs="+",
                            help="thread counts (default: cores / SLUICE_PROCESSES, the physical cores, half)")
        parser.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4, 8])
        parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
        parser.add_argument("--n-batch", type=int, nargs="+", help="n_batch values (default: 256 and 128)")
        parser.add_argument("--long-prompt-tokens", type=int, default=384, help="prompt length of the n_batch pass")
        parser.add_argument("--output", help="the tuning file (default: SLUICE_TUNING_FILE, var/tuning.json)")
        parser.add_argument("--in-process", action="store_true",
                            help="measure the backend in this process, not each configuration as served (faster; "
                                 "leaves out what serving costs per token)")
        parser.add_argument("--dry-run", action="store_true", help="measure and print, write nothing")
        parser.add_argument("--force", action="store_true",
                            help="write even when other work took the cores during the deciding runs")
        parser.add_argument("--if-needed", action="store_true",
                            help="do nothing when the tuning file already matches this model and CPU (make run)")

    def handle(self, *args, budget_seconds, expected_concurrency, tokens, long_prompt_tokens, output, dry_run,
               force, if_needed, in_process, **options):
        path = Path(output) if output else settings.SLUICE_TUNING_FILE
        off = tuning.off_reason(switch=settings.SLUICE_TUNING or not if_needed, upstreams=settings.SLUICE_UPSTREAMS,
                                backend=settings.SLUICE_BACKEND)
        if off and if_needed:
            self.stdout.write(f"Tuning: not needed ({off}).")
            return
        if off:
            raise CommandError(f"Nothing to tune: {off}.")
        if expected_concurrency < 1 or tokens < 2 or budget_seconds <= 0 or long_prompt_tokens < 2:
            raise CommandError("--expected-concurrency must be at least 1, --tokens and --long-prompt-tokens at "
                               "least 2, --budget-seconds positive.")
        model = configured_model_file()  # assembles the embedded model if needed
        current = tuning.current_fingerprint(
            model_path=settings.SLUICE_MODEL_PATH, cache_dir=settings.SLUICE_MODEL_CACHE_DIR,
            processes=settings.SLUICE_PROCESSES, n_gpu_layers=settings.SLUICE_N_GPU_LAYERS,
        )
        if if_needed:
            state = tuning.load(path, environ=os.environ, current=lambda: current)
            if state.matches or all(name in os.environ for name in tuning.TUNED):
                said = state.status if state.matches else "every value is set in the environment"
                self.stdout.write(f"Tuning: {said}")
                return
            self.stdout.write(f"Tuning this machine once ({state.status}), at most about {budget_seconds:.0f} s; "
                              f"`make run SLUICE_TUNE=0` skips it.")

        grid = self._grid(threads=options["threads"], slots=options["slots"], engines=options["engines"],
                          n_batch=options["n_batch"])
        cpu, load_before = current["cpu"], os.getloadavg()[0]
        self.stdout.write(
            f"Measuring {model.name} on {cpu['model']} ({cpu['cores']} usable cores, SLUICE_PROCESSES="
            f"{settings.SLUICE_PROCESSES}), {tokens} tokens per stream, distinct greedy prompts, "
            f"budget {budget_seconds:.0f} s, load average {load_before:.2f}"
        )
        if load_before > 0.5 * cpu["cores"]:
            self.stderr.write("WARNING: other work is using the cores (load average above half the cores): "
                              "the figures will be noisy and may favour the wrong configuration.")

        def load(config: Config) -> LlamaCppBackend:
            return LlamaCppBackend(
                model_path=str(model.path), model_name=model.name, model_version=model.sha256,
                n_ctx=settings.SLUICE_N_CTX, n_batch=config.n_batch, n_threads=config.threads,
                n_gpu_layers=settings.SLUICE_N_GPU_LAYERS, slots=config.slots,
                extra_buffers=settings.SLUICE_LLAMA_EXTRA_BUFFERS, engine=config.engine,
            )

        started = time.monotonic()
        configs = plan(threads=grid["threads"], slots=grid["slots"], engines=grid["engines"],
                       n_batch=grid["n_batch"][0])
        with contextlib.ExitStack() as stack, _served_failure():
            if in_process:
                serve = load
            else:
                self.stdout.write("Each configuration is served by its own `manage.py serve` on loopback and measured "
                                  "through the SSE API (the n_batch pass: in this process).")
                serve = stack.enter_context(ServedTuning(model.path)).start
            # The served set-up (a database, collected static files) comes out of the budget.
            budget_left = max(budget_seconds - (time.monotonic() - started), 0.1 * budget_seconds)
            result = self._measure(serve, load, configs, grid["n_batch"], tokens=tokens,
                                   concurrency=expected_concurrency, budget_s=budget_left,
                                   long_prompt_tokens=long_prompt_tokens)
        elapsed = time.monotonic() - started
        self._report(result, concurrency=expected_concurrency, elapsed=elapsed, long_prompt_tokens=long_prompt_tokens)
        if not result.values:
            raise CommandError("Too little was measured to choose: nothing written; raise --budget-seconds.")
        if configs[0] not in [row.config for row in result.grid.rows if row.at(expected_concurrency) is not None]:
            # The first in the plan is the default configuration: a choice not compared with it could be worse.
            raise CommandError(f"The budget ran out before {configs[0].label.strip()} was measured: nothing written; "
                               f"raise --budget-seconds.")
        if dry_run:
            self.stdout.write("Dry run: nothing written.")
            return
        if result.disturbed and not force:
            raise CommandError(
                f"Other work took the cores during every run of {', '.join(result.disturbed)} (marked !), so the "
                f"choice may be wrong: nothing written. Run `manage.py tune` again when the machine is quiet "
                f"(or with --force).")
        tuning.write(path, {
            "tuned_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": current,
            "values": result.values,
            "expected_concurrency": expected_concurrency,
            "measured": "in-process" if in_process else "served",
            "tokens_per_stream": tokens,
            "long_prompt_tokens": long_prompt_tokens,
            "budget_seconds": budget_seconds,
            "elapsed_seconds": round(elapsed, 1),
            "stopped_early": result.stopped,
            "load_average_before": round(load_before, 2),
            "pinned_by_environment": sorted(name for name in tuning.TUNED if name in os.environ),
            "llama_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
            "rows": [row.as_dict() for row in result.grid.rows],
            "finalist_rows": [row.as_dict() for row in result.confirmed.rows] if result.confirmed else [],
            "n_batch_rows": [row.as_dict() for row in result.n_batch.rows] if result.n_batch else [],
        })
        self.stdout.write(f"Wrote {path}: serve uses it for the values not set in the environment "
                          f"(SLUICE_TUNING=false ignores it).")

    def _measure(self, serve, load, configs, n_batches, *, tokens, concurrency, budget_s,
                 long_prompt_tokens) -> Result:
        """The grid (up to 65% of the budget) and the finalists again, interleaved (up to 85%),
        each configuration from `serve`; then n_batch on the choice with long prompts (the
        rest), with backends from `load`."""
        started = time.monotonic()
        progress = Progress(sys.stderr, budget_s)
        cores = None if settings.SLUICE_N_GPU_LAYERS else usable_cores()  # CPU share means nothing on a GPU
        tuner = Tuner(load=serve, configs=configs, tokens=tokens, concurrency=concurrency, budget_s=0.65 * budget_s,
                      cores=cores, progress=progress)
        result = Result(grid=tuner.run())
        progress.next_pass(result.grid.steps)
        tuner.budget_s, tuner.limit_s = 0.85 * budget_s, budget_s
        result.confirmed = tuner.confirm(result.grid.rows)
        progress.next_pass(result.confirmed.steps)
        chosen = result.confirmed.chosen or result.grid.chosen
        result.stopped = "; ".join(filter(None, (result.grid.stopped, result.confirmed.stopped)))
        n_batch = configs[0].n_batch
        left = budget_s - (time.monotonic() - started)
        if chosen is not None and len(n_batches) > 1 and left < 0.1 * budget_s:
            result.stopped = "; ".join(filter(None, (result.stopped, "no time left for the n_batch pass")))
        elif chosen is not None and len(n_batches) > 1:
            # n_batch only matters once a prompt is longer than a chunk: its own pass, with long prompts.
            result.n_batch = Tuner(
                load=load, tokens=tokens, concurrency=concurrency, levels=[concurrency], prune=False,
                configs=[Config(chosen.config.engine, chosen.config.threads, chosen.config.slots, value)
                         for value in n_batches],
                budget_s=left, prompt_tokens=long_prompt_tokens, cores=cores,
                prompt_offset=tuner.prompt_index, progress=progress,
            ).run()
            # A lone stream's tokens after the first cost the same for any n_batch: the 5% rule
            # would compare noise there, so first token and aggregate decide; a tie keeps the first value.
            result.n_batch.chosen = choose(result.n_batch.rows, concurrency=concurrency, lone_rule=False,
                                           first_token_tolerance=LONG_PROMPT_FIRST_TOKEN_TOLERANCE,
                                           prefer=lambda row: row.config.n_batch == n_batches[0])
            if result.n_batch.stopped:
                result.stopped = "; ".join(filter(None, (result.stopped, f"n_batch: {result.n_batch.stopped}")))
            elif result.n_batch.chosen is not None:  # every value measured; else the first one stays
                n_batch = result.n_batch.chosen.config.n_batch
        progress.close()
        if chosen is not None:
            values = Config(chosen.config.engine, chosen.config.threads, chosen.config.slots, n_batch).values()
            result.values = {name: value for name, value in values.items() if name not in os.environ}
        result.chosen = chosen
        deciding = result.confirmed.rows or [row for row in result.grid.rows if row is chosen]
        result.disturbed = [f"{row.config.label.split()[0]} slots={row.config.slots} at {level} stream(s)"
                            for row in deciding for level in sorted({1, min(concurrency, row.config.slots)})
                            if row.disturbed(level)]
        return result

    def _grid(self, *, threads, slots, engines, n_batch) -> dict:
        """The candidates; a value set in the environment pins its dimension (it would win anyway)."""
        default = threads_per_process(settings.SLUICE_PROCESSES)
        physical = max(1, physical_cores() // max(1, settings.SLUICE_PROCESSES))
        candidates = {
            "threads": threads or [t for t in dict.fromkeys((default, min(physical, default), default // 2)) if t >= 1],
            "slots": slots,
            "engines": engines,
            "n_batch": n_batch or [DEFAULT_N_BATCH, DEFAULT_N_BATCH // 2],
        }
        pinned = {"threads": settings.SLUICE_N_THREADS or default, "slots": settings.SLUICE_SLOTS,
                  "engines": settings.SLUICE_ENGINE, "n_batch": settings.SLUICE_N_BATCH}
        names = {"threads": "SLUICE_N_THREADS", "slots": "SLUICE_SLOTS", "engines": "SLUICE_ENGINE",
                 "n_batch": "SLUICE_N_BATCH"}
        for key, name in names.items():
            if name in os.environ:
                candidates[key] = [pinned[key]]
                self.stdout.write(f"{name} is set in the environment: measured only with {pinned[key]}.")
        if any(value < 1 for key in ("threads", "slots", "n_batch") for value in candidates[key]):
            raise CommandError("--threads, --slots and --n-batch take positive numbers.")
        if max(candidates["threads"]) > usable_cores():
            self.stderr.write(f"WARNING: more threads than the {usable_cores()} usable cores: those rows will be slow.")
        return candidates

    def _report(self, result: Result, *, concurrency: int, elapsed: float, long_prompt_tokens: int) -> None:
        rows = result.grid.rows
        self.stdout.write("")
        mark = next((row for row in rows if result.chosen and row.config == result.chosen.config), None)
        self.stdout.write(table(rows, concurrency=concurrency, chosen=mark, levels=LEVELS))
        self.stdout.write("* more streams than slots: the rest wait in the queue; figures of `slots` streams at once.\n"
                          "! every run of this figure shared the cores with other work (CPU share under 85%).")
        for line in result.grid.skipped:
            self.stdout.write(f"  {line}")
        if result.confirmed and result.confirmed.rows:
            self.stdout.write("\nThe finalists again, interleaved (best of all their runs):")
            self.stdout.write(table(result.confirmed.rows, concurrency=concurrency, chosen=result.chosen,
                                    levels=[concurrency]))
        if result.n_batch and result.n_batch.rows:
            self.stdout.write(f"\nn_batch, with {long_prompt_tokens}-token prompts:")
            self.stdout.write(table(result.n_batch.rows, concurrency=concurrency, chosen=result.n_batch.chosen,
                                    levels=[concurrency]))
        if result.stopped:
            self.stdout.write(f"\nStopped early: {result.stopped}.")
        if result.disturbed:
            self.stdout.write(f"\nWARNING: other work took the cores during every run of: "
                              f"{', '.join(result.disturbed)}.")
        self.stdout.write(f"\nMeasured in {elapsed:.0f} s (load average now {os.getloadavg()[0]:.2f}).")
        chosen = result.chosen
        if chosen is not None:
            finalists = result.confirmed.rows if result.confirmed and result.confirmed.rows else rows
            best_lone = max(row.lone for row in finalists if row.lone)
            values = ", ".join(f"{name}={value}" for name, value in result.values.items()) or "nothing (all set)"
            self.stdout.write(
                f"Chosen for {concurrency} stream(s) at once: {values} ({chosen.at(concurrency)[0]:.1f} tok/s "
                f"aggregate; a lone stream {chosen.lone:.1f} tok/s, the best lone {best_lone:.1f})."
            )


@contextlib.contextmanager
def _served_failure():
    try:
        yield
    except ServedTuningError as exc:
        raise CommandError(f"{exc}\nNothing written. `manage.py tune --in-process` measures without serving.") from exc


class Progress:
    """A one-line progress bar on a terminal, a line per configuration elsewhere (make's log)."""

    def __init__(self, stream, budget_s: float) -> None:
        self.stream, self.budget_s = stream, budget_s
        self.terminal = stream.isatty()
        self.started = time.monotonic()
        self.before = 0  # steps of the passes already finished

    def next_pass(self, steps_done: int) -> None:
        self.before += steps_done

    def __call__(self, done: int, total: int, text: str) -> None:
        elapsed = time.monotonic() - self.started
        done, total = done + self.before, total + self.before
        fraction = done / total if total else 1.0
        if self.terminal:
            bar = "#" * int(fraction * 30)
            self.stream.write(f"\r[{bar:<30}] {fraction * 100:3.0f}% {elapsed:4.0f}/{self.budget_s:.0f} s  "
                              f"{text[:60]:<60}")
            self.stream.flush()
        elif text.endswith("loading"):
            self.stream.write(f"[{fraction * 100:3.0f}% {elapsed:4.0f} s] {text.removesuffix(': loading')}\n")

    def close(self) -> None:
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()
