"""Prometheus series observed once per finished generation (ops.prometheus serves them).

Labels hold only fixed vocabularies (status, reason codes, redaction types): never text
and never a request id. With PROMETHEUS_MULTIPROC_DIR set, prometheus_client keeps them in
files shared by the processes.
"""
from __future__ import annotations

import logging
import re

from prometheus_client import Counter, Histogram

from generation.models import Generation

logger = logging.getLogger(__name__)

# LLM streams range from a 10 ms first token to a 10-minute generation.
STREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2.5, 5)
_CODE = re.compile(r"^[a-z_]{1,40}$")
_TYPE = re.compile(r"^[A-Za-z0-9_:]{1,64}$")

TTFT = Histogram("sluice_time_to_first_token_seconds", "Accept to first token.", buckets=STREAM_BUCKETS)
DURATION = Histogram("sluice_stream_duration_seconds", "Accept to terminal event.", buckets=STREAM_BUCKETS)
INTER_TOKEN = Histogram(
    "sluice_inter_token_latency_seconds", "Mean time between tokens of one generation.", buckets=TOKEN_BUCKETS
)
QUEUE_WAIT = Histogram("sluice_queue_wait_seconds", "Accept to model slot (or to giving up).", buckets=STREAM_BUCKETS)
GENERATIONS = Counter("sluice_generations_total", "Finished generations.", ["status", "reason"])
TOKENS = Counter("sluice_tokens_generated_total", "Tokens generated.")
TOKENS_AFTER_CANCEL = Counter("sluice_tokens_after_cancel_total", "Tokens generated after a cancel was asked.")
REDACTIONS = Counter("sluice_redactions_total", "Redacted or masked values, by type.", ["type"])


def observe_generation(generation: Generation) -> None:
    """Record one finished generation. Never raises: metrics must not break the lifecycle."""
    try:
        _observe(generation)
    except Exception as exc:  # noqa: BLE001
        logger.warning("metrics observation failed (%s)", type(exc).__name__)


def _observe(row: Generation) -> None:
    if not row.is_finished:
        return
    reason = row.cancel_reason or row.timeout_source or row.error_code
    GENERATIONS.labels(status=row.status, reason=_label(reason, _CODE, empty="none")).inc()
    TOKENS.inc(row.output_tokens)
    TOKENS_AFTER_CANCEL.inc(row.tokens_after_cancel)
    if row.ttft_ms is not None:
        TTFT.observe(row.ttft_ms / 1000)
    if row.duration_ms is not None:
        DURATION.observe(row.duration_ms / 1000)
    if (inter_token := _inter_token_seconds(row)) is not None:
        INTER_TOKEN.observe(inter_token)
    if row.queue_ms is not None:
        QUEUE_WAIT.observe(row.queue_ms / 1000)
    elif row.started_at is None and row.duration_ms is not None and row.status != Generation.Status.INTERRUPTED:
        QUEUE_WAIT.observe(row.duration_ms / 1000)  # it waited until it gave up
    for type_, count in (row.redaction_counts or {}).items():
        if isinstance(count, int) and count > 0:
            REDACTIONS.labels(type=_label(type_, _TYPE, empty="unknown")).inc(count)


def _inter_token_seconds(row: Generation) -> float | None:
    if row.tokens_per_second:
        return 1 / row.tokens_per_second
    if row.output_tokens > 1 and row.ttft_ms is not None and row.duration_ms is not None:
        return max(row.duration_ms - row.ttft_ms, 0) / 1000 / (row.output_tokens - 1)
    return None


def _label(value: str, pattern: re.Pattern, *, empty: str) -> str:
    if not value:
        return empty
    return value if pattern.match(value) else "other"
