"""Redaction on /v1: every message redacted with the API prompt's policy, placeholders
numbered across the request, values restored and secrets masked in the stream."""
import pytest

from generation.models import Generation
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "/v1/chat/completions"


def conversation(*contents):
    roles = ["system"] + ["user", "assistant"] * len(contents)
    return {"model": "scripted", "messages": [{"role": role, "content": c} for role, c in zip(roles, contents)]}


def streamed_text(result):
    return "".join(
        p["choices"][0]["delta"].get("content", "") for p in result.data() if isinstance(p, dict) and p.get("choices")
    )


async def test_placeholders_are_numbered_across_messages_and_restored_in_the_stream(
    scripted, auth_headers, supplier_term, generation_log
):
    scripted.script = ["Mail ", "[EMA", "IL_2] and [EMAIL_1] about ", "[SUPP", "LIER_1", "]."]
    body = conversation(
        "You write for ops@example.com.",
        "Email jane.doe@example.com about the Veltrano Metals order.",
        "Noted.",
        "Also copy ops@example.com.",
    )
    result = await call(CHAT, body={**body, "stream": True}, headers=auth_headers)
    seen = scripted.prompts[-1]
    assert "example.com" not in seen and "veltrano" not in seen.lower()
    assert seen.count("[EMAIL_1]") == 2 and "[EMAIL_2]" in seen and "[SUPPLIER_1]" in seen
    assert streamed_text(result) == "Mail jane.doe@example.com and ops@example.com about Veltrano Metals."
    assert result.data()[-1] == "[DONE]"
    row = await Generation.objects.aget(request_id=result.headers["x-request-id"])
    assert row.validation_result == "redacted" and row.redaction_counts == {"EMAIL_ADDRESS": 3, "SUPPLIER": 1}
    assert "jane" not in repr(row.__dict__) and "eltrano" not in repr(row.__dict__)
    assert all("jane" not in record.getMessage() for record in generation_log.records)


async def test_restoration_and_the_output_guard_apply_to_the_whole_response(scripted, auth_headers):
    scripted.script = ["Write to [EMAIL_1] with key ", "sk_live_", "4eC39HqLyjWDarjtT1zdp7dc", " now."]
    result = await call(CHAT, body=conversation("Be brief.", "Contact jane.doe@example.com"), headers=auth_headers)
    text = result.json()["choices"][0]["message"]["content"]
    assert text.startswith("Write to jane.doe@example.com with key ") and text.endswith(" now.")
    assert "4eC39HqLyjWDarjtT1zdp7dc" not in text
    row = await Generation.objects.aget(request_id=result.headers["x-request-id"])
    assert row.redaction_counts == {"EMAIL_ADDRESS": 1, "output:SECRET": 1}


async def test_a_rejected_type_is_a_422_naming_the_message(scripted, auth_headers):
    card = "4111 1111 1111 1111"
    body = conversation("Be brief.", f"Charge card {card} for the samples")
    result = await call(CHAT, body=body, headers=auth_headers)
    assert result.status == 422
    error = result.json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("sensitive_data_rejected", "invalid_request_error",
                                                              "messages[1].content")
    assert error["types"] == ["CREDIT_CARD"] and "messages[1].content" in error["message"]
    assert "4111" not in result.body.decode()
    assert await Generation.objects.acount() == 0 and scripted.prompts == []


async def test_content_parts_are_redacted_as_one_message(scripted, auth_headers):
    parts = [{"type": "text", "text": "Reach"}, {"type": "text", "text": "jane.doe@example.com"}]
    body = {"model": "scripted", "messages": [{"role": "user", "content": parts}]}
    assert (await call(CHAT, body=body, headers=auth_headers)).status == 200
    assert scripted.prompts[-1] == "user: Reach\n[EMAIL_1]\nassistant:"


async def test_policy_overrides_for_the_prompt_field_apply_to_messages(scripted, auth_headers, settings):
    settings.SLUICE_REDACTION_POLICIES = {"prompt": {"EMAIL_ADDRESS": "reject"}}
    result = await call(CHAT, body=conversation("Mail ops@example.com"), headers=auth_headers)
    assert result.status == 422 and result.json()["error"]["param"] == "messages[0].content"
