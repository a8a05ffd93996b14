"""llama.cpp backend: one mmapped model, one context per slot, C-side sampling."""
from __future__ import annotations

import codecs
import ctypes
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import llama_cpp
from llama_cpp import _internals as internals
from llama_cpp import _logger as llama_logger

from .base import BackendError, CancelFlag, ModelInfo, SamplingParams

_backend_init_lock = threading.Lock()
_backend_initialized = False


def _init_llama_backend() -> None:
    global _backend_initialized
    with _backend_init_lock:
        if not _backend_initialized:
            llama_cpp.llama_backend_init()
            _backend_initialized = True


# ggml calls the abort callback after every graph node from a native thread. A Python
# callback would take the GIL hundreds of times per token, so the callback is libc's
# strlen over a two-byte flag: it returns 1 (abort) once the first byte is set, 0 otherwise.
_libc = ctypes.CDLL(None)
_ABORT_WHEN_FLAG_SET = llama_cpp.ggml_abort_callback(ctypes.cast(_libc.strlen, ctypes.c_void_p).value)
_DECODE_ABORTED = "llama_decode returned 2"


class _Aborted(Exception):
    """A decode was interrupted by the abort flag."""


@dataclass
class _Slot:
    context: internals.LlamaContext
    batch: internals.LlamaBatch
    lock: threading.Lock
    abort_flag: ctypes.Array = field(default_factory=lambda: ctypes.create_string_buffer(2))
    cached_tokens: list[int] = field(default_factory=list)  # what the KV cache holds
    cache_owner: str | None = None
    prompt_evaluated: int = 0  # prompt tokens the last run evaluated (the rest came from cache)


