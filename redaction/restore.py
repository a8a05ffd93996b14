"""Streaming restoration of placeholders in model output."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .spans import LITERAL


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of output. ``restored``: an original value put back from the
    mapping (``type`` = its type). ``masked``: text the output guard replaced
    (``type`` = the masked type). Repr omits the text.
    """

    text: str
    restored: bool = False
    type: str | None = None
    masked: bool = False

    def __repr__(self) -> str:
        return f"Segment(len={len(self.text)}, restored={self.restored}, type={self.type!r}, masked={self.masked})"


def merge_plain(segments: list[Segment]) -> list[Segment]:
    """Join adjacent plain segments; drop empty ones."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.text:
            continue
        if out and not seg.restored and not seg.masked and not out[-1].restored and not out[-1].masked:
            out[-1] = Segment(out[-1].text + seg.text)
        else:
            out.append(seg)
    return out


class Restorer:
    """Replace placeholders from ``mapping`` in a chunked stream.

    Holds back only a trailing ``[...`` that is still a proper prefix of a known
    placeholder, so held text is always shorter than the longest placeholder.
    Unknown placeholders pass through unchanged. The mapping is snapshotted at
    construction; create the Restorer after redacting every field.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._values = dict(mapping)
        type_of = getattr(mapping, "type_of", None)
        self._types = {p: (type_of(p) if type_of else None) for p in self._values}
        self._prefixes = {p[:i] for p in self._values for i in range(1, len(p))}
        self._maxlen = max((len(p) for p in self._values), default=0)
        self._buf = ""

    @property
    def max_holdback(self) -> int:
        return max(self._maxlen - 1, 0)

    @property
    def pending(self) -> int:
        """Characters fed but not yet emitted."""
        return len(self._buf)

    def feed(self, chunk: str) -> str:
        return "".join(s.text for s in self.feed_segments(chunk))

    def flush(self) -> str:
        return "".join(s.text for s in self.flush_segments())

    def feed_segments(self, chunk: str) -> list[Segment]:
        buf = self._buf + chunk
        if not self._values:
            self._buf = ""
            return [Segment(buf)] if buf else []
        out: list[Segment] = []
        pos = 0
        while True:
            i = buf.find("[", pos)
            if i < 0:
                out.append(Segment(buf[pos:]))
                pos = len(buf)
                break
            out.append(Segment(buf[pos:i]))
            j = buf.find("]", i + 1, i + self._maxlen)
            if j >= 0:
                placeholder = buf[i:j + 1]
                if placeholder in self._values:
                    out.append(self._restored(placeholder))
                    pos = j + 1
                    continue
            elif buf[i:] in self._prefixes:
                pos = i  # could still become a placeholder: hold it back
                break
            out.append(Segment("["))
            pos = i + 1
        self._buf = buf[pos:]
        return merge_plain(out)

    def flush_segments(self) -> list[Segment]:
        rest, self._buf = self._buf, ""
        return [Segment(rest)] if rest else []

    def _restored(self, placeholder: str) -> Segment:
        type_ = self._types.get(placeholder)
        if type_ == LITERAL:  # escaped input text: plain, not a restored value
            return Segment(self._values[placeholder])
        return Segment(self._values[placeholder], restored=True, type=type_)
