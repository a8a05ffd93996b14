"""Operational records. A Generation holds the shape of a request, never its text."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from redaction.fields import Locale


class ApiKey(models.Model):
    """An API credential. Only a SHA-256 of the key and a short public prefix are stored."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part shown in listings.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    redaction_languages = models.CharField(
        max_length=40, blank=True,
        help_text="Languages whose cue words redaction applies to this key's requests, e.g. 'en,de'. Empty: all.",
    )
    phone_region = models.CharField(
        max_length=2, blank=True,
        help_text="Phone region tried first for national numbers, e.g. 'DE'. Empty: the default.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def redaction_locale(self) -> Locale | None:
        """The key's redaction locale, or None when it sets neither part."""
        languages = frozenset(code for code in self.redaction_languages.split(",") if code) or None
        if languages is None and not self.phone_region:
            return None
        return Locale(region=self.phone_region or None, languages=languages)


class Generation(models.Model):
    """One generation request's lifecycle, written at accept, start and finish only."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        FAILED = "failed"
        TIMED_OUT = "timed_out"
        INTERRUPTED = "interrupted"

    class CancelReason(models.TextChoices):
        CLIENT_DISCONNECT = "client_disconnect"
        CLIENT_CANCEL = "client_cancel"
        ADMIN_CANCEL = "admin_cancel"
        SHUTDOWN = "shutdown"

    class TimeoutSource(models.TextChoices):
        QUEUE_WAIT = "queue_wait"
        STALL = "stall"
        TOTAL = "total"

    class Channel(models.TextChoices):
        WEB = "web"
        API = "api"
        OPENAI = "openai"
        CLI = "cli"

    FINISHED_STATUSES = (Status.COMPLETED, Status.CANCELLED, Status.FAILED, Status.TIMED_OUT, Status.INTERRUPTED)
    UNFINISHED_STATUSES = (Status.QUEUED, Status.RUNNING)

    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="generations"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="generations")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    cancel_reason = models.CharField(max_length=20, choices=CancelReason.choices, blank=True)
    timeout_source = models.CharField(max_length=12, choices=TimeoutSource.choices, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    finish_reason = models.CharField(max_length=12, blank=True)
    validation_result = models.CharField(max_length=20, default="ok")
    redaction_counts = models.JSONField(default=dict, blank=True)

    prompt_chars = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    max_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    tokens_after_cancel = models.PositiveIntegerField(default=0)
    # Resumable runs: readers that left before the terminal event, and readers that came back.
    disconnects = models.PositiveIntegerField(default=0)
    resumes = models.PositiveIntegerField(default=0)

    model_name = models.CharField(max_length=200)
    model_version = models.CharField(max_length=64, help_text="SHA-256 of the model file.")
    owner = models.CharField(max_length=64, blank=True, help_text="Server process that owns the run.")

    created_at = models.DateTimeField(default=timezone.now, editable=False, help_text="When it was accepted.")
    started_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    queue_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"
        permissions = [("cancel_generation", "Can cancel a queued or running generation")]
        indexes = [
            models.Index(fields=["-created_at"], name="gen_created_idx"),
            models.Index(fields=["status", "-created_at"], name="gen_status_created_idx"),
            models.Index(fields=["user", "-created_at"], name="gen_user_created_idx"),
            models.Index(fields=["owner", "status"], name="gen_owner_status_idx"),
            # The admin's filters, each with its newest-first ordering.
            models.Index(fields=["cancel_reason", "-created_at"], name="gen_reason_created_idx"),
            models.Index(fields=["timeout_source", "-created_at"], name="gen_timeout_created_idx"),
            models.Index(fields=["channel", "-created_at"], name="gen_channel_created_idx"),
            models.Index(fields=["model_version", "-created_at"], name="gen_model_created_idx"),
            models.Index(fields=["api_key", "-created_at"], name="gen_key_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES


class Tally(models.Model):
    """One figure of a sealed hour (hours=1) or day (hours=24) of Generation rows
    (generation/records/rollups.py): ("status", "completed") -> 1370, ("ttft_ms", "87") -> 12 (a
    latency bucket), ... Names and labels are column values and type names, never content."""

    start = models.DateTimeField(help_text="Start of the clock hour or UTC day.")
    hours = models.PositiveSmallIntegerField(help_text="1: an hour; 24: a day.")
    name = models.CharField(max_length=32)
    label = models.CharField(max_length=40, blank=True)
    value = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hours", "start", "name", "label"], name="tally_span_name_label_uniq")
        ]
        indexes = [models.Index(fields=["name", "hours", "start"], name="tally_name_span_idx")]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:00} +{self.hours}h {self.name}[{self.label}] = {self.value}"


class RefusalTally(models.Model):
    """Requests refused by a per-caller limit (records/usage.py) in one clock hour, by the
    limit's name. Every process adds to the same row as it refuses, so the count is shared;
    a refused request has no Generation row, so the Tally of rows cannot hold it."""

    hour = models.DateTimeField(help_text="Start of the clock hour.")
    limit_name = models.CharField(max_length=32, help_text="requests_per_minute, concurrent_streams or tokens_per_day.")
    refused = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "limit_name"], name="refusal_tally_hour_limit_uniq")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.limit_name} = {self.refused}"


class ServerProcess(models.Model):
    """A live process that can own running generations; it heartbeats while it lives, so
    reconciliation never touches rows that a live process still owns."""

    owner = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=100)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-heartbeat_at"]

    def __str__(self) -> str:
        return self.owner


class CallerLimit(models.Model):
    """Limits for one API key or one signed-in user; an empty field takes the default from
    settings (SLUICE_LIMIT_*), and 0 means unlimited."""

    api_key = models.OneToOneField(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="limit")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="generation_limit"
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    concurrent_streams = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="Completion tokens.")

    class Meta:
        verbose_name = "caller limit"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(api_key__isnull=False, user__isnull=True)
                | models.Q(api_key__isnull=True, user__isnull=False),
                name="caller_limit_one_caller",
            )
        ]

    def __str__(self) -> str:
        return f"limits for {self.api_key or self.user}"
