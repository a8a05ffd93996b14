"""Restorer, OutputGuard and OutputPipeline, including chunking properties."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redaction import OutputGuard, OutputPipeline, PlaceholderMap, Restorer, Segment, redact

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SENSITIVE = [
    "jane.doe@example.com", "+44 20 7946 0958", "(201) 555-0123", "4111 1111 1111 1111", "5555-5555-5555-4444",
    "DE89 3704 0044 0532 0130 00", "10.0.0.12", "2001:db8::8a2e:370:7334", "AKIAIOSFODNN7EXAMPLE",
    "ghp_R2d2C3poExampleToken0123456789abcdEF", "$12.50", "€5 to €8", "net 60", "12% rebate",
]
FILLER = st.sampled_from([
    " ", ", ", ". ", "\n", " and ", " call ", " price ", " [", "] ", " password: ", " Bearer ", " 2024 ",
    " v1.2.3 ", " x", "4111", " 1111", "[EMA", "IL_1]", " order #100234567 ", "é", "[PHONE_", "_1] ",
])
TEXTS = st.lists(st.one_of(FILLER, st.sampled_from(SENSITIVE), st.text(max_size=6)), max_size=14).map("".join)


def chunked(text, cuts):
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in points + [len(text)]:
        pieces.append(text[prev:p])
        prev = p
    return pieces


def sample_mapping():
    m = PlaceholderMap()
    redact("jane.doe@example.com +44 20 7946 0958 4111 1111 1111 1111 Globex", {}, mapping=m)
    return m


# ------------------------------------------------------------------ Restorer

def test_restorer_basic_and_segments():
    m = sample_mapping()
    r = Restorer(m)
    out = r.feed_segments("Hi [EMA") + r.feed_segments("IL_1], call [PHONE_1] or [EMAIL_9].") + r.flush_segments()
    assert "".join(s.text for s in out) == "Hi jane.doe@example.com, call +44 20 7946 0958 or [EMAIL_9]."
    restored = [(s.text, s.type) for s in out if s.restored]
    assert restored == [("jane.doe@example.com", "EMAIL_ADDRESS"), ("+44 20 7946 0958", "PHONE_NUMBER")]
    assert "jane" not in repr(out[1])


def test_restorer_releases_as_soon_as_impossible():
    r = Restorer(sample_mapping())
    assert r.feed("a [") == "a "
    assert r.feed("X") == "[X"  # "[X" is no placeholder prefix
    assert r.feed("[CARD_") == "" and r.feed("2") == "[CARD_2"
    assert r.flush() == ""


def test_restorer_plain_mapping_and_empty():
    r = Restorer({"[X_1]": "value"})
    assert r.feed("a[X_1]b") + r.flush() == "avalueb"
    assert Restorer({}).feed("[EMAIL_1]") == "[EMAIL_1]"


@SETTINGS
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_restorer_round_trip_any_chunking(text, cuts):
    red = redact(text, {})
    whole = Restorer(red.mapping)
    expected = whole.feed(red.text) + whole.flush()
    r = Restorer(red.mapping)
    out = []
    for piece in chunked(red.text, cuts):
        out.append(r.feed(piece))
        # holdback bound: never more than the longest placeholder
        assert r.pending <= max((len(p) for p in red.mapping), default=0)
    assert "".join(out) + r.flush() == expected == text.replace("jane.doe@example.com", "jane.doe@example.com")


@SETTINGS
@given(text=TEXTS)
def test_redaction_never_leaks_detected_values(text):
    from redaction import detect
    spans = detect(text)
    red = redact(text, {})
    residual = list(text)
    for s in spans:
        residual[s.start:s.end] = ["\x00"] * (s.end - s.start)
    residual = "".join(residual)
    for s in spans:
        value = text[s.start:s.end]
        # a detected value may only survive where it also occurs undetected
        assert red.text.count(value) <= residual.count(value)
    assert sum(red.counts.values()) == len(spans)


# ------------------------------------------------------------------ OutputGuard

def test_guard_masks_cards_and_secrets():
    g = OutputGuard()
    out = g.feed("Use card 4111 1111 ") + g.feed("1111 1111 and password: hunt") + g.feed("er2x now.") + g.flush()
    assert out == "Use card [REDACTED CARD] and password: [REDACTED SECRET] now."
    assert g.masked_counts == {"CREDIT_CARD": 1, "SECRET": 1}


def test_guard_prose_flows_with_small_holdback():
    g = OutputGuard()
    text = "The quick brown fox jumps over the lazy dog and keeps running through the field"
    emitted = ""
    for ch in text:
        emitted += g.feed(ch)
        assert g.pending <= 12  # at most the current word plus a separator
    assert emitted + g.flush() == text


def test_guard_holdback_is_bounded():
    g = OutputGuard(max_holdback=100)
    for _ in range(50):
        g.feed("1 ")
        assert g.pending <= 100
    assert g.flush() is not None


@SETTINGS
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_guard_output_independent_of_chunking(text, cuts):
    whole = OutputGuard()
    expected = whole.feed(text) + whole.flush()
    g = OutputGuard()
    got = "".join(g.feed(p) for p in chunked(text, cuts)) + g.flush()
    assert got == expected
    assert g.masked_counts == whole.masked_counts


@SETTINGS
@given(text=st.lists(st.sampled_from(["1", "2", " ", "-", "a", "password", "=", "x"]), max_size=400).map("".join),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_guard_forced_cuts_independent_of_chunking(text, cuts):
    whole = OutputGuard(max_holdback=64)
    expected = whole.feed(text) + whole.flush()
    g = OutputGuard(max_holdback=64)
    assert "".join(g.feed(p) for p in chunked(text, cuts)) + g.flush() == expected


# ------------------------------------------------------------------ Pipeline

def test_pipeline_restored_values_bypass_guard():
    m = sample_mapping()
    p = OutputPipeline(m)
    segs = p.feed("Charge [CARD_1] not 5555 5555 5555 4444 ok") + p.flush()
    text = "".join(s.text for s in segs)
    assert text == "Charge 4111 1111 1111 1111 not [REDACTED CARD] ok"
    assert [s.type for s in segs if s.restored] == ["CREDIT_CARD"]
    assert [s.type for s in segs if s.masked] == ["CREDIT_CARD"]
    assert p.masked_counts == {"CREDIT_CARD": 1}
    assert all(isinstance(s, Segment) for s in segs)


@SETTINGS
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_pipeline_independent_of_chunking(text, cuts):
    red = redact(text, {"PRICE": "allow"})
    model_output = red.text + " extra 4111 1111 1111 1111 " + red.text
    whole = OutputPipeline(red.mapping)
    expected = "".join(s.text for s in whole.feed(model_output) + whole.flush())
    p = OutputPipeline(red.mapping)
    segs = [s for piece in chunked(model_output, cuts) for s in p.feed(piece)] + p.flush()
    assert "".join(s.text for s in segs) == expected


def test_pipeline_flags():
    m = sample_mapping()
    assert "".join(s.text for s in OutputPipeline(m, guard=False).feed("[CARD_1] 5555 5555 5555 4444 ")) \
        .startswith("4111 1111 1111 1111 5555")
    p = OutputPipeline(m, restore=False)
    assert p.feed_text("[CARD_1] ") + p.flush_text() == "[CARD_1] "
