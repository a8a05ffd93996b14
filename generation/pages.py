"""The editor pages: compose (with its streaming endpoint) and history. Thin views; the
lifecycle is the same as the native API's (open_run -> RunStreamingResponse)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from redaction import BUILTIN_TYPES
from redaction.requests import field_policy

from .backends.base import SamplingParams
from .http import REFUSALS, authenticate, not_accepting, read_body, refusal
from .intake import open_run
from .models import Generation
from .validation import RequestInvalid, parse_json_body
from .views import RunStreamingResponse

PROMPT_TEMPLATE = "prompts/product_copy.txt"
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


@dataclass(frozen=True)
class TextField:
    name: str
    label: str
    max_chars: int
    multiline: bool = False
    required: bool = False
    sensitive: bool = False
    help: str = ""


TEXT_FIELDS = (
    TextField("product_name", "Product name", 200, required=True),
    TextField("product_details", "Product details", 4000, multiline=True, help="Materials, size, features."),
    TextField("audience", "Audience", 300, help="Who the copy is for."),
    TextField("internal_notes", "Internal notes", 2000, multiline=True, sensitive=True,
              help="Background for the model; not meant to appear in the copy."),
    TextField("pricing_terms", "Pricing and supplier terms", 2000, multiline=True, sensitive=True,
              help="Costs, margins, supplier names and terms."),
)
TONES = {
    "friendly": "friendly and warm",
    "professional": "professional and precise",
    "playful": "playful and light",
    "premium": "premium and understated",
    "plain": "plain and factual",
}
LENGTHS = {  # value: (label, max_tokens, words for the prompt)
    "short": ("Short", 80, "about 40 words"),
    "medium": ("Medium", 160, "about 80 words"),
    "long": ("Long", 320, "about 160 words"),
}
STOP_SEQUENCES = ("\n\n\n", "\nProduct:", "\nProduct description:")  # the model starting another listing


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
    })


def validate_compose(data: dict) -> tuple[dict[str, str], str, str]:
    """The compose form's fields, tone and length, or RequestInvalid naming the field."""
    known = {spec.name for spec in TEXT_FIELDS} | {"tone", "length"}
    for key in data:
        if key not in known:
            raise RequestInvalid(400, "invalid_request", f"Unknown field '{str(key)[:40]}'.", str(key)[:40])
    texts: dict[str, str] = {}
    for spec in TEXT_FIELDS:
        value = data.get(spec.name, "")
        if not isinstance(value, str):
            raise RequestInvalid(400, "invalid_request", f"{spec.label} must be text.", spec.name)
        if spec.required and not value.strip():
            raise RequestInvalid(400, "invalid_request", f"{spec.label} is required.", spec.name)
        if len(value) > spec.max_chars:
            raise RequestInvalid(
                400, "invalid_request", f"{spec.label} is longer than {spec.max_chars} characters.", spec.name
            )
        texts[spec.name] = value
    if sum(len(value) for value in texts.values()) > settings.SLUICE_MAX_PROMPT_CHARS:
        raise RequestInvalid(
            413, "prompt_too_large", f"Together the fields exceed {settings.SLUICE_MAX_PROMPT_CHARS} characters."
        )
    tone, length = data.get("tone", "friendly"), data.get("length", "medium")
    if tone not in TONES:
        raise RequestInvalid(400, "invalid_request", "Choose one of the listed tones.", "tone")
    if length not in LENGTHS:
        raise RequestInvalid(400, "invalid_request", "Choose short, medium or long.", "length")
    return texts, tone, length


@csrf_exempt  # authenticate() runs the CSRF check itself and answers JSON, not an HTML 403
async def compose_generate(request):
    """POST /compose/generate: a signed-in editor's generation, streamed as the native SSE."""
    if (refused := not_accepting(request)) is not None:
        return refused
    try:
        if request.headers.get("Authorization"):
            raise RequestInvalid(401, "unauthorized", "This endpoint takes a signed-in session, not an API key.")
        caller = await authenticate(request)
        texts, tone, length = validate_compose(parse_json_body(read_body(request), request.content_type))
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
    return RunStreamingResponse(run)


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
