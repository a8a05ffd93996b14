"""The sensitive-term matcher is cached: no query per request, refreshed on change."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from redaction.models import SensitiveTerm
from redaction.fields import TermMatcherCache, field_policy, redact_fields

pytestmark = pytest.mark.django_db


def test_matcher_is_built_once_and_rebuilt_when_terms_change(settings):
    settings.SLUICE_TERMS_REFRESH_SECONDS = 3600
    cache = TermMatcherCache()
    SensitiveTerm.objects.create(term="Project Falcon", type="INTERNAL_CODENAME")
    matcher = cache.current()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(50):
            assert cache.current() is matcher
    assert len(queries) == 0
    SensitiveTerm.objects.create(term="Halvorsen", type="CUSTOMER")
    cache.invalidate()  # what the post_save signal does for the process-wide cache
    redacted = redact_fields({"internal_notes": "Falcon? No: project falcon for HALVORSEN."}, terms=cache.current())
    assert redacted.texts["internal_notes"] == "Falcon? No: [INTERNAL_CODENAME_1] for [CUSTOMER_1]."


def test_saving_a_term_invalidates_the_process_cache():
    from redaction.fields import term_matchers

    term_matchers.current()
    assert not term_matchers.needs_check()
    SensitiveTerm.objects.create(term="Globex", type="SUPPLIER")
    assert term_matchers.needs_check()


def test_an_inactive_term_is_not_matched(settings):
    cache = TermMatcherCache()
    SensitiveTerm.objects.create(term="Globex", type="SUPPLIER", active=False)
    assert cache.current() is None


def test_field_policies_follow_the_documented_defaults(settings):
    settings.SLUICE_REDACTION_POLICIES = {}
    assert field_policy("prompt").action("CREDIT_CARD") == "reject"
    assert field_policy("internal_notes").action("CREDIT_CARD") == "redact"
    assert field_policy("product_details").action("PRICE") == "allow"
    assert field_policy("internal_notes").action("PRICE") == "redact"
    assert field_policy("prompt").action("EMAIL_ADDRESS") == "redact"
    assert field_policy("unknown_field").action("PHONE_NUMBER") == "redact"
