"""llama.cpp backend: the GGUF loaded once (mmap, optional GPU offload), slots served by a
batching engine on one context (llama_engine.py, SLUICE_ENGINE=batched) or by one context
per slot (llama_contexts.py, SLUICE_ENGINE=contexts)."""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence

import llama_cpp
from llama_cpp import _internals as internals
from llama_cpp import _logger as llama_logger

from .base import BackendError, ChatTemplateError, ModelInfo, SamplingParams
from .chat_template import FALLBACK_TEMPLATES, ChatPrompt, ChatTemplate
from .cpu import threads_per_process
from .llama_contexts import ContextsEngine
from .llama_engine import END, Engine, Sequence_
from .model_files import configured_model_file

logger = logging.getLogger(__name__)
ENGINES = ("batched", "contexts")
_backend_init_lock = threading.Lock()
_backend_initialized = False


def _init_llama_backend() -> None:
    global _backend_initialized
    with _backend_init_lock:
        if not _backend_initialized:
            llama_cpp.llama_backend_init()
            _backend_initialized = True


def tokenize_bytes(model: internals.LlamaModel, data: bytes, *, add_bos: bool, special: bool) -> list[int]:
    """llama.cpp's tokens for `data`, as LlamaModel.tokenize gives them, with a buffer sized to
    the text: that method allocates and zeroes one of the model's training context (32,768
    tokens for Gemma 3) on every call, which cost more than tokenizing a short prompt."""
    size = len(data) + 2  # a token covers at least one byte; BOS and EOS may be added
    for _ in range(2):
        tokens = (llama_cpp.llama_token * size)()
        count = llama_cpp.llama_tokenize(model.vocab, data, len(data), tokens, size, add_bos, special)
        if count >= 0:
            return tokens[:count]
        size = -count  # too small: llama.cpp returns minus the count it needs
    raise BackendError("the tokenizer asked for a buffer twice")


def tokenize_prompt(model: internals.LlamaModel, text: str) -> list[int]:
    """A prompt's tokens. Control tokens typed into text stay plain text (special=False); in
    a chat prompt only the template's own markup is read for control tokens."""
    if not isinstance(text, ChatPrompt):
        return tokenize_bytes(model, text.encode("utf-8"), add_bos=True, special=False)
    tokens: list[int] = []
    for part, is_message in text.parts:
        tokens += tokenize_bytes(model, part.encode("utf-8"), add_bos=False, special=not is_message)
    bos = model.token_bos()
    if model.add_bos_token() and bos >= 0 and tokens[:1] != [bos]:
        tokens.insert(0, bos)
    return tokens


def token_piece(vocab, token: int, size: int = 64, *, special: bool = False) -> bytes:
    """The bytes of one token, however long the piece is; control tokens render empty, or
    as their markup (e.g. <start_of_turn>) with `special`."""
    buffer = ctypes.create_string_buffer(size)
    length = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, special)
    if length < 0:  # too small: llama.cpp returns minus the size it needs
        size = -length
        buffer = ctypes.create_string_buffer(size)
        length = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, special)
        if length < 0:
            raise BackendError(f"token {token} has no piece of a stable size")
    return buffer.raw[:length]


