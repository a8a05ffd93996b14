"""The speed-ups keep the results of the plain implementations they replace."""
from redaction import detect
from redaction.phones import _phone_valid, clear_cache

TEXT = "Call +44 20 7946 0958 or (201) 555-0123; card 4111 1111 1111 1111; tel 2125550199."


def test_phone_cache_does_not_change_results():
    clear_cache()
    cold = detect(TEXT)
    warm = detect(TEXT)
    assert cold == warm
    assert [s.type for s in cold].count("PHONE_NUMBER") == 3
    assert _phone_valid.cache_info().currsize > 0
    clear_cache()
    assert _phone_valid.cache_info().currsize == 0


def test_email_local_part_before_newline_like_regex_dollar():
    # "$" in the old local-part regex also matched before a final newline.
    text = "abc\n@example.com and x.y@example.org"
    assert [(s.start, s.end) for s in detect(text) if s.type == "EMAIL_ADDRESS"] == [(0, 16), (21, 36)]
