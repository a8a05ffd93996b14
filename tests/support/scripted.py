"""A scripted backend for tests: deterministic tokens and timings, no model."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from generation.backends.base import BackendError, ModelInfo, SamplingParams
from generation.backends.chat_template import ChatTemplate

# "role: text" lines, then "assistant:"; a system message anywhere but first is refused.
CHAT_TEMPLATE = ChatTemplate(
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and not loop.first %}"
    "{{ raise_exception('Only the first message may be a system message.') }}"
    "{% endif %}"
    "{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}assistant:"
)


class ScriptedBackend:
    """Tokenizes on whitespace and replays `script` (a list of pieces) per generation.

    Class attributes are the knobs tests turn (reset by the test fixtures):
    `script` the pieces to emit, `token_delay` seconds per token, `prompt_delay` seconds
    per prompt batch of `batch_size` tokens, `fail_after` raise after N tokens,
    `stall_after` stop emitting (but keep running until cancelled) after N tokens.
    """

    script: list[str] = ["Hello", ",", " world", "."]
    token_delay: float = 0.0
    prompt_delay: float = 0.0
    batch_size: int = 8
    fail_after: int | None = None
    stall_after: int | None = None
    context_length: int = 512
    calls: list[dict] = []
    prompts: list[str] = []  # every text tokenized: what the model would have seen

    def __init__(self, *, slots: int = 1, **_options) -> None:
        self.slot_count = slots
        self.info = ModelInfo(name="scripted", version="scripted-1", context_length=self.context_length)
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "ScriptedBackend":
        return cls(slots=settings.SLUICE_SLOTS)

    @classmethod
    def reset(cls) -> None:
        cls.script = ["Hello", ",", " world", "."]
        cls.token_delay = cls.prompt_delay = 0.0
        cls.batch_size = 8
        cls.fail_after = cls.stall_after = None
        cls.context_length = 512
        cls.calls = []
        cls.prompts = []

    def tokenize(self, text: str) -> list[int]:
        type(self).prompts.append(text)
        return [len(word) for word in text.split()] or [0]

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        return CHAT_TEMPLATE.render(messages)

    def generate(
        self,
        *,
        slot: int,
        prompt_tokens: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event,
        cache_owner: str | None = None,
    ) -> Iterator[str]:
        with self._lock:
            if slot in self._busy:
                raise BackendError(f"slot {slot} is already in use")
            self._busy.add(slot)
        type(self).calls.append({"slot": slot, "prompt_tokens": len(prompt_tokens), "params": params})
        try:
            for _ in range(0, len(prompt_tokens), self.batch_size):
                if cancel.is_set():
                    return
                time.sleep(self.prompt_delay)
            for index, piece in enumerate(self.script):
                if self.fail_after is not None and index >= self.fail_after:
                    raise BackendError("scripted failure")
                if self.stall_after is not None and index >= self.stall_after:
                    while not cancel.wait(0.01):
                        pass
                    return
                time.sleep(self.token_delay)
                yield piece
        finally:
            with self._lock:
                self._busy.discard(slot)

    def busy_slots(self) -> set[int]:
        with self._lock:
            return set(self._busy)

    def close(self) -> None:
        pass
