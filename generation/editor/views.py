"""The editor pages: compose (with its streaming endpoint) and history. Thin views; the
lifecycle is the same as the native API's (open_run -> RunStreamingResponse)."""
from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from generation.backends.base import SamplingParams
from generation.http.auth import authenticate
from generation.http.bodies import parse_json_body, read_body
from generation.http.errors import not_accepting, refusal
from generation.http.responses import LoggedStreamingResponse
from generation.lifecycle.intake import open_run
from generation.lifecycle.refusals import REFUSALS, RequestInvalid
from generation.lifecycle.relay import make_resumable
from generation.models import Generation
from redaction import BUILTIN_TYPES
from redaction.fields import field_policy

from .forms import LENGTHS, PROMPT_TEMPLATE, STOP_SEQUENCES, TEXT_FIELDS, TONES, ComposeForm

HISTORY_PAGE_SIZE = 20

# Human words for the redaction types, for the policy notes and error messages.
TYPE_NAMES = {
    "EMAIL_ADDRESS": "email addresses",
    "PHONE_NUMBER": "phone numbers",
    "CREDIT_CARD": "card numbers",
    "IBAN_CODE": "IBANs",
    "IP_ADDRESS": "IP addresses",
    "URL_CREDENTIALS": "credentials in links",
    "SECRET": "secrets and API keys",
    "PRICE": "prices",
    "COMMERCIAL_TERM": "commercial terms",
}
ACTION_WORDS = {
    "reject": "Refused (the request is stopped)",
    "redact": "Replaced by a placeholder before the model sees it",
    "allow": "Sent as written",
}

def policy_notes(field_name: str) -> list[tuple[str, str]]:
    """The field's redaction policy in words: (action words, types), derived from field_policy()."""
    policy = field_policy(field_name)
    known = [t for t in TYPE_NAMES if t in BUILTIN_TYPES]
    custom = [t for t in policy.actions if t not in TYPE_NAMES]  # admin-defined term types
    listed: dict[str, list[str]] = {}
    for type_ in [*known, *custom]:
        words = TYPE_NAMES.get(type_, type_.lower().replace("_", " "))
        listed.setdefault(policy.action(type_), []).append(words)
    listed.setdefault(policy.default, []).append("sensitive terms")
    return [(ACTION_WORDS[action], ", ".join(listed[action])) for action in ("reject", "redact", "allow") if action in listed]


def build_prompt(texts: Mapping[str, str], *, tone: str, length: str) -> str:
    """The model prompt: the prompt template rendered with the REDACTED field texts."""
    context = {name: value.strip() for name, value in texts.items()}
    context.update(tone=TONES[tone], length_words=LENGTHS[length][2])
    return render_to_string(PROMPT_TEMPLATE, context).rstrip() + "\n"


@login_required
@ensure_csrf_cookie
def compose(request):
    """GET /: the compose form."""
    fields = [{"field": spec, "policy": policy_notes(spec.name)} for spec in TEXT_FIELDS]
    return render(request, "pages/compose.html", {
        "fields": fields,
        "tones": TONES.items(),
        "lengths": [(value, label, max_tokens) for value, (label, max_tokens, _) in LENGTHS.items()],
        "type_names": TYPE_NAMES,
        "labels": {spec.name: spec.label for spec in TEXT_FIELDS} | {"tone": "Tone", "length": "Length"},
        "resume_grace_ms": int(settings.SLUICE_RESUME_GRACE_SECONDS * 1000),
    })


@csrf_exempt  # authenticate() runs the CSRF check itself and answers JSON, not an HTML 403
async def compose_generate(request):
    """POST /compose/generate: a signed-in editor's generation, streamed as the native SSE,
    resumable at GET /api/v1/generations/<id>/events."""
    if (refused := not_accepting(request)) is not None:
        return refused
    try:
        if request.headers.get("Authorization"):
            raise RequestInvalid(401, "unauthorized", "This endpoint takes a signed-in session, not an API key.")
        caller = await authenticate(request)
        form = ComposeForm.from_json(parse_json_body(read_body(request), request.content_type))
        texts, tone, length = form.texts(), form.cleaned_data["tone"], form.cleaned_data["length"]
        params = SamplingParams(max_tokens=LENGTHS[length][1], stop=STOP_SEQUENCES)
        run = await open_run(
            caller=caller,
            channel=Generation.Channel.WEB,
            fields=texts,
            params=params,
            build_prompt=lambda redacted: build_prompt(redacted, tone=tone, length=length),
        )
    except REFUSALS as exc:
        return refusal(exc)
    # Always resumable: the page comes back after a dropped connection (static/js/compose.js).
    held = make_resumable(run)
    return LoggedStreamingResponse(run.request_id, held.read_events(0, resume=False))


CANCEL_WORDS = {
    "client_cancel": "stopped by you",
    "client_disconnect": "connection closed",
    "admin_cancel": "stopped by an administrator",
    "shutdown": "server shutdown",
}


def outcome_words(row: Generation) -> str:
    """Why a generation ended, in a few words (the history's reason column)."""
    if row.cancel_reason:
        return CANCEL_WORDS.get(row.cancel_reason, row.cancel_reason)
    if row.timeout_source:
        return f"timeout ({row.timeout_source.replace('_', ' ')})"
    if row.error_code:
        return row.error_code.replace("_", " ")
    return {"length": "length limit", "stop": "finished"}.get(row.finish_reason, row.finish_reason or "—")


@login_required
def history(request):
    """GET /history: the signed-in editor's own generations, newest first; no text."""
    rows = Generation.objects.filter(user=request.user).only(
        "request_id", "status", "channel", "cancel_reason", "timeout_source", "error_code", "finish_reason",
        "output_tokens", "created_at", "duration_ms", "tokens_per_second",
    )
    page = Paginator(rows, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    for row in page:
        row.reason = outcome_words(row)
    return render(request, "pages/history.html", {"page": page})
