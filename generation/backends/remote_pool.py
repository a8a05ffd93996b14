"""The pool of upstream engine servers: least-outstanding-requests routing with optional
caller affinity, passive and active health checks, cool-down, and the capacity (slots of
the upstreams in service) that the scheduler follows."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from . import remote_metrics as metrics
from .remote_config import PoolConfig, UpstreamConfig
from .remote_http import IdleConnections, UpstreamError, probe

logger = logging.getLogger(__name__)


class Upstream:
    """One upstream's live state; changed only under the pool's lock."""

    def __init__(self, index: int, config: UpstreamConfig) -> None:
        self.index = index
        self.config = config
        self.outstanding = 0
        self.down = False
        self.cooldown_until = 0.0
        self.last_error = ""
        self.idle = IdleConnections(config.slots)  # kept-alive connections between requests

    @property
    def name(self) -> str:
        return self.config.name


class Pool:
    """Routes requests to upstreams. `check(upstream)` is the active check: True, False, or
    None for no answer in time."""

    def __init__(
        self,
        config: PoolConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        check: Callable[[UpstreamConfig], bool | None] | None = None,
    ) -> None:
        self.config = config
        self.upstreams = [Upstream(index, upstream) for index, upstream in enumerate(config.upstreams)]
        self._clock = clock
        self._check = check or (lambda upstream: probe(upstream, config.health_path, timeout=config.connect_timeout))
        self._lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for upstream in self.upstreams:
            metrics.UP.labels(upstream.name).set(1)

    # Capacity -------------------------------------------------------------------------
    def capacity(self) -> int:
        with self._lock:
            return self._capacity_locked()

    def _capacity_locked(self) -> int:
        return sum(upstream.config.slots for upstream in self.upstreams if not upstream.down)

    def add_capacity_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(slots)` now and whenever upstreams leave or rejoin service."""
        with self._lock:
            self._listeners.append(listener)
            capacity = self._capacity_locked()
        listener(capacity)

    def _notify(self, capacity: int) -> None:
        for listener in list(self._listeners):
            try:
                listener(capacity)
            except Exception:  # noqa: BLE001 - a listener must not stop health checks
                logger.exception("upstream capacity listener failed")

    # Routing --------------------------------------------------------------------------
    def acquire(self, owner: str | None = None, exclude: frozenset[int] = frozenset()) -> Upstream | None:
        """An upstream in service for one request (counted as outstanding), or None."""
        with self._lock:
            candidates = [u for u in self.upstreams if not u.down and u.index not in exclude]
            if not candidates:
                return None
            chosen = None
            if self.config.affinity and owner:
                preferred = self.upstreams[_owner_index(owner, len(self.upstreams))]
                if preferred in candidates and preferred.outstanding < preferred.config.slots:
                    chosen = preferred
            if chosen is None:
                # Least outstanding relative to its slots, so unequal upstreams fill evenly.
                chosen = min(candidates, key=lambda u: (u.outstanding / u.config.slots, u.outstanding, u.index))
            chosen.outstanding += 1
        metrics.IN_FLIGHT.labels(chosen.name).inc()
        metrics.REQUESTS.labels(chosen.name).inc()
        return chosen

    def release(self, upstream: Upstream) -> None:
        with self._lock:
            upstream.outstanding -= 1
        metrics.IN_FLIGHT.labels(upstream.name).dec()

    # Health ---------------------------------------------------------------------------
    def failed(self, upstream: Upstream, error: UpstreamError) -> None:
        """Passive check: a request failed. Unhealthy failures put it in cool-down."""
        metrics.ERRORS.labels(upstream.name, error.kind).inc()
        if error.unhealthy:
            upstream.idle.clear()
            self._set_down(upstream, error.kind)
        else:
            with self._lock:
                upstream.last_error = f"{error.kind} {error.status}"

    def _set_down(self, upstream: Upstream, reason: str) -> None:
        with self._lock:
            upstream.cooldown_until = self._clock() + self.config.cooldown
            upstream.last_error = reason
            changed = not upstream.down
            upstream.down = True
            capacity = self._capacity_locked()
        if changed:
            logger.warning("upstream %s out of service for %.0f s (%s)", upstream.name, self.config.cooldown, reason)
            metrics.UP.labels(upstream.name).set(0)
            self._notify(capacity)

    def check_once(self) -> None:
        """Active check of every upstream; one back in health after its cool-down rejoins."""
        for upstream in self.upstreams:
            healthy = self._check(upstream.config)
            if healthy is None and upstream.outstanding:
                continue  # busy, answering late: its streams' own failures are the check
            if not healthy:
                self._set_down(upstream, "health_check")
                continue
            with self._lock:
                rejoin = upstream.down and self._clock() >= upstream.cooldown_until
                if rejoin:
                    upstream.down = False
                    upstream.last_error = ""
                capacity = self._capacity_locked()
            if rejoin:
                logger.info("upstream %s back in service", upstream.name)
                metrics.UP.labels(upstream.name).set(1)
                self._notify(capacity)

    def start(self) -> None:
        """Check every upstream now, then every health interval in a daemon thread."""
        self.check_once()
        if self.config.health_interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sluice-upstream-health", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.health_interval):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - the checks must keep running
                logger.exception("upstream health check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.connect_timeout * 2 + 1)
        for upstream in self.upstreams:
            upstream.idle.clear()

    def report(self) -> dict:
        """Each upstream's state by name, for /readyz (never URLs or keys)."""
        now = self._clock()
        with self._lock:
            return {
                u.name: {
                    "up": not u.down,
                    "slots": u.config.slots,
                    "in_flight": u.outstanding,
                    "cooldown_seconds": round(max(0.0, u.cooldown_until - now), 1) if u.down else 0.0,
                    "last_error": u.last_error,
                }
                for u in self.upstreams
            }


def _owner_index(owner: str, count: int) -> int:
    """A caller's upstream: stable across processes, so every Sluice process sends a caller
    to the same engine."""
    return int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=8).digest(), "big") % count
