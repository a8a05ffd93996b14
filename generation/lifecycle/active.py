"""The runs a process is serving, by request id (the instance lives in runtime)."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import GenerationRun


class ActiveRuns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, GenerationRun] = {}
        self.draining = False  # set on shutdown: new requests are refused

    def add(self, run: GenerationRun) -> None:
        with self._lock:
            self._runs[str(run.request_id)] = run

    def discard(self, run: GenerationRun) -> None:
        with self._lock:
            self._runs.pop(str(run.request_id), None)

    def get(self, request_id: str) -> GenerationRun | None:
        with self._lock:
            return self._runs.get(str(request_id))

    def all(self) -> list[GenerationRun]:
        with self._lock:
            return list(self._runs.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)