class LlamaCppBackend:
    """Loads the GGUF once (mmap, optional GPU offload) and keeps `slots` contexts on it."""

    def __init__(
        self,
        *,
        model_path: str,
        model_name: str,
        model_version: str,
        n_ctx: int = 4096,
        n_batch: int = 256,
        n_threads: int = 0,
        n_gpu_layers: int = 0,
        slots: int = 1,
        verbose: bool = False,
    ) -> None:
        _init_llama_backend()
        llama_logger.set_verbose(verbose)  # llama.cpp writes to stderr itself; keep it to errors
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers < 0 else n_gpu_layers
        try:
            self._model = internals.LlamaModel(path_model=model_path, params=model_params, verbose=verbose)
        except ValueError as exc:
            raise BackendError(f"could not load model file {os.path.basename(model_path)}") from exc
        n_ctx = min(n_ctx, self._model.n_ctx_train()) if n_ctx > 0 else self._model.n_ctx_train()
        self.n_batch = max(1, min(n_batch, n_ctx))
        # Slots run at once: more llama.cpp threads than cores makes its spin barriers crawl.
        threads = n_threads or max(1, (os.cpu_count() or 1) // slots)
        self.slot_count = slots
        self._slots = [self._new_slot(n_ctx, threads, verbose) for _ in range(slots)]
        self._vocab = self._model.vocab
        self._piece_cache: dict[int, bytes] = {}
        self.info = ModelInfo(
            name=model_name,
            version=model_version,
            context_length=n_ctx,
            extra={"n_threads": threads, "n_gpu_layers": n_gpu_layers, "n_batch": self.n_batch},
        )

    @classmethod
    def from_settings(cls, settings) -> "LlamaCppBackend":
        from generation.model_files import configured_model_file

        model = configured_model_file()
        return cls(
            model_path=str(model.path),
            model_name=model.name,
            model_version=model.sha256,
            n_ctx=settings.SLUICE_N_CTX,
            n_batch=settings.SLUICE_N_BATCH,
            n_threads=settings.SLUICE_N_THREADS,
            n_gpu_layers=settings.SLUICE_N_GPU_LAYERS,
            slots=settings.SLUICE_SLOTS,
        )

    def _new_slot(self, n_ctx: int, threads: int, verbose: bool) -> _Slot:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        context = internals.LlamaContext(model=self._model, params=params, verbose=verbose)
        batch = internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=verbose)
        slot = _Slot(context=context, batch=batch, lock=threading.Lock())
        llama_cpp.llama_set_abort_callback(
            context.ctx, _ABORT_WHEN_FLAG_SET, ctypes.cast(slot.abort_flag, ctypes.c_void_p)
        )
        return slot

    def tokenize(self, text: str) -> list[int]:
        # special=False: control tokens typed into a prompt stay plain text.
        return self._model.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def _piece(self, token: int) -> bytes:
        piece = self._piece_cache.get(token)
        if piece is None:
            buffer = ctypes.create_string_buffer(64)
            size = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, 64, 0, False)
            piece = buffer.raw[: max(size, 0)]
            self._piece_cache[token] = piece
        return piece

    def _sampler(self, params: SamplingParams) -> internals.LlamaSampler:
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

    def generate(
        self,
        *,
        slot: int,
        prompt_tokens: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event,
        cache_owner: str | None = None,
    ) -> Iterator[str]:
        state = self._slots[slot]
        if not state.lock.acquire(blocking=False):
            raise BackendError(f"slot {slot} is already in use")
        sampler = None
        disarm = self._arm_abort(state, cancel)
        try:
            context, batch = state.context, state.batch
            n_ctx = self.info.context_length
            if len(prompt_tokens) >= n_ctx:
                raise BackendError("prompt does not fit the context window")
            n_past = self._reuse_prefix(state, prompt_tokens, cache_owner)
            state.prompt_evaluated = 0
            for start in range(n_past, len(prompt_tokens), self.n_batch):
                if cancel.is_set():  # frees the slot within one prompt batch
                    return
                chunk = prompt_tokens[start : start + self.n_batch]
                batch.set_batch(chunk, n_past=n_past, logits_all=False)
                self._decode(state, batch)
                state.cached_tokens.extend(chunk)
                state.prompt_evaluated += len(chunk)
                n_past += len(chunk)
            sampler = self._sampler(params)
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            while True:
                token = sampler.sample(context, -1)
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    tail = decoder.decode(b"", final=True)
                    if tail:
                        yield tail
                    return
                yield decoder.decode(self._piece(token))
                if n_past >= n_ctx:
                    return
                batch.set_batch((token,), n_past=n_past, logits_all=False)
                self._decode(state, batch)
                state.cached_tokens.append(token)
                n_past += 1
        except _Aborted:
            return  # cancelled in the middle of a decode
        finally:
            disarm()
            if sampler is not None:
                sampler.close()
            state.lock.release()

    @staticmethod
    def _arm_abort(state: _Slot, cancel: threading.Event) -> Callable[[], None]:
        """Let a CancelFlag interrupt a decode in progress; returns the function that disarms."""
        state.abort_flag[0] = b"\x00"
        unsubscribe = (
            cancel.on_set(lambda: state.abort_flag.__setitem__(0, b"\x01")) if isinstance(cancel, CancelFlag) else None
        )

        def disarm() -> None:
            if unsubscribe is not None:
                unsubscribe()
            state.abort_flag[0] = b"\x00"

        return disarm

    @staticmethod
    def _reuse_prefix(state: _Slot, prompt_tokens: Sequence[int], owner: str | None) -> int:
        """Keep the KV cache's common prefix with this prompt when the same caller used the
        slot last (never across callers: prefix timing would leak their prompts).
        Returns how many prompt tokens are already evaluated; at least one is left to
        evaluate so the logits are fresh."""
        keep = 0
        if owner is not None and owner == state.cache_owner:
            for cached, new in zip(state.cached_tokens, prompt_tokens):
                if cached != new:
                    break
                keep += 1
            keep = min(keep, len(prompt_tokens) - 1)
        state.cache_owner = owner
        if keep > 0 and state.context.kv_cache_seq_rm(-1, keep, -1):
            del state.cached_tokens[keep:]
            return keep
        state.context.kv_cache_clear()
        state.cached_tokens.clear()
        return 0

    @staticmethod
    def _decode(state: _Slot, batch: internals.LlamaBatch) -> None:
        try:
            state.context.decode(batch)
        except RuntimeError as exc:
            state.cached_tokens.clear()  # the KV cache now holds an unknown part of the batch
            state.cache_owner = None
            if str(exc) == _DECODE_ABORTED and state.abort_flag[0] == b"\x01":
                raise _Aborted from None
            raise BackendError(str(exc)) from exc

    def last_prompt_evaluated(self, slot: int) -> int:
        """How many prompt tokens the slot's last run evaluated (the rest came from its cache)."""
        return self._slots[slot].prompt_evaluated

    def busy_slots(self) -> set[int]:
        return {index for index, state in enumerate(self._slots) if state.lock.locked()}

    def close(self) -> None:
        for state in self._slots:
            state.batch.close()
            state.context.close()
        self._model.close()
