"""redact(): policy actions, placeholders, shared mapping, literal escaping."""
import pytest

from redaction import PlaceholderMap, Policy, Redacted, RedactionRejected, Restorer, TermMatcher, redact

TEXT = "Mail jane@example.com, JANE@example.com or bob@example.org; card 4111 1111 1111 1111; price $12.50."


def restore(r):
    rest = Restorer(r.mapping)
    return rest.feed(r.text) + rest.flush()


def test_default_redacts_everything_and_numbers_per_label():
    r = redact(TEXT, {})
    assert r.text == "Mail [EMAIL_1], [EMAIL_1] or [EMAIL_2]; card [CARD_1]; price [PRICE_1]."
    assert dict(r.counts) == {"EMAIL_ADDRESS": 3, "CREDIT_CARD": 1, "PRICE": 1}
    assert r.rejected == ()
    assert r.mapping["[EMAIL_1]"] == "jane@example.com" and r.mapping.type_of("[CARD_1]") == "CREDIT_CARD"


def test_allow_and_reject():
    r = redact(TEXT, {"PRICE": "allow", "CREDIT_CARD": "reject"})
    assert "$12.50" in r.text and "4111" not in r.text
    assert r.rejected == ("CREDIT_CARD",)
    with pytest.raises(RedactionRejected) as exc:
        r.raise_if_rejected()
    assert exc.value.types == ("CREDIT_CARD",) and "4111" not in str(exc.value)


def test_default_allow_policy_and_star_key():
    r = redact(TEXT, {"*": "allow", "EMAIL_ADDRESS": "redact"})
    assert r.text.startswith("Mail [EMAIL_1]") and "4111 1111 1111 1111" in r.text
    r2 = redact(TEXT, Policy({"EMAIL_ADDRESS": "redact"}, default="allow"))
    assert r2.text == r.text


def test_allowed_high_priority_type_does_not_hide_lower_one():
    # Allowed types are dropped before overlap resolution, so a term inside
    # an allowed e-mail address is still redacted.
    r = redact("mail sales@globex.example", {"EMAIL_ADDRESS": "allow"}, terms=TermMatcher([("Globex", "SUPPLIER")]))
    assert r.text == "mail sales@[SUPPLIER_1].example"
    assert dict(r.counts) == {"SUPPLIER": 1}


def test_invalid_policy():
    with pytest.raises(ValueError):
        Policy({"EMAIL_ADDRESS": "drop"})
    with pytest.raises(ValueError):
        redact("x", {"*": "ignore"})


def test_shared_mapping_across_fields():
    m = PlaceholderMap()
    terms = TermMatcher([("Globex", "SUPPLIER")])
    a = redact("Globex: call +1 415 555 2671", {}, terms=terms, mapping=m)
    b = redact("GLOBEX phone (415) 555-2671? Also +44 20 7946 0958", {}, terms=terms, mapping=m)
    assert a.text == "[SUPPLIER_1]: call [PHONE_1]"
    assert b.text == "[SUPPLIER_1] phone [PHONE_2]? Also [PHONE_3]"  # +1 prefix changes the digits
    assert len(m) == 4 and a.mapping is b.mapping


def test_same_card_different_format_same_placeholder():
    r = redact("4111 1111 1111 1111 and 4111-1111-1111-1111", {})
    assert r.text == "[CARD_1] and [CARD_1]"


def test_placeholder_lookalikes_are_escaped():
    m = PlaceholderMap()
    a = redact("contact jane@example.com", {}, mapping=m)
    b = redact("the literal [EMAIL_1] and [FOO_7] stay literal; bob@example.com", {}, mapping=m)
    assert a.text == "contact [EMAIL_1]"
    assert "[EMAIL_1]" not in b.text and "[FOO_7]" not in b.text
    assert "LITERAL" not in "".join(b.counts)
    rest = Restorer(m)
    assert rest.feed(b.text) + rest.flush() == "the literal [EMAIL_1] and [FOO_7] stay literal; bob@example.com"
    segs = Restorer(m).feed_segments(b.text)
    assert not any(s.restored and s.text == "[EMAIL_1]" for s in segs)


def test_round_trip():
    text = "Mail jane@example.com or bob@example.org; card 4111 1111 1111 1111; price $12.50."
    assert restore(redact(text, {})) == text
    # Values equal after normalisation share a placeholder and restore to the first spelling.
    assert restore(redact(TEXT, {})) == TEXT.replace("JANE@", "jane@")


def test_redacted_repr_and_mapping_repr_hide_values():
    r = redact(TEXT, {"CREDIT_CARD": "reject"})
    for s in (repr(r), str(r), repr(r.mapping), str(r.mapping)):
        assert "jane" not in s and "4111" not in s and "12.50" not in s and "Mail" not in s
    assert isinstance(r, Redacted)


def _reference_redact(text, policy, terms):
    """What redact() promises, the slow way: detect every type, drop the allowed ones,
    resolve overlaps, number placeholders in text order."""
    from redaction.detect import scan
    from redaction.placeholders import PLACEHOLDER_RE
    from redaction.spans import LITERAL, resolve_cands

    cands = [c for c in scan(text, terms=terms, region=policy.region) if policy.action(c[2]) != "allow"]
    cands += [(m.start(), m.end(), LITERAL, 1.0) for m in PLACEHOLDER_RE.finditer(text)]
    mapping, parts, pos = PlaceholderMap(), [], 0
    for start, end, type_, _ in resolve_cands(cands):
        parts += [text[pos:start], mapping.placeholder_for(type_, text[start:end])]
        pos = end
    return "".join(parts + [text[pos:]])


def test_allowed_types_are_skipped_without_changing_the_result():
    """redact() does not run the detectors of allowed types; phones still defer to the
    spans of allowed cards, IBANs, ... so nothing else changes, for any policy."""
    import random
    from pathlib import Path

    from tests.redaction.evaluation import load_corpus
    from redaction.spans import BUILTIN_TYPES

    records = load_corpus(Path(__file__).resolve().parents[1] / "data" / "redaction_corpus.jsonl")
    terms = TermMatcher([tuple(t) for t in records[0]["terms"]])
    types = sorted(BUILTIN_TYPES) + sorted({t for _, t in records[0]["terms"]})
    rng = random.Random(4)
    texts = ["\n\n".join(rng.choice(records)["text"] for _ in range(6)) for _ in range(40)]
    texts.append("sms 4155552671@txt.example.com, db https://admin:+14155552671@db.example.com, tel +1 415 555 2671")
    policies = [Policy({"EMAIL_ADDRESS": "allow", "URL_CREDENTIALS": "allow"}), Policy({}, default="allow"),
                Policy({"PHONE_NUMBER": "redact"}, default="allow")]
    policies += [Policy({t: rng.choice(("redact", "reject", "allow")) for t in types},
                        default=rng.choice(("redact", "allow"))) for _ in range(30)]
    for policy in policies:
        for text in texts:
            assert redact(text, policy, terms=terms).text == _reference_redact(text, policy, terms)
    # The case the dependency is for: the number in an allowed address is not a phone number.
    allowed = redact(texts[-1], Policy({"EMAIL_ADDRESS": "allow", "URL_CREDENTIALS": "allow"}))
    assert allowed.text == texts[-1].replace("+1 415 555 2671", "[PHONE_1]")
