"""Every pasted spelling of issue 17 through redact_fields(), the entry the native API and
both /v1 routes call: rejected types are still found (and the request refused), redacted
ones never reach the model text."""
import pytest

from redaction.fields import redact_fields
from tests.redaction.test_redaction_spellings import SPELLINGS


@pytest.mark.parametrize("label,type_,value", SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_prompt_field_catches_every_spelling(settings, label, type_, value):
    settings.SLUICE_REDACTION_POLICIES = {}
    result = redact_fields({"prompt": f"Please check {value} today."}, terms=None)
    assert value not in result.texts["prompt"]
    assert result.counts.get(type_) == 1
    if type_ in ("CREDIT_CARD", "SECRET"):  # the prompt policy rejects these
        assert result.rejected == {"prompt": (type_,)} and result.validation_result == "rejected"
    else:
        assert result.validation_result == "redacted"
        assert result.mapping[result.texts["prompt"][len("Please check "):-len(" today.")]] == value
