"""Prometheus metrics: observed at finish, fixed-vocabulary labels, protected endpoint."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from generation.models import Generation
from generation.records import metrics
from tests.support.asgi import call

URL = "/api/v1/generations"
ROOT = Path(__file__).resolve().parents[2]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def finished_row(**fields) -> Generation:
    defaults = {
        "channel": "api",
        "model_name": "m",
        "model_version": "v",
        "status": "completed",
        "finished_at": timezone.now(),
        "started_at": timezone.now(),
        "queue_ms": 250,
        "ttft_ms": 120,
        "duration_ms": 2120,
        "output_tokens": 41,
        "tokens_per_second": 20.0,
    }
    return Generation(**{**defaults, **fields})


def test_observe_generation_records_every_series():
    before = {
        "completed": sample("sluice_generations_total", status="completed", reason="none"),
        "tokens": sample("sluice_tokens_generated_total"),
        "ttft": sample("sluice_time_to_first_token_seconds_count"),
        "ttft_le": sample("sluice_time_to_first_token_seconds_bucket", le="0.25"),
        "itl_sum": sample("sluice_inter_token_latency_seconds_sum"),
        "queue_sum": sample("sluice_queue_wait_seconds_sum"),
        "duration_sum": sample("sluice_stream_duration_seconds_sum"),
        "email": sample("sluice_redactions_total", type="EMAIL_ADDRESS"),
    }
    metrics.observe_generation(finished_row(redaction_counts={"EMAIL_ADDRESS": 2}))
    assert sample("sluice_generations_total", status="completed", reason="none") == before["completed"] + 1
    assert sample("sluice_tokens_generated_total") == before["tokens"] + 41
    assert sample("sluice_time_to_first_token_seconds_count") == before["ttft"] + 1
    assert sample("sluice_time_to_first_token_seconds_bucket", le="0.25") == before["ttft_le"] + 1
    assert sample("sluice_inter_token_latency_seconds_sum") == pytest.approx(before["itl_sum"] + 0.05)
    assert sample("sluice_queue_wait_seconds_sum") == pytest.approx(before["queue_sum"] + 0.25)
    assert sample("sluice_stream_duration_seconds_sum") == pytest.approx(before["duration_sum"] + 2.12)
    assert sample("sluice_redactions_total", type="EMAIL_ADDRESS") == before["email"] + 2


def test_cancellations_and_odd_labels():
    before_cancel = sample("sluice_generations_total", status="cancelled", reason="client_disconnect")
    before_after = sample("sluice_tokens_after_cancel_total")
    before_other = sample("sluice_redactions_total", type="other")
    before_queue = sample("sluice_queue_wait_seconds_count")
    row = finished_row(
        status="cancelled",
        cancel_reason="client_disconnect",
        tokens_after_cancel=1,
        tokens_per_second=None,
        started_at=None,
        queue_ms=None,
        redaction_counts={"not a type: secret@example.com": 1},
    )
    metrics.observe_generation(row)
    assert sample("sluice_generations_total", status="cancelled", reason="client_disconnect") == before_cancel + 1
    assert sample("sluice_tokens_after_cancel_total") == before_after + 1
    assert sample("sluice_redactions_total", type="other") == before_other + 1  # never the raw key
    assert sample("sluice_queue_wait_seconds_count") == before_queue + 1  # waited until it gave up


def test_unfinished_rows_and_bad_data_are_ignored():
    before = sample("sluice_generations_total", status="running", reason="none")
    metrics.observe_generation(finished_row(status="running"))
    metrics.observe_generation(finished_row(output_tokens=None))  # must not raise
    assert sample("sluice_generations_total", status="running", reason="none") == before


@pytest.mark.django_db
def test_reconciled_rows_are_counted():
    from generation.ops.ownership import generations_reconcile

    Generation.objects.create(channel="api", model_name="m", model_version="v", owner="gone", status="running")
    before = sample("sluice_generations_total", status="interrupted", reason="process_died")
    assert generations_reconcile() == 1
    assert sample("sluice_generations_total", status="interrupted", reason="process_died") == before + 1


@pytest.mark.django_db(transaction=True)
async def test_streams_are_observed_at_finish(scripted, auth_headers):
    before_done = sample("sluice_generations_total", status="completed", reason="none")
    before_failed = sample("sluice_generations_total", status="failed", reason="backend_error")
    result = await call(URL, body={"prompt": "a kettle"}, headers=auth_headers)
    assert result.events()[-1][1] == "done"
    scripted.fail_after = 1
    await call(URL, body={"prompt": "a kettle"}, headers=auth_headers)
    assert sample("sluice_generations_total", status="completed", reason="none") == before_done + 1
    assert sample("sluice_generations_total", status="failed", reason="backend_error") == before_failed + 1


@pytest.mark.django_db(transaction=True)
async def test_endpoint_exposes_live_gauges_to_localhost(scripted):
    result = await call("/metrics", method="GET")
    assert result.status == 200 and result.headers["content-type"].startswith("text/plain")
    text = result.body.decode()
    assert "sluice_active_streams 0.0" in text and "sluice_queue_depth 0.0" in text
    assert "sluice_time_to_first_token_seconds_bucket" in text


def test_endpoint_refuses_remote_clients_without_a_token(client, settings):
    settings.SLUICE_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.mark.parametrize(
    "header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_HOST"]
)
def test_a_request_through_a_proxy_on_this_host_needs_the_token(client, settings, header):
    settings.SLUICE_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"}).status_code == 403


def test_a_server_bound_beyond_loopback_needs_the_token_unless_debug(client, settings):
    settings.SLUICE_METRICS_TOKEN = ""
    settings.SLUICE_BIND_HOST = "0.0.0.0"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    settings.DEBUG = True
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    settings.DEBUG = False
    settings.SLUICE_BIND_HOST = "::1"
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_endpoint_with_a_token(client, settings):
    settings.SLUICE_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401  # localhost needs it too once set
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="s3cret-token").status_code == 401  # the scheme is required
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-token").status_code == 401
    ok = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200 and b"sluice_generations_total" in ok.content


OBSERVE_IN_CHILD = """
import django; django.setup()
from django.utils import timezone
from generation.ops.prometheus import _scrape_registry
from generation.records import metrics
from generation.models import Generation
row = Generation(channel="api", model_name="m", model_version="v", status="completed", finished_at=timezone.now(),
                 ttft_ms=100, duration_ms=1000, output_tokens=5, redaction_counts={"PHONE_NUMBER": 1})
metrics.observe_generation(row)
if "render" in __import__("sys").argv:
    from prometheus_client import generate_latest
    print(generate_latest(_scrape_registry()).decode())
"""


def test_multiprocess_mode_merges_processes(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "project.test_settings"}
    run = [sys.executable, "-c", OBSERVE_IN_CHILD]
    subprocess.run(run, env=env, cwd=ROOT, check=True, timeout=60)
    text = subprocess.run([*run, "render"], env=env, cwd=ROOT, check=True, timeout=60, capture_output=True).stdout
    text = text.decode()
    assert 'sluice_generations_total{reason="none",status="completed"} 2.0' in text
    assert 'sluice_redactions_total{type="PHONE_NUMBER"} 2.0' in text
    assert "sluice_time_to_first_token_seconds_count 2.0" in text
    assert "sluice_active_streams 0.0" in text
