"""No detected value, prompt or output text in exception messages or reprs."""
import pytest

from redaction import (
    OutputGuard,
    OutputPipeline,
    PlaceholderMap,
    Policy,
    RedactionRejected,
    Restorer,
    TermMatcher,
    detect,
    redact,
)

SECRETS = ["jane.doe@example.com", "4111 1111 1111 1111", "hunter2x", "Globex", "DE89 3704 0044 0532 0130 00", "$12.50"]
TEXT = ("Globex: jane.doe@example.com pays $12.50 by 4111 1111 1111 1111 to DE89 3704 0044 0532 0130 00 "
        "password=hunter2x")


def assert_clean(s):
    for value in SECRETS + ["Globex:", "pays"]:
        assert value not in s, value


def test_reprs_are_clean():
    terms = TermMatcher([("Globex", "SUPPLIER")])
    red = redact(TEXT, {"SECRET": "reject"}, terms=terms)
    rest = Restorer(red.mapping)
    segs = rest.feed_segments(red.text)
    pipe = OutputPipeline(red.mapping)
    out = pipe.feed(red.text + " 5555 5555 5555 4444 ") + pipe.flush()
    for obj in [red, red.mapping, terms, *detect(TEXT, terms=terms), *segs, *out, Policy(), dict(red.counts),
                red.rejected, pipe.masked_counts, OutputGuard().masked_counts]:
        assert_clean(repr(obj))
        assert_clean(str(obj))


def test_exception_messages_are_clean():
    with pytest.raises(RedactionRejected) as exc:
        redact(TEXT, {"CREDIT_CARD": "reject"}).raise_if_rejected()
    assert_clean(str(exc.value))
    assert str(exc.value).endswith("CREDIT_CARD")
    for bad in ({"EMAIL_ADDRESS": "hunter2x"}, {"*": "jane.doe@example.com"}):
        with pytest.raises(ValueError) as err:
            redact(TEXT, bad)
        assert_clean(str(err.value))
    with pytest.raises(ValueError) as err:
        TermMatcher([("Globex", "jane.doe@example.com")])
    assert_clean(str(err.value))
    with pytest.raises(KeyError) as err:
        PlaceholderMap()["[EMAIL_1]"]
    assert_clean(str(err.value))
