"""Per-detector positives and tricky negatives (no Django needed)."""
import pytest

from redaction import detect
from redaction.pii import iban_valid


def found(text, type_=None):
    return [(s.type, text[s.start:s.end]) for s in detect(text) if type_ is None or s.type == type_]


@pytest.mark.parametrize("text,value", [
    ("mail jane.doe@example.com now", "jane.doe@example.com"),
    ("<J.Smith+orders@example.co.uk>", "J.Smith+orders@example.co.uk"),
    ("(elena.bruno@example.it)", "elena.bruno@example.it"),
    ("end: ops-team@example.org.", "ops-team@example.org"),
])
def test_email_positive(text, value):
    assert found(text, "EMAIL_ADDRESS") == [("EMAIL_ADDRESS", value)]


@pytest.mark.parametrize("text", ["user@localhost", "a@b", "@example.com", "name@@example.com x", "foo.@example"])
def test_email_negative(text):
    assert found(text, "EMAIL_ADDRESS") == []


@pytest.mark.parametrize("text,value", [
    ("call (201) 555-0123 today", "(201) 555-0123"),
    ("Tel: +44 20 7946 0958.", "+44 20 7946 0958"),
    ("ring 212-555-0199", "212-555-0199"),
    ("at 415.555.0132", "415.555.0132"),
    ("+1 (212) 555-0199", "+1 (212) 555-0199"),
    ("+39 06 1234 5678", "+39 06 1234 5678"),
    ("+81 3-1234-5678", "+81 3-1234-5678"),
    ("phone 2015550123", "2015550123"),
    ("(call 212-555-0199)", "212-555-0199"),
])
def test_phone_positive(text, value):
    assert found(text, "PHONE_NUMBER") == [("PHONE_NUMBER", value)]


@pytest.mark.parametrize("text", [
    "order 2015550123 shipped",  # bare digits without a phone cue
    "ts 1700000000000", "date 2024-01-15", "on 15/01/2024", "id #100234567", "PO-2024-001234",
    "version 10.0.19045", "price $4155550123",
])
def test_phone_negative(text):
    assert found(text, "PHONE_NUMBER") == []


def test_phone_region_and_languages_configurable():
    text = "office 020 7946 0958"  # no cue: a national number must be valid in a region tried
    assert [s.type for s in detect(text, region="GB", languages=["es"])] == ["PHONE_NUMBER"]
    assert detect(text, region="US", languages=["es"]) == []
    assert [s.type for s in detect(text, region="US")] == ["PHONE_NUMBER"]  # all languages: GB is tried


@pytest.mark.parametrize("text,value", [
    ("Tél. : 01 99 00 12 34", "01 99 00 12 34"),  # fiction range, refused by the metadata
    ("Handy: 0151 00000000", "0151 00000000"),
    ("Mobile 07700 900123", "07700 900123"),  # UK drama range
])
def test_phone_cue_accepts_numbers_the_metadata_refuses(text, value):
    assert found(text, "PHONE_NUMBER") == [("PHONE_NUMBER", value)]


@pytest.mark.parametrize("text", ["lot 2024-1187-33 released", "Charge 2024 1187 33", "lotto 2025-0054-09",
                                  "Firmware 8.4.0.9875 fixes it", "IBAN DE89 3704 0044 0532 0130 01 (typo)"])
def test_lot_and_version_numbers_are_not_phones(text):
    assert found(text, "PHONE_NUMBER") == []


@pytest.mark.parametrize("value", [
    "4111 1111 1111 1111", "5555-5555-5555-4444", "2223003122003222", "3782 822463 10005",
    "6011 1111 1111 1117", "3530111333300000", "36227206271667", "4000 0000 0000 0000 006",
    "4111 1111-1111 1111", "4111.1111.1111.1111", "4111  1111  1111  1111", "4111\n1111\n1111\n1111",
])
def test_card_positive(value):
    assert found(f"card {value} ok", "CREDIT_CARD") == [("CREDIT_CARD", value)]


def test_card_next_to_other_numbers():
    text = "card 4111 1111 1111 1111 2027"
    assert found(text, "CREDIT_CARD") == [("CREDIT_CARD", "4111 1111 1111 1111")]


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112",  # Luhn-invalid
    "EAN 4006381333931", "EAN 5901234123457", "ISBN 9780306406157", "ts 1700000000000",
    "serial 1234 5678 9012 3456",  # Luhn-invalid, no known brand grouping issue
    "acct 12345678901234567890123",  # too long
    "x 0000 0000 0000 0000",
])
def test_card_negative(text):
    assert found(text, "CREDIT_CARD") == []


@pytest.mark.parametrize("value", [
    "DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "NL91ABNA0417164300",
    "FR14 2004 1010 0505 0001 3M02 606", "NO93 8601 1117 947",
])
def test_iban_positive(value):
    assert found(f"IBAN: {value} CODE", "IBAN_CODE") == [("IBAN_CODE", value)]


@pytest.mark.parametrize("text", [
    "IBAN DE89 3704 0044 0532 0130 01", "GB82 WEST 1234 5698 7654 33", "XX89370400440532013000"])
def test_iban_negative(text):
    assert found(text, "IBAN_CODE") == []


def test_iban_validator_matches_stdnum():
    from stdnum import iban
    samples = ["DE89370400440532013000", "GB82WEST12345698765432", "GB82WEST1234569876543",
               "DE8937040044053201300", "SE4550000000058398257466", "CH9300762011623852957",
               "AT611904300234573201", "NL91ABNA0417164301"]
    for s in samples:
        expected = True
        try:
            iban.validate(s, check_country=False)
        except ValueError:
            expected = False
        assert iban_valid(s) == expected


