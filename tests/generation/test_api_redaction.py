"""Redaction on the native API: placeholders to the model, values back to the caller."""
import json

import pytest

from generation.models import Generation
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"


def deltas(result):
    return [data for _, name, data in result.events() if name == "delta"]


async def test_model_sees_placeholders_and_the_caller_gets_the_values_back(
    scripted, auth_headers, supplier_term, generation_log
):
    scripted.script = ["Reach ", "[EMA", "IL_1] at ", "[SUPP", "LIER_1", "] today."]
    prompt = "Email jane.doe@example.com about the veltrano metals order. Write a reminder."
    result = await call(URL, body={"prompt": prompt}, headers=auth_headers)
    seen = scripted.prompts[-1]
    assert "jane.doe@example.com" not in seen and "veltrano" not in seen.lower()
    assert "[EMAIL_1]" in seen and "[SUPPLIER_1]" in seen
    text = "".join(delta["text"] for delta in deltas(result))
    assert text == "Reach jane.doe@example.com at veltrano metals today."
    marks = [mark for delta in deltas(result) for mark in delta.get("marks", [])]
    assert [(kind, type_) for _, _, kind, type_ in marks] == [("restored", "EMAIL_ADDRESS"), ("restored", "SUPPLIER")]
    row = await Generation.objects.aget(request_id=result.events()[0][2]["request_id"])
    assert row.validation_result == "redacted"
    line = json.loads(generation_log.records[-1].getMessage())
    assert line["redaction_counts"] == {"EMAIL_ADDRESS": 1, "SUPPLIER": 1} and line["validation_result"] == "redacted"
    assert "jane" not in generation_log.records[-1].getMessage()
    assert row.redaction_counts == {"EMAIL_ADDRESS": 1, "SUPPLIER": 1}
    assert "jane" not in repr(row.__dict__) and "eltrano" not in repr(row.__dict__)


async def test_restoration_can_be_switched_off(scripted, auth_headers, settings):
    settings.SLUICE_REDACTION_RESTORE = False
    scripted.script = ["Write to [EMAIL_1]."]
    result = await call(URL, body={"prompt": "Contact jane.doe@example.com", "stream": False}, headers=auth_headers)
    assert result.json()["text"] == "Write to [EMAIL_1]."


async def test_a_rejected_type_is_a_422_naming_field_and_type_only(scripted, auth_headers):
    card = "4111 1111 1111 1111"
    result = await call(URL, body={"prompt": f"Charge card {card} for the samples"}, headers=auth_headers)
    assert result.status == 422
    error = result.json()["error"]
    assert error["code"] == "sensitive_data_rejected" and error["param"] == "prompt"
    assert error["types"] == ["CREDIT_CARD"]
    assert "4111" not in result.body.decode()
    assert await Generation.objects.acount() == 0 and scripted.prompts == []  # the model never saw it


async def test_output_guard_masks_a_secret_the_model_writes(scripted, auth_headers):
    scripted.script = ["Use key ", "sk_live_", "4eC39HqLyjWDarjtT1zdp7dc", " now."]
    result = await call(URL, body={"prompt": "Write an onboarding note"}, headers=auth_headers)
    text = "".join(delta["text"] for delta in deltas(result))
    assert "4eC39HqLyjWDarjtT1zdp7dc" not in text and text.startswith("Use key ") and text.endswith(" now.")
    row = await Generation.objects.aget(request_id=result.events()[0][2]["request_id"])
    assert row.redaction_counts == {"output:SECRET": 1}


async def test_policy_overrides_come_from_settings(scripted, auth_headers, settings):
    settings.SLUICE_REDACTION_POLICIES = {"prompt": {"EMAIL_ADDRESS": "reject"}}
    result = await call(URL, body={"prompt": "Mail ops@example.com"}, headers=auth_headers)
    assert result.status == 422 and result.json()["error"]["types"] == ["EMAIL_ADDRESS"]
