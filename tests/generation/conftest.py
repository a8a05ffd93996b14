import logging

import pytest


@pytest.fixture
def api_key(db):
    """A fresh API key: (row, raw key)."""
    from generation.records.api_keys import api_key_create

    return api_key_create(name="tests")


@pytest.fixture
def auth_headers(api_key):
    return {"Authorization": f"Bearer {api_key[1]}"}


@pytest.fixture
def supplier_term(db):
    """An admin-managed sensitive term, "Veltrano Metals" (SUPPLIER), live in the matcher."""
    from redaction.models import SensitiveTerm
    from redaction.fields import term_matchers

    term = SensitiveTerm.objects.create(term="Veltrano Metals", type="SUPPLIER")
    term_matchers.invalidate()
    yield term
    term_matchers.invalidate()


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def generation_log():
    """Records of the sluice.generation logger (it does not propagate to the root)."""
    handler, logger = ListHandler(), logging.getLogger("sluice.generation")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def fresh_usage_counters():
    """Per-caller limit counters start empty: ids are reused between tests."""
    from generation.records import usage

    usage.reset()
    yield
    usage.reset()
