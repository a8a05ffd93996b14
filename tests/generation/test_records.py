"""The Generation row and the log line hold shape only: exact fields, no text."""
import json

import pytest

from generation.models import Generation
from generation.records.generations import LOG_FIELDS
from tests.support.asgi import call

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/generations"
CANARY = "QX-CANARY-9921 rebate 14% for Halvorsen"


def log_lines(handler) -> list[dict]:
    return [json.loads(record.getMessage()) for record in handler.records]


async def test_one_log_line_per_generation_with_exactly_the_documented_fields(scripted, auth_headers, generation_log):
    scripted.script = [f" {CANARY}", " and", " more"]
    result = await call(URL, body={"prompt": f"Note: {CANARY}. Write copy."}, headers=auth_headers)
    assert result.events()[-1][1] == "done"
    lines = log_lines(generation_log)
    assert len(lines) == 1
    line = lines[0]
    assert tuple(line) == LOG_FIELDS
    assert line["status"] == "completed" and line["channel"] == "api" and line["output_tokens"] == 3
    assert line["validation_result"] == "ok" and line["model_version"] == "scripted-1"
    assert CANARY not in "\n".join(record.getMessage() for record in generation_log.records)


async def test_rows_never_hold_prompt_or_output_text(scripted, auth_headers, generation_log):
    scripted.script = [f"{CANARY} "] * 5
    await call(URL, body={"prompt": f"{CANARY} copy", "stream": False}, headers=auth_headers)
    scripted.fail_after = 1
    await call(URL, body={"prompt": f"{CANARY} copy"}, headers=auth_headers)
    await call(URL, body={"prompt": f"{CANARY} copy", "temperature": 7}, headers=auth_headers)
    rows = [row async for row in Generation.objects.values()]
    assert {row["status"] for row in rows} == {"completed", "failed"}
    assert CANARY not in repr(rows)
    assert "Halvorsen" not in "\n".join(record.getMessage() for record in generation_log.records)


async def test_row_timeline_and_counts(scripted, auth_headers):
    scripted.script = ["a", "b", "c"]
    result = await call(URL, body={"prompt": "one two three four", "max_tokens": 2}, headers=auth_headers)
    row = await Generation.objects.aget(request_id=result.events()[0][2]["request_id"])
    assert (row.prompt_tokens, row.prompt_chars, row.max_tokens, row.output_tokens) == (4, 18, 2, 2)
    assert (row.finish_reason, row.cancel_reason, row.timeout_source, row.error_code) == ("length", "", "", "")
    assert row.created_at <= row.started_at <= row.first_token_at <= row.finished_at
    assert row.queue_ms == 0 and row.duration_ms >= row.ttft_ms >= 0
    assert row.owner and row.model_name == "scripted"