def extra_buffers_safe(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether llama.cpp may use its extra weight buffer types (repacked layouts, Intel
    AMX) by default: not where the CPU advertises AMX, since virtual machines that
    advertise it without supporting it kill the process with SIGILL on the first decode."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as file:
            flags = next((line for line in file if line.startswith("flags")), "")
    except OSError:
        return True
    return "amx_tile" not in flags.split()


class LlamaCppBackend:
    """One model, `slots` sequences decoded together; see the Backend protocol."""

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
        extra_buffers: bool | None = None,
        engine: str = "batched",
        verbose: bool = False,
    ) -> None:
        if engine not in ENGINES:
            raise BackendError(f"unknown llama.cpp engine {engine!r}: use one of {', '.join(ENGINES)}")
        _init_llama_backend()
        llama_logger.set_verbose(verbose)  # llama.cpp writes to stderr itself; keep it to errors
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers < 0 else n_gpu_layers
        model_params.use_extra_bufts = extra_buffers_safe() if extra_buffers is None else extra_buffers
        try:
            self._model = internals.LlamaModel(path_model=model_path, params=model_params, verbose=verbose)
        except ValueError as exc:
            raise BackendError(f"could not load model file {os.path.basename(model_path)}") from exc
        n_ctx = min(n_ctx, self._model.n_ctx_train()) if n_ctx > 0 else self._model.n_ctx_train()
        n_batch = max(1, min(n_batch, n_ctx))
        threads = n_threads or os.cpu_count() or 1  # one context: every core works on each step
        self._vocab = self._model.vocab
        self._piece_cache: dict[int, bytes] = {}
        self._chat_template = self._load_chat_template()
        self.slot_count = slots
        self._last_run: dict[int, Sequence_] = {}
        engine_kwargs = dict(n_ctx=n_ctx, n_batch=n_batch, threads=threads, piece=self._piece, verbose=verbose)
        try:
            if engine == "contexts":
                self._engine = ContextsEngine(model=self._model, contexts=slots, **engine_kwargs)
            else:
                self._engine = Engine(model=self._model, sequences=slots, **engine_kwargs)
        except BaseException:
            self._model.close()
            raise
        self.info = ModelInfo(
            name=model_name,
            version=model_version,
            context_length=n_ctx,
            extra={"n_threads": threads, "n_gpu_layers": n_gpu_layers, "n_batch": n_batch, "slots": slots,
                   "engine": engine},
        )

    @classmethod
    def from_settings(cls, settings) -> "LlamaCppBackend":
        model = configured_model_file()
        return cls(
            model_path=str(model.path),
            model_name=model.name,
            model_version=model.sha256,
            n_ctx=settings.SLUICE_N_CTX,
            n_batch=settings.SLUICE_N_BATCH,
            n_threads=settings.SLUICE_N_THREADS or threads_per_process(settings.SLUICE_PROCESSES),
            n_gpu_layers=settings.SLUICE_N_GPU_LAYERS,
            slots=settings.SLUICE_SLOTS,
            extra_buffers=settings.SLUICE_LLAMA_EXTRA_BUFFERS,
            engine=settings.SLUICE_ENGINE,
        )

    def tokenize(self, text: str) -> list[int]:
        return tokenize_prompt(self._model, text)

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        if self._chat_template is None:
            raise ChatTemplateError("The loaded model has no chat template: use /v1/completions.")
        return self._chat_template.render(messages)

    def _load_chat_template(self) -> ChatTemplate | None:
        """The GGUF's tokenizer.chat_template, else the known template of its architecture."""
        metadata = self._model.metadata()
        architecture = metadata.get("general.architecture", "")
        template = metadata.get("tokenizer.chat_template") or FALLBACK_TEMPLATES.get(architecture)
        if not template:
            return None
        bos, eos = self._model.token_bos(), self._model.token_eos()
        return ChatTemplate(
            template,
            bos_token=self._model.token_get_text(bos) if bos >= 0 else "",
            eos_token=self._model.token_get_text(eos) if eos >= 0 else "",
        )

    def _piece(self, token: int) -> bytes:
        piece = self._piece_cache.get(token)
        if piece is None:
            piece = self._piece_cache[token] = token_piece(self._vocab, token)
        return piece

    def generate(
        self,
        *,
        slot: int,
        prompt_tokens: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event,
        cache_owner: str | None = None,
    ) -> Iterator[str]:
        if len(prompt_tokens) >= self.info.context_length:
            raise BackendError("prompt does not fit the context window")
        if slot in self._engine.busy_slots():
            raise BackendError(f"slot {slot} is already in use")
        sequence = Sequence_(slot=slot, prompt_tokens=prompt_tokens, params=params, cancel=cancel, owner=cache_owner)
        self._last_run[slot] = sequence
        self._engine.submit(sequence)
        try:
            while True:
                item = sequence.out.get()
                if item is END:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self._engine.release(sequence)

    def last_prompt_evaluated(self, slot: int) -> int:
        """How many prompt tokens the slot's last run evaluated (the rest came from its cache)."""
        run = self._last_run.get(slot)
        return run.prompt_evaluated if run is not None else 0

    def busy_slots(self) -> set[int]:
        return self._engine.busy_slots()

    def close(self, timeout: float = 10.0) -> None:
        if self._engine.close(timeout=timeout):
            self._model.close()
        else:  # freeing the model would free the context under the running engine thread
            logger.warning("llama.cpp model left allocated: its engine thread has not stopped")
