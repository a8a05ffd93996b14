"""The native stream's events (docs/api.md). Transports render them; nothing else does."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Event:
    name = "event"
    terminal = False

    def data(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Accepted(Event):
    request_id: str
    model: str
    queue_position: int
    name = "accepted"


@dataclass(frozen=True)
class Queued(Event):
    position: int
    name = "queued"


@dataclass(frozen=True)
class Started(Event):
    queue_ms: int
    name = "started"


@dataclass(frozen=True)
class Delta(Event):
    """Output text. `marks` lists [start, end, kind, type] spans of `text` that were restored
    from placeholders (kind "restored") or masked by the output guard (kind "masked");
    `tokens` is how many completion tokens the model has produced so far."""

    text: str
    marks: tuple = ()
    tokens: int = 0
    name = "delta"

    def data(self) -> dict:
        data: dict = {"text": self.text}
        if self.marks:
            data["marks"] = [list(mark) for mark in self.marks]
        if self.tokens:
            data["tokens"] = self.tokens
        return data

    @classmethod
    def from_segments(cls, segments, tokens: int = 0) -> "Delta | None":
        """One delta from redaction segments, or None when they hold no text."""
        parts, marks, offset = [], [], 0
        for segment in segments:
            if segment.restored or segment.masked:
                kind = "restored" if segment.restored else "masked"
                marks.append((offset, offset + len(segment.text), kind, segment.type))
            parts.append(segment.text)
            offset += len(segment.text)
        return cls("".join(parts), tuple(marks), tokens) if offset else None


@dataclass(frozen=True)
class Done(Event):
    finish_reason: str
    usage: dict
    timings: dict
    name = "done"
    terminal = True


@dataclass(frozen=True)
class Cancelled(Event):
    reason: str
    name = "cancelled"
    terminal = True


@dataclass(frozen=True)
class Error(Event):
    """A terminal failure. `message` is a fixed, safe sentence: never payload text."""

    code: str
    message: str
    name = "error"
    terminal = True

    def data(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class TimedOut(Error):
    """A timeout ends the stream as an error event that also names its source."""

    timeout_source: str = ""

    def data(self) -> dict:
        return {"code": self.code, "message": self.message, "timeout_source": self.timeout_source}


def completion_body(*, request_id, model: str, done: Done, text: str) -> dict:
    """The JSON-mode body of a completed generation (docs/api.md), for the API and the CLI."""
    return {
        "id": str(request_id),
        "object": "generation",
        "model": model,
        "status": "completed",
        "text": text,
        "finish_reason": done.finish_reason,
        "usage": done.usage,
        "timings": done.timings,
    }
