import pytest


@pytest.fixture
def api_key(db):
    """A fresh API key: (row, raw key)."""
    from generation.records.api_keys import api_key_create

    return api_key_create(name="ws-tests")
