"""Prometheus series per upstream engine server. The `upstream` label is the configured
name (SLUICE_UPSTREAMS), so its values are fixed at start-up and never come from input."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("sluice_upstream_requests_total", "Completion requests sent to an upstream.", ["upstream"])
ERRORS = Counter(
    "sluice_upstream_errors_total", "Failed upstream requests, by kind (connect, status, broken, protocol).",
    ["upstream", "kind"],
)
FIRST_TOKEN = Histogram(
    "sluice_upstream_first_token_seconds", "Request sent to first chunk received.", ["upstream"],
    buckets=FIRST_TOKEN_BUCKETS,
)
IN_FLIGHT = Gauge(
    "sluice_upstream_in_flight", "Requests open on an upstream.", ["upstream"], multiprocess_mode="livesum"
)
UP = Gauge("sluice_upstream_up", "1 when an upstream is in service, 0 in cool-down.", ["upstream"], multiprocess_mode="livemin")
