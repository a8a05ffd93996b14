"""The worker-thread side of a run: drive the backend token by token, honour the cancel
flag before every token, apply max_tokens and stop sequences, report through a bridge."""
from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from generation.backends.base import Backend, BackendError, SamplingParams

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenText:
    """Text released by the worker (already past stop-sequence holdback)."""

    text: str
    at: float  # time.monotonic() when the token was produced
    tokens: int  # completion tokens the model has produced so far, this one included


@dataclass(frozen=True)
class WorkerResult:
    """How the model run ended. finish_reason: stop | length | cancelled | error."""

    finish_reason: str
    completion_tokens: int
    tokens_after_cancel: int
    error_code: str = ""
    first_token_at: float | None = None  # time.monotonic() of the first token, seen or not


class StopSequences:
    """Cuts the output at the first stop sequence, holding back only a possible prefix."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._holdback = max((len(stop) for stop in self._stops), default=1) - 1
        self._pending = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """Return (text safe to release, whether a stop sequence was hit)."""
        if not self._stops:
            return piece, False
        self._pending += piece
        cut = min((index for stop in self._stops if (index := self._pending.find(stop)) >= 0), default=-1)
        if cut >= 0:
            text, self._pending = self._pending[:cut], ""
            return text, True
        keep = self._longest_stop_prefix_suffix()
        text = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep :]
        return text, False

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text

    def _longest_stop_prefix_suffix(self) -> int:
        for size in range(min(self._holdback, len(self._pending)), 0, -1):
            tail = self._pending[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0


def run_model(
    *,
    backend: Backend,
    slot: int,
    prompt_tokens: Sequence[int],
    params: SamplingParams,
    cancel: threading.Event,
    emit: Callable[[TokenText], None],
    cache_owner: str | None = None,
) -> WorkerResult:
    """Run one generation to its end in the calling (worker) thread."""
    produced = after_cancel = 0
    first_token_at: float | None = None
    stops = StopSequences(params.stop)

    def result(finish: str, error_code: str = "") -> WorkerResult:
        return WorkerResult(finish, produced, after_cancel, error_code, first_token_at)

    stream = backend.generate(
        slot=slot, prompt_tokens=prompt_tokens, params=params, cancel=cancel, cache_owner=cache_owner
    )
    try:
        while True:
            if cancel.is_set():
                return result("cancelled")
            if produced >= params.max_tokens:
                finish = "length"
                break
            try:
                piece = next(stream)
            except StopIteration:
                if cancel.is_set():  # the backend stopped during prompt processing
                    return result("cancelled")
                finish = "stop"
                break
            produced += 1
            first_token_at = first_token_at or time.monotonic()
            if cancel.is_set():  # this token was computed after the cancel was asked
                after_cancel += 1
                return result("cancelled")
            text, hit_stop = stops.feed(piece)
            if text:
                emit(TokenText(text, time.monotonic(), produced))
            if hit_stop:
                return result("stop")
        tail = stops.flush()
        if tail:
            emit(TokenText(tail, time.monotonic(), produced))
        return result(finish)
    except BackendError as exc:
        logger.exception("model backend failed")  # BackendError messages are operational only
        return result("error", exc.code)
    except Exception as exc:  # noqa: BLE001 - the stream must still end with a terminal event
        # Frames only: an exception message might quote data it was handed.
        logger.error("model worker crashed: %s\n%s", type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
        return result("error", "internal_error")
    finally:
        stream.close()