@pytest.mark.parametrize("text,value", [
    ("host 10.0.0.12 up", "10.0.0.12"), ("[2001:db8::8a2e:370:7334]:443", "2001:db8::8a2e:370:7334"),
    ("gw fe80::1ff:fe23:4567:890a.", "fe80::1ff:fe23:4567:890a"), ("ssh 203.0.113.7:22", "203.0.113.7"),
    ("::ffff:192.0.2.1 mapped", "::ffff:192.0.2.1"),
])
def test_ip_positive(text, value):
    assert found(text, "IP_ADDRESS") == [("IP_ADDRESS", value)]


@pytest.mark.parametrize("text", [
    "v1.2.3.4", "version 2.10.4.1", "Build 1.0.0.1", "999.1.1.1", "1.2.3", "12:30:45",
    "00:1A:2B:3C:4D:5E", "std::vector", "Chrome 124.0.6367.91",
])
def test_ip_negative(text):
    assert found(text, "IP_ADDRESS") == []


def test_url_credentials_span_is_userinfo():
    text = "postgres://admin:s3cret@db.example.com/app"
    assert found(text) == [("URL_CREDENTIALS", "admin:s3cret")]
    assert found("https://example.com/path?q=1 and user@example.com") == [("EMAIL_ADDRESS", "user@example.com")]


@pytest.mark.parametrize("text,value", [
    ("key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("Authorization: Bearer abcDEF123456ghiJKL789", "abcDEF123456ghiJKL789"),
    ("export T=ghp_R2d2C3poExampleToken0123456789abcdEF", "ghp_R2d2C3poExampleToken0123456789abcdEF"),
    ("k=sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("xoxb-123456789012-1234567890123-AbCdEfGh", "xoxb-123456789012-1234567890123-AbCdEfGh"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"),
    ("password=hunter2", "hunter2"), ("passwd: s3cr3t!", "s3cr3t!"), ('"password": "N0t-So-Secret"', "N0t-So-Secret"),
    ("DB_PASSWORD=x9fq2k", "x9fq2k"), ("token: 8f14e45fceea167a5a36dedd4bea2543.", "8f14e45fceea167a5a36dedd4bea2543"),
    ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0.sig_abc-123",
     "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0.sig_abc-123"),
])
def test_secret_positive(text, value):
    assert found(text, "SECRET") == [("SECRET", value)]


@pytest.mark.parametrize("text", [
    "Please reset your password before Friday.", "The password: required", "api_key: ${API_KEY}",
    "password=<redacted>", "token: see vault", "Bearer of bad news", "max_tokens=1024",
    "eyJub3RhbGciOjF9.eyJzdWIiOiIxIn0.abc",  # JWT-shaped but header has no "alg"
    "secret=***", "password: changeme",
])
def test_secret_negative(text):
    assert found(text, "SECRET") == []


@pytest.mark.parametrize("text,value", [
    ("is $12.50 now", "$12.50"), ("now €1.299,00", "€1.299,00"), ("at 1,200 USD", "1,200 USD"),
    ("GBP 45 only", "GBP 45"), ("at $4.20/unit", "$4.20/unit"), ("at $3 per kg", "$3 per kg"),
    ("pay $10-$15", "$10-$15"), ("pay €5 to €8", "€5 to €8"), ("pay 10-15 USD", "10-15 USD"),
    ("pay $10-15/unit", "$10-15/unit"), ("4 250,00 € total", "4 250,00 €"), ("US$ 3k", "US$ 3k"),
    ("A$18.50 each", "A$18.50 each"), ("costs 12 dollars", "12 dollars"),
])
def test_price_positive(text, value):
    assert found(text, "PRICE") == [("PRICE", value)]


@pytest.mark.parametrize("text", [
    "Set $HOME and $PATH", "grew 20% YoY", "3.5 kg and 100 units", "1,200 employees", "USDA organic",
])
def test_price_negative(text):
    assert found(text, "PRICE") == []


@pytest.mark.parametrize("text,value", [
    ("terms net 60.", "net 60"), ("Net-30 applies", "Net-30"), ("2/10 net 30 ok", "2/10 net 30"),
    ("MOQ 500 units", "MOQ 500 units"), ("a minimum order quantity of 1,000", "minimum order quantity of 1,000"),
    ("a 12% rebate", "12% rebate"), ("a margin of 35%", "margin of 35%"),
    ("as exclusive distributor for the EU.", "exclusive distributor for the EU"),
    ("exclusivity until 2027", "exclusivity until 2027"), ("gross margin of 59%", "gross margin of 59%"),
    ("3% volume rebate", "3% volume rebate"), ("30 days net", "30 days net"),
])
def test_commercial_term_positive(text, value):
    assert found(text, "COMMERCIAL_TERM") == [("COMMERCIAL_TERM", value)]


@pytest.mark.parametrize("text", [
    "Net weight 500 g", "the net result", "net income rose", "an exclusive interview", "Internet 30 days",
    "margins are confidential", "20% increase",
])
def test_commercial_term_negative(text):
    assert found(text, "COMMERCIAL_TERM") == []


def test_overlap_priority_and_sorting():
    text = "postgres://bob:pw12345@db.example.com pay 4111 1111 1111 1111 or call +1 415 555 2671"
    spans = detect(text)
    assert [s.type for s in spans] == ["URL_CREDENTIALS", "CREDIT_CARD", "PHONE_NUMBER"]
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def test_span_repr_has_no_text():
    text = "mail jane.doe@example.com"
    (span,) = detect(text)
    assert "jane" not in repr(span) and repr(span).startswith("Span(")
