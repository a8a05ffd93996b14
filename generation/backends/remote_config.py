"""Settings of the remote backend: the upstream engine servers (SLUICE_UPSTREAMS and its
per-upstream lists) and the pool's timings, parsed and checked once at start-up."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# Upstream names become Prometheus label values and /readyz keys: a fixed, short alphabet.
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
PROMPT_FORMATS = ("text", "tokens")


@dataclass(frozen=True)
class UpstreamConfig:
    """One engine server: `name` (from configuration only), its base URL, slots and key."""

    name: str
    url: str
    slots: int
    api_key: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def secure(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @property
    def base_path(self) -> str:
        return urlsplit(self.url).path.rstrip("/")


@dataclass(frozen=True)
class PoolConfig:
    upstreams: tuple[UpstreamConfig, ...]
    model: str = ""  # the model name sent in requests; empty: none sent
    model_version: str = ""  # recorded per generation; empty: the upstream's model list
    prompt_format: str = "text"
    affinity: bool = False
    connect_timeout: float = 2.0
    read_timeout: float = 300.0  # a socket-level backstop; the runner's stall timeout acts first
    retry_budget: float = 5.0
    health_interval: float = 5.0
    cooldown: float = 10.0
    health_path: str = "/health"

    @property
    def total_slots(self) -> int:
        return sum(upstream.slots for upstream in self.upstreams)


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")] if value.strip() else []


def per_upstream(values: list[str], count: int, setting: str) -> list[str]:
    """One value for every upstream, or one value each, in SLUICE_UPSTREAMS order."""
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ValueError(f"{setting} needs one value, or one per upstream ({count})")
    return values


def parse_upstreams(urls: str, *, slots: str = "4", api_keys: str = "") -> tuple[UpstreamConfig, ...]:
    """`name=url` or `url` entries (named u0, u1, ... by position)."""
    entries = split_list(urls)
    if not entries:
        raise ValueError("SLUICE_UPSTREAMS is empty")
    slot_values = per_upstream(split_list(slots) or ["4"], len(entries), "SLUICE_UPSTREAM_SLOTS")
    key_values = per_upstream(api_keys.split(",") if api_keys else [""], len(entries), "SLUICE_UPSTREAM_API_KEYS")
    upstreams = []
    for index, entry in enumerate(entries):
        name, _, url = entry.partition("=") if "=" in entry.split("://", 1)[0] else ("", "", entry)
        name = name or f"u{index}"
        if not NAME.match(name):
            raise ValueError(f"upstream {index}: a name is 1-32 letters, digits, '_', '.' or '-'")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream {name}: not an http(s) URL")
        count = int(slot_values[index])
        if count < 1:
            raise ValueError(f"upstream {name}: slots must be at least 1")
        upstreams.append(UpstreamConfig(name, url.rstrip("/"), count, key_values[index].strip()))
    if len({upstream.name for upstream in upstreams}) != len(upstreams):
        raise ValueError("upstream names must be unique")
    return tuple(upstreams)


def pool_config(settings) -> PoolConfig:
    prompt_format = settings.SLUICE_UPSTREAM_PROMPT
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"SLUICE_UPSTREAM_PROMPT must be one of {', '.join(PROMPT_FORMATS)}")
    return PoolConfig(
        upstreams=parse_upstreams(
            settings.SLUICE_UPSTREAMS, slots=settings.SLUICE_UPSTREAM_SLOTS, api_keys=settings.SLUICE_UPSTREAM_API_KEYS
        ),
        model=settings.SLUICE_UPSTREAM_MODEL,
        model_version=settings.SLUICE_UPSTREAM_MODEL_VERSION,
        prompt_format=prompt_format,
        affinity=settings.SLUICE_UPSTREAM_AFFINITY,
        connect_timeout=settings.SLUICE_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
        read_timeout=max(settings.SLUICE_STALL_TIMEOUT_SECONDS * 2, 10.0),
        retry_budget=settings.SLUICE_UPSTREAM_RETRY_BUDGET_SECONDS,
        health_interval=settings.SLUICE_UPSTREAM_HEALTH_SECONDS,
        cooldown=settings.SLUICE_UPSTREAM_COOLDOWN_SECONDS,
        health_path=settings.SLUICE_UPSTREAM_HEALTH_PATH,
    )
