"""The database-heavy suites again on PostgreSQL (127.0.0.1:5432): the dashboard's tallies,
its JSON expansion (jsonb_each_text) and the admin all have PostgreSQL-specific SQL paths."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.services]
ROOT = Path(__file__).resolve().parents[2]
SUITES = [
    "tests/generation/test_rollups.py",
    "tests/generation/test_admin.py",
    "tests/generation/test_prune.py",
    "tests/generation/test_ownership.py",
    "tests/generation/test_records.py",
    "tests/generation/test_refusal_tally.py",
]


def test_database_suites_pass_on_postgresql():
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/sluice_pg_suite"}
    # pytest-django creates and drops its own test_sluice_pg_suite database.
    command = [sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider", "--create-db"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1]
