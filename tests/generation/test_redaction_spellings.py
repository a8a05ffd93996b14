"""Values spelled to slip past detection (Unicode compatibility forms, invisible characters,
odd separators) are caught on every route: the native API, /v1/chat/completions and
/v1/completions. And the redaction locale comes from the request or its API key."""
import pytest

from generation.models import Generation
from generation.records.api_keys import api_key_create
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)

CARD, IBAN = "4111111111111111", "DE89370400440532013000"
# (spelling, what it hides, type): cards and secrets are refused, the others replaced.
REFUSED = [
    ("4111\u00a01111\u00a01111\u00a01111", "CREDIT_CARD"),  # no-break spaces
    ("4111.1111.1111.1111", "CREDIT_CARD"),
    ("4111  1111  1111  1111", "CREDIT_CARD"),  # double spaces
    ("4111 1111-1111.1111", "CREDIT_CARD"),  # mixed separators
    ("4111\n1111\n1111\n1111", "CREDIT_CARD"),  # one group per line
    ("\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11", "CREDIT_CARD"),
    ("4111\u200b1111\u200b1111\u200b1111", "CREDIT_CARD"),  # zero-width spaces
    ("AKIAZ7Q3\u200bXK2LMN4PQR8T", "SECRET"),  # an AWS key id with a zero-width space
]
REPLACED = [
    ("DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000", "IBAN_CODE", IBAN),
    ("jane.doe\uff20acme-supplies.com", "EMAIL_ADDRESS", "acme-supplies.com"),  # full-width at sign
    ("jane.d\u200boe@acme-supplies.com", "EMAIL_ADDRESS", "acme-supplies.com"),  # zero-width inside
]


def route_body(route: str, text: str) -> tuple[str, dict]:
    if route == "native":
        return "/api/v1/generations", {"prompt": text, "stream": False, "max_tokens": 8}
    if route == "chat":
        return "/v1/chat/completions", {"model": "scripted", "messages": [{"role": "user", "content": text}]}
    return "/v1/completions", {"model": "scripted", "prompt": text}


@pytest.mark.parametrize("route", ["native", "chat", "completions"])
@pytest.mark.parametrize("spelling, type_", REFUSED)
async def test_refused_spellings_are_refused_on_every_route(scripted, auth_headers, route, spelling, type_):
    path, body = route_body(route, f"Supplier note: pay with {spelling} today. Write a reminder.")
    result = await call(path, body=body, headers=auth_headers)
    assert result.status == 422, result.body
    assert result.json()["error"]["types"] == [type_]
    assert scripted.prompts == [] and await Generation.objects.acount() == 0


@pytest.mark.parametrize("route", ["native", "chat", "completions"])
@pytest.mark.parametrize("spelling, type_, core", REPLACED)
async def test_replaced_spellings_never_reach_the_model_on_any_route(scripted, auth_headers, route, spelling, type_, core):
    path, body = route_body(route, f"Supplier note: send it to {spelling} today. Write a reminder.")
    result = await call(path, body=body, headers=auth_headers)
    assert result.status == 200, result.body
    seen = scripted.prompts[-1]
    assert spelling not in seen and core not in seen.replace("\u00a0", "").replace(" ", "")
    row = await Generation.objects.aget()
    assert row.redaction_counts == {type_: 1}


async def test_the_request_locale_narrows_languages_and_its_errors_name_the_part(scripted, auth_headers):
    text = "Lieferant: Passwort lautet Hx7!kQ2#vB9zLp. Bitte Erinnerung schreiben."
    german = await call("/api/v1/generations", body={"prompt": text, "stream": False}, headers=auth_headers)
    assert german.status == 422 and german.json()["error"]["types"] == ["SECRET"]
    body = {"prompt": text, "stream": False, "redaction": {"languages": ["fr"]}}
    french_only = await call("/api/v1/generations", body=body, headers=auth_headers)
    assert french_only.status == 200  # the German password cue is not a French one
    for bad, param in (({"languages": ["xx"]}, "redaction.languages"), ({"region": "ZZ"}, "redaction.region")):
        refused = await call("/api/v1/generations", body={"prompt": text, "redaction": bad}, headers=auth_headers)
        assert refused.status == 400 and refused.json()["error"]["param"] == param


async def test_an_api_keys_locale_applies_to_all_its_routes(scripted, db):
    from asgiref.sync import sync_to_async

    _, raw = await sync_to_async(api_key_create)(name="fr-only", redaction_languages="fr")
    headers = {"Authorization": f"Bearer {raw}"}
    text = "Lieferant: Passwort lautet Hx7!kQ2#vB9zLp. Bitte Erinnerung schreiben."
    for route in ("native", "chat", "completions"):
        path, body = route_body(route, text)
        assert (await call(path, body=body, headers=headers)).status == 200, route
    path, body = route_body("native", text)
    body["redaction"] = {"languages": ["de"]}  # the request's own locale wins over its key's
    assert (await call(path, body=body, headers=headers)).status == 422
