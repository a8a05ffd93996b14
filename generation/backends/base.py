"""The backend protocol: tokenize a prompt, then generate one text piece per token on a slot."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Sampling options for one generation; temperature 0 means greedy."""

    max_tokens: int
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What a record says about the model: a name and a version (the file's SHA-256)."""

    name: str
    version: str
    context_length: int
    extra: dict = field(default_factory=dict, compare=False)


class CancelFlag(threading.Event):
    """A cancel flag that also runs callbacks when set, so a backend can interrupt native
    work in progress instead of waiting for its next check."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list = []
        self._callback_lock = threading.Lock()

    def set(self) -> None:
        with self._callback_lock:
            super().set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def on_set(self, callback) -> "Callable[[], None]":
        """Run `callback` when the flag is set (now, if it already is); returns an unsubscribe."""
        with self._callback_lock:
            already = self.is_set()
            if not already:
                self._callbacks.append(callback)
        if already:
            callback()

        def unsubscribe() -> None:
            with self._callback_lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe


class BackendError(Exception):
    """A model failure. Its message is operational only, never prompt or output text;
    `code` (a fixed word such as "backend_error" or "upstream_failed") is what the run
    records and its error event shows."""

    def __init__(self, message: str = "", *, code: str = "backend_error") -> None:
        super().__init__(message)
        self.code = code


class ChatTemplateError(ValueError):
    """The model's chat template refuses these messages (e.g. roles out of order). Its
    message is safe to show: it never quotes message text."""


@runtime_checkable
class Backend(Protocol):
    """A loaded model with `slot_count` independent contexts sharing its weights.

    `generate` runs in a worker thread and yields one str per generated token (empty
    while a multi-byte character is incomplete). It checks `cancel` between prompt
    batches and returns early when it is set (a CancelFlag also lets it abort native work
    at once); the caller checks it before each token.
    A slot is used by one generation at a time. `cache_owner` names the caller: a
    backend may reuse cached prompt state only for the same owner.
    `chat_prompt` renders {"role", "content"} messages (system, user, assistant) with the
    model's chat template, ending with the assistant's turn opened; `tokenize` accepts what
    it returns. It raises ChatTemplateError for a conversation the template refuses.
    """

    info: ModelInfo
    slot_count: int

    @classmethod
    def from_settings(cls, settings) -> "Backend": ...

    def tokenize(self, text: str) -> list[int]: ...

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str: ...

    def generate(
        self,
        *,
        slot: int,
        prompt_tokens: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event,
        cache_owner: str | None = None,
    ) -> Iterator[str]: ...

    def close(self) -> None: ...
