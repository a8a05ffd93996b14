"""The batching engine: one llama.cpp context, one KV sequence per slot, one thread.

Each step drops finished or cancelled runs, admits new ones, then decodes one token for
every run that is generating plus a chunk of prompt for those still prefilling, all in a
single `llama_decode`. On a CPU a step with several sequences costs little more than a step
with one, which is where concurrent streams gain their throughput.

A run is placed on a KV sequence by the engine, not by the scheduler's slot number: the
free sequence holding the longest prefix this caller may reuse, else one next to the busy
sequences, else the least recently used one. The scheduler hands slots out in turn, so
placing by slot number would send a caller's next request to another sequence's cache and
lose its prefix.

Each sequence has its own KV stream (llama.cpp's `kv_unified` off), and llama.cpp computes
such a batch in one pass only over sequences whose ids follow each other in the batch's
order (its `split_equal(sequential=true)`): every gap or step back starts another pass over
the whole model. So a step writes its tokens in sequence order, and placement keeps the
busy sequences together.
"""
from __future__ import annotations

import codecs
import ctypes
import logging
import queue
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import llama_cpp
from llama_cpp import _internals as internals

from .base import BackendError, CancelFlag, SamplingParams

END = object()  # put on a sequence's queue when it has finished
logger = logging.getLogger(__name__)

# ggml calls the abort callback after every graph node from a native thread. A Python
# callback would take the GIL hundreds of times per token, so the callback is libc's
# strlen over a two-byte flag: it returns 1 (abort) once the first byte is set, 0 otherwise.
_libc = ctypes.CDLL(None)
_ABORT_WHEN_FLAG_SET = llama_cpp.ggml_abort_callback(ctypes.cast(_libc.strlen, ctypes.c_void_p).value)
_DECODE_ABORTED = 2  # llama_decode's return code when the abort callback stopped it (llama.h)


@dataclass(eq=False)
class Sequence_:
    """One generation on one slot, as the engine thread sees it."""

    slot: int  # the scheduler's slot: the consumer's handle, not where the KV cells live
    prompt_tokens: Sequence[int]
    params: SamplingParams
    cancel: threading.Event
    owner: str | None
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    closed: bool = False  # the consumer went away (stop sequence, max tokens, error)
    prompt_done: int = 0
    generated: int = 0
    last_token: int | None = None
    sampler: internals.LlamaSampler | None = None
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    seq: int = -1  # the KV sequence the engine placed it on
    prompt_evaluated: int = 0  # prompt tokens computed for it (the rest came from the cache)

    @property
    def prefilling(self) -> bool:
        return self.prompt_done < len(self.prompt_tokens)

    @property
    def repeatable(self) -> bool:
        """Greedy or seeded: the same prompt and parameters must give the same text."""
        return self.params.temperature == 0 or self.params.seed is not None


@dataclass
class SequenceCache:
    tokens: list[int] = field(default_factory=list)  # what this sequence's KV cells hold
    owner: str | None = None
    last_used: int = 0  # when a run was last placed here (a counter), for LRU placement
    # Leading cells computed exactly as a fresh lone run computes them: in whole n_batch
    # chunks from position 0, alone in their step. llama.cpp's CPU kernels round
    # differently for different batch shapes, so only these cells give bit-identical logits.
    canonical: int = 0


def reusable_prefix(cache: SequenceCache, sequence: Sequence_, n_batch: int) -> int:
    """How many leading prompt tokens `sequence` may take from `cache`: only from the same
    caller (never across callers: prefix timing would leak their prompts), at least one
    prompt token left to evaluate so the logits are fresh, and for a repeatable run only
    whole chunks computed exactly as a fresh run computes them."""
    if sequence.owner is None or sequence.owner != cache.owner:
        return 0
    keep = 0
    for cached, new in zip(cache.tokens, sequence.prompt_tokens):
        if cached != new:
            break
        keep += 1
    keep = min(keep, len(sequence.prompt_tokens) - 1)
    if sequence.repeatable:
        # Evaluate the rest in the same chunks as a fresh run would, on cells that a fresh
        # run would have computed bit for bit.
        keep = min(keep, cache.canonical)
        keep -= keep % n_batch
    return max(keep, 0)


def best_place(caches: Sequence[SequenceCache], free: Sequence[int], sequence: Sequence_, n_batch: int,
               busy: Collection[int] = ()) -> int:
    """The free cache with the longest reusable prefix; among equals the one that adds the
    fewest runs of consecutive ids to the `busy` sequences (each run is a pass over the model
    in every step), then the least recently used, so one caller's run does not evict another
    caller's prefix while an older one is free."""
    def new_runs(index: int) -> int:
        return 1 - (index - 1 in busy) - (index + 1 in busy)

    return max(free, key=lambda index: (reusable_prefix(caches[index], sequence, n_batch), -new_runs(index),
                                        -caches[index].last_used))


