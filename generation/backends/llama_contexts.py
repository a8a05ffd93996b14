"""The contexts engine (SLUICE_ENGINE=contexts): one llama.cpp context per slot, each run by
its own engine (llama_engine.Engine with one sequence) on its own thread.

Where one `llama_decode` of several tokens costs nearly as much as that many decodes of one
(no gain from batching on that CPU), independent contexts keep every core busy on its own
stream instead. The cores are shared out as streams come and go: before each decode a
context takes the usable threads divided by the contexts running a stream, so a lone
stream decodes with all of them, as it would on one context.

Each run is alone in its context, so every guarantee of the batched engine holds per
context: a cancel stops the decode in progress, the prefix cache is per caller, and the
chunked prefill and repeatable greedy rules are the engine's own.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from llama_cpp import _internals as internals

from .llama_engine import Engine, Sequence_, best_place


class ContextsEngine:
    """`contexts` engines of one sequence each, with the batched engine's interface."""

    def __init__(self, *, model: internals.LlamaModel, contexts: int, n_ctx: int, n_batch: int, threads: int,
                 piece: Callable[[int], bytes], verbose: bool = False) -> None:
        self._threads = threads
        self._n_batch = n_batch
        self._lock = threading.Lock()
        self._running: dict[int, tuple[Sequence_, int]] = {}  # slot -> (run, engine index)
        self.engines: list[Engine] = []
        try:
            for _ in range(contexts):
                self.engines.append(Engine(
                    model=model, sequences=1, n_ctx=n_ctx, n_batch=n_batch, threads=threads, piece=piece,
                    verbose=verbose, thread_share=self._thread_share,
                ))
        except BaseException:
            self.close()
            raise

    def _thread_share(self) -> int:
        # Read without the lock: a count a moment old only shifts one decode's split.
        return max(1, self._threads // max(1, len(self._running)))

    def submit(self, sequence: Sequence_) -> None:
        with self._lock:
            taken = {index for _, index in self._running.values()}
            free = [index for index in range(len(self.engines)) if index not in taken]
            if not free:
                raise RuntimeError("more runs than contexts")
            caches = [engine.caches[0] for engine in self.engines]
            index = best_place(caches, free, sequence, self._n_batch)
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
