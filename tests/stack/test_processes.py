"""Two processes behind nginx: requests spread over both, and what a client or an admin does
to a run (cancel endpoint, admin cancel, key revocation) reaches it on the other process."""
from __future__ import annotations

import subprocess
import sys
from contextlib import closing

import httpx
import pytest

from deploy.localstack.sluice import ROOT
from tests.stack.helpers import SHORT, Background, admin_action, admin_session, body, owner_of, row

pytestmark = [pytest.mark.stack]
API = "/api/v1/generations"


def test_requests_spread_over_both_processes(full_stack):
    stack = full_stack
    with httpx.Client(timeout=60) as client:
        answers = [client.post(stack.url + API, json={**SHORT, "stream": False}, headers=stack.headers())
                   for _ in range(6)]
    assert [answer.status_code for answer in answers] == [200] * 6
    owners = [row(stack, answer.json()["id"])["owner"] for answer in answers]
    for process in stack.processes:
        assert any(process.owns(owner) for owner in owners), (process.pid, owners)


def test_cancel_endpoint_reaches_a_run_on_the_other_process(full_stack):
    stack = full_stack
    running = Background(stack.url + API, body(300, temperature=0), stack.headers())
    request_id = running.wait_delta()
    _, other = owner_of(stack, request_id)
    answer = httpx.post(f"{other.url}{API}/{request_id}/cancel", headers=stack.headers(), timeout=10)
    assert answer.status_code == 202, answer.text
    assert running.result().terminals == [("cancelled", {"reason": "client_cancel"})]
    assert row(stack, request_id)["cancel_reason"] == "client_cancel"


def test_cancel_endpoint_through_nginx_answers_202_wherever_it_lands(full_stack):
    stack = full_stack
    for _ in range(2):  # nginx alternates between idle processes: both sides are likely hit
        running = Background(stack.url + API, body(300, temperature=0), stack.headers())
        request_id = running.wait_delta()
        answer = httpx.post(f"{stack.url}{API}/{request_id}/cancel", headers=stack.headers(), timeout=10)
        assert answer.status_code == 202, answer.text
        assert running.result().terminals == [("cancelled", {"reason": "client_cancel"})]


def test_admin_cancel_reaches_a_run_on_the_other_process(full_stack):
    stack = full_stack
    running = Background(stack.url + API, body(300, temperature=0), stack.headers())
    request_id = running.wait_delta()
    _, other = owner_of(stack, request_id)
    with closing(admin_session(stack, other)) as admin:
        admin_action(admin, "/admin/generation/generation/", "cancel_selected", row(stack, request_id, finished=False)["id"])
    assert running.result().terminals == [("cancelled", {"reason": "admin_cancel"})]
    assert row(stack, request_id)["cancel_reason"] == "admin_cancel"


def test_key_revocation_reaches_a_run_on_the_other_process(full_stack):
    stack = full_stack
    made = subprocess.run([sys.executable, "manage.py", "create_api_key", "--name", "revoked-in-test"],
                          cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    running = Background(stack.url + API, body(300, temperature=0), headers)
    request_id = running.wait_delta()
    serving, other = owner_of(stack, request_id)
    key_id = stack.sql("SELECT id FROM generation_apikey WHERE prefix = %s", (key.split("_")[1],))[0]["id"]
    with closing(admin_session(stack, other)) as admin:
        admin_action(admin, "/admin/generation/apikey/", "revoke_selected", key_id)
    assert running.result().terminals == [("cancelled", {"reason": "admin_cancel"})]
    # Refused at once on both processes, not after the verification cache expires.
    for process in (serving, other):
        answer = httpx.post(process.url + API, json={**SHORT, "stream": False}, headers=headers, timeout=10)
        assert answer.status_code == 401, (process.index, answer.status_code)