class Engine:
    """Owns the context and its thread; `submit` hands it a sequence to run.

    `thread_share`, when given, is asked before each decode how many threads this context
    may use now (several contexts sharing the cores); else it always uses `threads`."""

    def __init__(self, *, model: internals.LlamaModel, sequences: int, n_ctx: int, n_batch: int, threads: int,
                 piece: Callable[[int], bytes], verbose: bool = False,
                 thread_share: Callable[[], int] | None = None) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * sequences  # each sequence gets a full window of n_ctx
        params.n_seq_max = sequences
        params.n_batch = params.n_ubatch = n_batch
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        # Full-size sliding-window cache (Gemma 3): a smaller one overwrites cells that a
        # later run on the same slot still needs when it reuses a cached prefix.
        params.swa_full = True
        self.context = internals.LlamaContext(model=model, params=params, verbose=verbose)
        self.batch = internals.LlamaBatch(n_tokens=n_batch + sequences, embd=0, n_seq_max=1, verbose=verbose)
        self.n_ctx, self.n_batch = n_ctx, n_batch
        self._threads = threads
        self._thread_share = thread_share
        self._vocab = model.vocab
        self._piece = piece
        self._abort_flag = ctypes.create_string_buffer(2)
        llama_cpp.llama_set_abort_callback(self.context.ctx, _ABORT_WHEN_FLAG_SET, ctypes.cast(self._abort_flag, ctypes.c_void_p))
        self._solo: Sequence_ | None = None  # the only sequence in the step being decoded
        self.caches = [SequenceCache() for _ in range(sequences)]
        self._placements = 0
        self._active: dict[int, Sequence_] = {}  # by KV sequence
        self._incoming: queue.SimpleQueue[Sequence_] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sluice-engine", daemon=True)
        self._thread.start()

    def submit(self, sequence: Sequence_) -> None:
        if isinstance(sequence.cancel, CancelFlag):
            sequence.cancel.on_set(lambda: self._abort_if_alone(sequence))
        self._incoming.put(sequence)
        self._wake.set()

    def release(self, sequence: Sequence_) -> None:
        """The consumer is done with `sequence`; the engine drops it at its next step."""
        sequence.closed = True
        self._wake.set()

    def busy_slots(self) -> set[int]:
        """Slots whose sequence is still in use (a released one no longer counts)."""
        while True:
            try:
                return {sequence.slot for sequence in list(self._active.values()) if not sequence.closed}
            except RuntimeError:  # the engine thread changed the dict mid-copy
                continue

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread; it frees the context as it exits. False if it is still running
        after `timeout` (its context stays allocated until it stops: never freed under it)."""
        self._stopped = True
        self._abort_flag[0] = b"\x01"  # a long prompt batch in progress stops at its next node
        self._wake.set()
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            logger.warning("llama.cpp engine thread still running %.0f s after close; its context is left allocated", timeout)
            return False
        return True

    def _abort_if_alone(self, sequence: Sequence_) -> None:
        # Aborting a step with other sequences in it would cost them their token, so a
        # cancel interrupts a decode only when its sequence is alone; else it waits a step.
        if self._solo is sequence:
            self._abort_flag[0] = b"\x01"

    def _run(self) -> None:
        try:
            while not self._stopped:
                self._drop_finished()
                self._admit()
                if not self._active:
                    self._wake.wait()
                    self._wake.clear()
                    continue
                self._step()
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        # Only this thread touches the context, so only it may free it.
        stopping = BackendError("the model is shutting down")
        for sequence in list(self._active.values()):
            self._finish(sequence, stopping)
        self._active.clear()
        while True:
            try:
                self._finish(self._incoming.get_nowait(), stopping)
            except queue.Empty:
                break
        self.batch.close()
        self.context.close()

    def _admit(self) -> None:
        while True:
            try:
                sequence = self._incoming.get_nowait()
            except queue.Empty:
                return
            self._drop_finished()  # a run released a moment ago frees its sequence for this one
            free = [seq for seq in range(len(self.caches)) if seq not in self._active]
            if not free:  # more runs than sequences: the caller broke the one-run-per-slot contract
                self._finish(sequence, BackendError("no free sequence in the context"))
                continue
            sequence.seq = best_place(self.caches, free, sequence, self.n_batch, busy=self._active.keys())
            self._placements += 1
            self.caches[sequence.seq].last_used = self._placements
            sequence.prompt_done = self._reuse_prefix(sequence)
            sequence.sampler = _sampler(sequence.params)
            self._active[sequence.seq] = sequence

    def _reuse_prefix(self, sequence: Sequence_) -> int:
        """Keep what the sequence's cache may give this run (reusable_prefix), drop the rest."""
        cache = self.caches[sequence.seq]
        keep = reusable_prefix(cache, sequence, self.n_batch)
        cache.owner = sequence.owner
        if not self.context.kv_cache_seq_rm(sequence.seq, keep, -1):
            keep = 0
            self.context.kv_cache_seq_rm(sequence.seq, 0, -1)
        del cache.tokens[keep:]
        cache.canonical = min(cache.canonical, keep)
        return keep

    def _drop_finished(self) -> None:
        for seq, sequence in list(self._active.items()):
            if sequence.closed or sequence.cancel.is_set():
                del self._active[seq]
                self._finish(sequence)

    def _finish(self, sequence: Sequence_, error: Exception | None = None) -> None:
        if sequence.sampler is not None:
            sequence.sampler.close()
            sequence.sampler = None
        sequence.out.put(error if error is not None else END)

    def _step(self) -> None:
        batch = self.batch.batch
        batch.n_tokens = 0
        outputs: list[tuple[Sequence_, int]] = []
        members: dict[int, tuple[Sequence_, Sequence[int], bool]] = {}  # seq -> tokens this step, last one's logits
        generating = [s for s in self._active.values() if not s.prefilling]
        for sequence in generating:
            members[sequence.seq] = (sequence, (sequence.last_token,), True)
        # Prefill shares the step with generating sequences: a smaller chunk keeps their
        # inter-token latency down while a long prompt is read. Prompts are read in the
        # order their runs came.
        budget = self.n_batch if not generating else max(self.n_batch // 4, 1)
        canonical_chunk: Sequence_ | None = None
        for sequence in [s for s in self._active.values() if s.prefilling]:
            take = min(budget, len(sequence.prompt_tokens) - sequence.prompt_done)
            if take <= 0:
                break
            if take == self.n_batch and sequence.prompt_done == self.caches[sequence.seq].canonical \
                    and sequence.prompt_done % self.n_batch == 0 and sequence.prompt_done + take < len(sequence.prompt_tokens):
                canonical_chunk = sequence  # a whole interior chunk on the fresh-run grid
            chunk = sequence.prompt_tokens[sequence.prompt_done : sequence.prompt_done + take]
            sequence.prompt_done += take
            sequence.prompt_evaluated += take
            members[sequence.seq] = (sequence, chunk, not sequence.prefilling)
            budget -= take
        for seq in sorted(members):  # in sequence order: one pass over the model (module docstring)
            sequence, tokens, wants_logits = members[seq]
            for position, token in enumerate(tokens, 1):
                index = self._add(sequence, token, logits=wants_logits and position == len(tokens))
            if wants_logits:
                outputs.append((sequence, index))
        self._solo = next(iter(members.values()))[0] if len(members) == 1 else None
        self._abort_flag[0] = b"\x00"
        if self._thread_share is not None:
            threads = self._thread_share()
            if threads != self._threads:
                llama_cpp.llama_set_n_threads(self.context.ctx, threads, threads)
                self._threads = threads
        if self._solo is not None and self._solo.cancel.is_set():
            self._abort_flag[0] = b"\x01"
        try:
            status = llama_cpp.llama_decode(self.context.ctx, batch)
        finally:
            self._solo = None
        if status != 0:
            self._step_failed([sequence for sequence, _, _ in members.values()], status)
            return
        if canonical_chunk is not None and len(members) == 1:  # alone, as in a fresh lone run
            self.caches[canonical_chunk.seq].canonical += self.n_batch
        for sequence, index in outputs:
            self._sample(sequence, index)

    def _add(self, sequence: Sequence_, token: int, *, logits: bool) -> int:
        batch, cache = self.batch.batch, self.caches[sequence.seq]
        index = batch.n_tokens
        batch.token[index] = token
        batch.pos[index] = len(cache.tokens)
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = sequence.seq
        batch.logits[index] = logits
        batch.n_tokens += 1
        cache.tokens.append(token)
        return index

    def _sample(self, sequence: Sequence_, index: int) -> None:
        token = sequence.sampler.sample(self.context, index)
        sequence.generated += 1
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            tail = sequence.decoder.decode(b"", final=True)
            if tail:
                sequence.out.put(tail)
            self._end(sequence)
            return
        sequence.out.put(sequence.decoder.decode(self._piece(token)))
        sequence.last_token = token
        full = len(self.caches[sequence.seq].tokens) >= self.n_ctx
        if sequence.generated >= sequence.params.max_tokens or full:
            self._end(sequence)

    def _end(self, sequence: Sequence_) -> None:
        self._active.pop(sequence.seq, None)
        self._finish(sequence)

    def _step_failed(self, sequences: list[Sequence_], status: int) -> None:
        for sequence in sequences:
            if status == _DECODE_ABORTED and sequence.cancel.is_set():
                error = None  # cancelled: the consumer sees a plain end
            elif status == _DECODE_ABORTED and self._stopped:
                error = BackendError("the model is shutting down")
            else:
                error = BackendError(f"llama_decode returned {status}")
            cache = self.caches[sequence.seq]
            cache.tokens.clear()  # the KV cells now hold an unknown part of the step
            cache.owner = None
            cache.canonical = 0
            self.context.kv_cache_seq_rm(sequence.seq, 0, -1)
            self._active.pop(sequence.seq, None)
            self._finish(sequence, error)


def _sampler(params: SamplingParams) -> internals.LlamaSampler:
    sampler = internals.LlamaSampler()
    if params.temperature == 0:
        sampler.add_greedy()
    else:  # llama-cpp-python's completion defaults for the knobs the API does not expose
        sampler.add_top_k(40)
        sampler.add_top_p(params.top_p, 1)
        sampler.add_min_p(0.05, 1)
        sampler.add_temp(params.temperature)
        sampler.add_dist(llama_cpp.LLAMA_DEFAULT_SEED if params.seed is None else params.seed)
    return sampler
