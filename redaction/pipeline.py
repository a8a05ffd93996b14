"""OutputPipeline: restore placeholders, then guard only model-generated text."""
from __future__ import annotations

from typing import Mapping

from .guard import DEFAULT_MAX_HOLDBACK, OutputGuard
from .restore import Restorer, Segment, merge_plain


class OutputPipeline:
    """Composes :class:`Restorer` and :class:`OutputGuard` for one response stream.

    Restored values are the caller's own data and bypass the guard: when the
    restorer emits one, the guard first releases (and masks) everything it holds,
    then the restored segment follows unscanned. Only plain model text is scanned.
    """

    def __init__(
        self,
        mapping: Mapping[str, str] | None = None,
        *,
        restore: bool = True,
        guard: bool = True,
        max_holdback: int = DEFAULT_MAX_HOLDBACK,
    ) -> None:
        self._restorer = Restorer(mapping or {}) if restore else None
        self._guard = OutputGuard(max_holdback=max_holdback) if guard else None

    @property
    def masked_counts(self) -> dict[str, int]:
        return self._guard.masked_counts if self._guard else {}

    def feed(self, chunk: str) -> list[Segment]:
        segs = self._restorer.feed_segments(chunk) if self._restorer else [Segment(chunk)]
        return self._guarded(segs)

    def flush(self) -> list[Segment]:
        segs = self._restorer.flush_segments() if self._restorer else []
        out = self._guarded(segs)
        if self._guard:
            out.extend(self._guard.flush_segments())
        return merge_plain(out)

    def feed_text(self, chunk: str) -> str:
        return "".join(s.text for s in self.feed(chunk))

    def flush_text(self) -> str:
        return "".join(s.text for s in self.flush())

    def _guarded(self, segs: list[Segment]) -> list[Segment]:
        if self._guard is None:
            return merge_plain(segs)
        out: list[Segment] = []
        for seg in segs:
            if seg.restored:
                out.extend(self._guard.flush_segments())
                out.append(seg)
            else:
                out.extend(self._guard.feed_segments(seg.text))
        return merge_plain(out)
