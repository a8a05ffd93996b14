"""Remote backend: the backend protocol served by a pool of OpenAI-compatible engine
servers (llama-server, vLLM, TGI, llama-cpp-python's server), switched on by
SLUICE_UPSTREAMS. Sluice still builds, redacts and tokenizes the prompt; an upstream only
computes the tokens, streamed from /v1/completions."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from . import remote_metrics as metrics
from .base import BackendError, CancelFlag, ChatTemplateError, ModelInfo, SamplingParams
from .model_files import configured_model_file
from .remote_config import PoolConfig, pool_config
from .remote_http import CompletionStream, UpstreamError, model_ids
from .remote_pool import Pool, Upstream
from .remote_tokenizer import VocabTokenizer

logger = logging.getLogger(__name__)
MODEL_VERSION_LENGTH = 64  # Generation.model_version


class RemoteBackend:
    """`slot_count` is the sum of the upstreams' slots; see the Backend protocol."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        tokenizer: VocabTokenizer,
        model_name: str,
        model_version: str,
        n_ctx: int = 0,
        pool: Pool | None = None,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.pool = pool or Pool(config)
        self.slot_count = config.total_slots
        trained = tokenizer.context_length or n_ctx
        context = min(n_ctx, trained) if n_ctx > 0 else trained
        self.info = ModelInfo(
            name=model_name,
            version=model_version[:MODEL_VERSION_LENGTH],
            context_length=context,
            extra={"upstreams": [upstream.name for upstream in config.upstreams], "slots": self.slot_count},
        )

    @classmethod
    def from_settings(cls, settings) -> "RemoteBackend":
        config = pool_config(settings)
        model = configured_model_file()
        version = config.model_version or _listed_version(config) or model.sha256
        backend = cls(
            config,
            tokenizer=VocabTokenizer(str(model.path)),
            model_name=config.model or model.name,
            model_version=version,
            n_ctx=settings.SLUICE_N_CTX,
        )
        backend.pool.start()
        return backend

    def add_capacity_listener(self, listener) -> None:
        """`listener(slots)`: the slots of the upstreams in service, now and on every change."""
        self.pool.add_capacity_listener(listener)

    def upstream_report(self) -> dict:
        return self.pool.report()

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.tokenize(text)

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        if self.tokenizer.chat_template is None:
            raise ChatTemplateError("The model has no chat template: use /v1/completions.")
        return self.tokenizer.chat_template.render(messages)

    def _body(self, prompt_tokens: Sequence[int], params: SamplingParams) -> dict:
        if self.config.prompt_format == "tokens":
            prompt: object = list(prompt_tokens)
        else:
            prompt = self.tokenizer.as_engine_text(prompt_tokens)
            if prompt is None:
                raise BackendError("prompt has no text form the upstream reads back exactly; see SLUICE_UPSTREAM_PROMPT")
        # Sluice's own sampler settings (the llama.cpp backend's), so a request samples
        # the same way wherever it runs; stop sequences stay with the worker.
        body = {
            "prompt": prompt, "stream": True, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "top_k": 40, "min_p": 0.05,
            "repeat_penalty": 1.0,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if self.config.model:
            body["model"] = self.config.model
        return body

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
        body = self._body(prompt_tokens, params)
        started = time.monotonic()
        tried: set[int] = set()
        while True:
            upstream = self.pool.acquire(cache_owner, frozenset(tried))
            if upstream is None:
                raise BackendError("no upstream in service", code="upstream_failed")
            tried.add(upstream.index)
            outcome = yield from self._attempt(upstream, body, cancel)
            if outcome is None:
                return
            within_budget = time.monotonic() - started < self.config.retry_budget
            if len(tried) >= 2 or not within_budget or cancel.is_set():
                raise BackendError(f"upstream {upstream.name} failed before the first token ({outcome})", code="upstream_failed")
            logger.warning("upstream %s failed before the first token (%s); retrying on another", upstream.name, outcome)

    def _attempt(self, upstream: Upstream, body: dict, cancel: threading.Event):
        """Stream from one upstream. Returns None when done (or cancelled), the failure's kind
        when it failed before its first token; raises when it failed after it."""
        stream = CompletionStream(
            upstream.config, body, connect_timeout=self.config.connect_timeout, read_timeout=self.config.read_timeout,
            idle=upstream.idle,
        )
        unsubscribe = cancel.on_set(stream.abort) if isinstance(cancel, CancelFlag) else None
        sent = time.monotonic()
        first = True
        read_to_end = False
        try:
            stream.open()
            for piece in stream.pieces():
                if first:
                    metrics.FIRST_TOKEN.labels(upstream.name).observe(time.monotonic() - sent)
                    first = False
                yield piece
            read_to_end = not cancel.is_set()
            return None
        except UpstreamError as exc:
            if cancel.is_set() or stream.aborted:
                return None
            self.pool.failed(upstream, exc)
            if not first:  # text already went out: another upstream would splice a second generation
                raise BackendError(f"upstream {upstream.name} failed mid-stream ({exc})", code="upstream_failed") from None
            return str(exc)
        finally:
            if unsubscribe is not None:
                unsubscribe()
            if read_to_end:
                stream.keep_or_close()
            else:
                stream.abort()  # a stream left early (cancel, stop sequence, max_tokens) stops the engine
                stream.close()
            self.pool.release(upstream)

    def close(self) -> None:
        self.pool.stop()
        self.tokenizer.close()


def _listed_version(config: PoolConfig) -> str:
    """The model id of the first upstream that lists one."""
    for upstream in config.upstreams:
        ids = model_ids(upstream, timeout=config.connect_timeout)
        if ids:
            return ids[0]
    return ""
