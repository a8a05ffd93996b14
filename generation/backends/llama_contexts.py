"""The contexts engine (SLUICE_ENGINE=contexts): one llama.cpp context per slot, each run by
its own engine (llama_engine.Engine with one sequence) on its own thread.

Where one `llama_decode` of several tokens costs nearly as much as that many decodes of one
(no gain from batching on that CPU), independent contexts keep every core busy on its own
stream instead.

Threads: each context decodes with `threads // contexts` (at least one). llama.cpp's CPU
backend is built with OpenMP here, and every thread that runs a parallel decode keeps its
own OpenMP team; once the teams in a process hold more threads than there are cores,
libgomp stops spinning at its barriers and sleeps instead, and ggml meets a barrier after
every graph node, so every decode in the process slows down (docs/architecture.md, Engines).
So the teams together never exceed `threads`. The one exception keeps a lone stream as fast as on the batched engine:
when contexts get one thread each (no team at all), the first context, and only it, decodes
with all `threads` while no other context is busy, and runs are placed on it when that is
free and no other context holds a longer prefix for the caller.

Each run is alone in its context, so every guarantee of the batched engine holds per
context: a cancel stops the decode in progress, the prefix cache is per caller, and the
chunked prefill and repeatable greedy rules are the engine's own.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from llama_cpp import _internals as internals

from .llama_engine import Engine, Sequence_, reusable_prefix


class ContextsEngine:
    """`contexts` engines of one sequence each, with the batched engine's interface."""

    def __init__(self, *, model: internals.LlamaModel, contexts: int, n_ctx: int, n_batch: int, threads: int,
                 piece: Callable[[int], bytes], verbose: bool = False) -> None:
        self._threads = threads
        self._per_context = max(1, threads // contexts)
        self._n_batch = n_batch
        self._lock = threading.Lock()
        self._running: dict[int, tuple[Sequence_, int]] = {}  # slot -> (run, engine index)
        self.engines: list[Engine] = []
        try:
            for index in range(contexts):
                self.engines.append(Engine(
                    model=model, sequences=1, n_ctx=n_ctx, n_batch=n_batch, threads=self._threads_for(index),
                    piece=piece, verbose=verbose, thread_share=lambda index=index: self._threads_for(index),
                ))
        except BaseException:
            self.close()
            raise

    def _lead_may_use_all(self) -> bool:
        return self._per_context == 1 and len(self.engines) > 0

    def _threads_for(self, index: int) -> int:
        # Read without the lock: a count a moment old only shifts one decode's split.
        if index == 0 and self._lead_may_use_all() and len(self._running) <= 1:
            return self._threads
        return self._per_context

    def submit(self, sequence: Sequence_) -> None:
        with self._lock:
            taken = {index for _, index in self._running.values()}
            free = [index for index in range(len(self.engines)) if index not in taken]
            if not free:
                raise RuntimeError("more runs than contexts")
            lead_alone = self._lead_may_use_all() and not self._running

            def place(index: int) -> tuple:
                cache = self.engines[index].caches[0]
                return reusable_prefix(cache, sequence, self._n_batch), lead_alone and index == 0, -cache.last_used

            index = max(free, key=place)
            self._running[sequence.slot] = (sequence, index)
        self.engines[index].submit(sequence)

    def release(self, sequence: Sequence_) -> None:
        with self._lock:
            entry = self._running.get(sequence.slot)
            if entry is not None and entry[0] is sequence:
                del self._running[sequence.slot]
                index = entry[1]
            else:
                index = None
        if index is not None:
            self.engines[index].release(sequence)
        else:
            sequence.closed = True

    def busy_slots(self) -> set[int]:
        with self._lock:
            return {slot for slot, (sequence, _) in self._running.items() if not sequence.closed}

    def close(self, timeout: float = 10.0) -> bool:
        stopped = [engine.close(timeout=timeout) for engine in self.engines]
        return all(stopped)
