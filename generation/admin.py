"""Read-only audit of generations (like Django's LogEntry admin) and API key management.

Nothing here can show prompt or output text: no such text is stored, and the pages show
only the operational shape that the Generation row holds.
"""
from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.functional import cached_property

from redaction.fields import parse_locale

from .models import ApiKey, CallerLimit, Generation
from .ops.remote_cancel import api_key_revoke_everywhere, generations_cancel
from .records import dashboard
from .records.api_keys import api_key_create
from .records.querysets import SeekingDatesQuerySet


def redaction_summary(counts: dict | None) -> str:
    """'EMAIL_ADDRESS×2, PHONE_NUMBER×1': types and counts, never values."""
    if not counts:
        return "—"
    return ", ".join(f"{type_}×{count}" for type_, count in sorted(counts.items()))


class ModelVersionFilter(admin.SimpleListFilter):
    """Model versions found by a loose index scan: one index seek per distinct version,
    where SELECT DISTINCT would read the whole table on every page view."""

    title = "model version"
    parameter_name = "model_version"
    max_versions = 20

    def lookups(self, request, model_admin):
        versions, last = [], None
        rows = Generation.objects.order_by("model_version").values_list("model_version", flat=True)
        while len(versions) < self.max_versions:
            last = (rows.filter(model_version__gt=last) if last is not None else rows).first()
            if last is None:
                break
            versions.append(last)
        return [(version, version[:12]) for version in versions]

    def queryset(self, request, queryset):
        return queryset.filter(model_version=self.value()) if self.value() else queryset


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: a page of a million-row table reads a few thousand index
    entries instead of counting the table. Past the cap the page says "more than"."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return min(self.object_list[: self.CAP + 1].count(), self.CAP)

    @property
    def capped(self) -> bool:
        return self.count >= self.CAP


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "status",
        "reason",
        "channel",
        "ttft_ms",
        "duration_ms",
        "output_tokens",
        "tokens_per_second_display",
        "redactions",
        "caller",
    ]
    list_filter = ["status", "cancel_reason", "timeout_source", "channel", ModelVersionFilter, "user", "api_key"]
    list_select_related = ["user", "api_key"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    search_fields = ["request_id"]
    search_help_text = "Exact request id (UUID)."
    show_full_result_count = False  # no COUNT(*) over the whole table on every filtered page
    paginator = CappedCountPaginator  # nor for the page's own count
    list_per_page = 50
    actions = ["cancel_selected"]
    fieldsets = [
        (None, {"fields": ["request_id", "status", "reason", "finish_reason", "channel", "caller"]}),
        ("Request shape", {"fields": ["validation_result", "redactions", "prompt_chars", "prompt_tokens"]}),
        ("Output", {"fields": ["max_tokens", "output_tokens", "tokens_after_cancel", "tokens_per_second"]}),
        ("Times", {"fields": ["created_at", "started_at", "first_token_at", "finished_at"]}),
        ("Timings (ms)", {"fields": ["queue_ms", "ttft_ms", "duration_ms"]}),
        ("Model", {"fields": ["model_name", "model_version", "owner"]}),
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return SeekingDatesQuerySet(self.model, query=queryset.query, using=queryset._db, hints=queryset._hints)

    def get_readonly_fields(self, request, obj=None):
        return [name for _, options in self.fieldsets for name in options["fields"]]

    def get_urls(self):
        view = self.admin_site.admin_view(self.dashboard_view)
        return [path("dashboard/", view, name="generation_dashboard"), *super().get_urls()]

    def dashboard_view(self, request):
        """Operational figures for a window (?window=1h|24h|7d|30d), computed in the database."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        window = request.GET.get("window", dashboard.DEFAULT_WINDOW)
        if window not in dashboard.WINDOWS:
            window = dashboard.DEFAULT_WINDOW
        stats = dashboard.dashboard_stats(window)
        context = {
            **self.admin_site.each_context(request),
            "title": "Generation dashboard",
            "opts": self.opts,
            "windows": list(dashboard.WINDOWS),
            "stats": stats,
            "chart": dashboard.hourly_chart(stats["hourly"], stats["since"], stats["now"]),
        }
        return TemplateResponse(request, "admin/generation/dashboard.html", context)

    @admin.action(description="Cancel selected generations (queued or running)", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        """Reaches the stream on whichever server process serves it (channel layer)."""
        unfinished = queryset.filter(status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING])
        sent = generations_cancel(request_ids=unfinished.values_list("request_id", flat=True))
        skipped = queryset.count() - sent
        message = f"Cancel sent to {sent} generation(s); {skipped} had already ended."
        self.message_user(request, message, messages.SUCCESS)

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("generation.cancel_generation")

    def get_search_results(self, request, queryset, search_term):
        """Exact request id only: one index lookup instead of a LIKE scan of the table."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(request_id=uuid.UUID(term)), False
        except ValueError:
            return queryset.none(), False

    @admin.display(description="reason")
    def reason(self, obj: Generation) -> str:
        return obj.cancel_reason or obj.timeout_source or obj.error_code or "—"

    @admin.display(description="tokens/s", ordering="tokens_per_second")
    def tokens_per_second_display(self, obj: Generation) -> str:
        return f"{obj.tokens_per_second:.1f}" if obj.tokens_per_second is not None else "—"

    @admin.display(description="redactions")
    def redactions(self, obj: Generation) -> str:
        return redaction_summary(obj.redaction_counts)

    @admin.display(description="user / API key")
    def caller(self, obj: Generation) -> str:
        if obj.api_key_id is not None:
            return f"key {obj.api_key}"
        if obj.user_id is not None:
            return f"user {obj.user}"
        return "—"


class ApiKeyCreateForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "user", "redaction_languages", "phone_region"]

    def clean(self):
        cleaned = super().clean()
        codes = [code for code in cleaned.get("redaction_languages", "").replace(" ", "").split(",") if code]
        try:
            locale = parse_locale(languages=codes or None, region=cleaned.get("phone_region"))
        except ValueError as exc:
            field = "redaction_languages" if "languages" in str(exc) else "phone_region"
            raise forms.ValidationError({field: str(exc)}) from None
        cleaned["redaction_languages"] = ",".join(sorted(locale.languages or ()))
        cleaned["phone_region"] = locale.region or ""
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "revoked"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix"]
    actions = ["revoke_selected"]
    form = ApiKeyCreateForm
    readonly_fields = [
        "name", "prefix", "user", "redaction_languages", "phone_region", "created_at", "last_used_at", "revoked_at"
    ]

    def has_change_permission(self, request, obj=None):
        return False  # a key is created and revoked, never edited

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: generations keep pointing at the key

    def has_revoke_permission(self, request):
        return request.user.has_perm("generation.change_apikey")

    def get_fields(self, request, obj=None):
        return ["name", "user", "redaction_languages", "phone_region"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        """Create through the service; only the hash is stored. The raw key stays on this
        in-memory instance for response_add, which shows it once."""
        created, raw_key = api_key_create(
            name=obj.name, user=obj.user, redaction_languages=obj.redaction_languages, phone_region=obj.phone_region
        )
        obj.pk, obj.prefix, obj.created_at = created.pk, created.prefix, created.created_at
        obj.key_hash = created.key_hash
        obj._state.adding = False
        obj.raw_key = raw_key

    def response_add(self, request, obj, post_url_continue=None):
        """A page that shows the raw key once, in its own body. Not a message: message storage
        is by default a signed but readable cookie (and otherwise the session), and a redirect
        would carry the key there."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "api_key": obj,
            "raw_key": obj.raw_key,
            "has_add_permission": self.has_add_permission(request),
        }
        response = TemplateResponse(request, "admin/generation/apikey/created.html", context)
        response["Cache-Control"] = "no-store"  # neither the browser nor a proxy keeps a copy
        return response

    @admin.display(boolean=True, description="revoked", ordering="revoked_at")
    def revoked(self, obj: ApiKey) -> bool:
        return obj.revoked_at is not None

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke_everywhere(api_key=api_key)
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)


@admin.register(CallerLimit)
class CallerLimitAdmin(admin.ModelAdmin):
    """Limits per API key or user; empty fields take the SLUICE_LIMIT_* defaults, 0 is unlimited."""

    list_display = ["__str__", "requests_per_minute", "concurrent_streams", "tokens_per_day"]
    list_select_related = ["api_key", "user"]
    raw_id_fields = ["api_key", "user"]
    search_fields = ["api_key__name", "api_key__prefix", "user__username"]
