"""The per-language rule tables: languages selectable, every language on by default, and
the secret rules shared with the output guard."""
import pytest

from redaction import OutputGuard, Policy, detect, redact
from redaction.rules import LANGUAGES, compiled


def types_in(text, **kw):
    return [(s.type, text[s.start:s.end]) for s in detect(text, **kw)]


@pytest.mark.parametrize("text,type_,value", [
    ("Zahlungsbedingungen: Zahlungsziel 30 Tage.", "COMMERCIAL_TERM", "zahlungsziel 30 tage"),
    ("Conditions : paiement à 45 jours fin de mois.", "COMMERCIAL_TERM", "paiement à 45 jours fin de mois"),
    ("Piden un 30 % por adelantado y el resto a la entrega.", "COMMERCIAL_TERM", "30 % por adelantado y el resto a la entrega"),
    ("L'ordine minimo di 100 pezzi resta.", "COMMERCIAL_TERM", "ordine minimo di 100 pezzi"),
    ("De minimale bestelhoeveelheid is 250 stuks.", "COMMERCIAL_TERM", "minimale bestelhoeveelheid is 250 stuks"),
    ("Fica-nos uma margem de 35%.", "COMMERCIAL_TERM", "margem de 35%"),
    ("We'd get sole distribution rights until the end of 2028.", "COMMERCIAL_TERM",
     "sole distribution rights until the end of 2028"),
    ("That leaves a 42% distributor margin.", "COMMERCIAL_TERM", "42% distributor margin"),
    ("Passwort: Sommer2024!", "SECRET", "Sommer2024!"),
    ("la contraseña es Tq8#vLm2xP.", "SECRET", "Tq8#vLm2xP"),
    ("mot de passe : Xk9-pR4w!z", "SECRET", "Xk9-pR4w!z"),
    ("a senha é Mq4$Yt9e", "SECRET", "Mq4$Yt9e"),
    ("het wachtwoord is blauwe-Fiets-42", "SECRET", "blauwe-Fiets-42"),
    ("the key for the uploads bucket is Gwb5kv7e3CBU0cBBwaVLIGjkA8wynP1Je59gkmZP", "SECRET",
     "Gwb5kv7e3CBU0cBBwaVLIGjkA8wynP1Je59gkmZP"),
    ("Móvil: 612 345 678", "PHONE_NUMBER", "612 345 678"),
    ("Handy 0176 12345678", "PHONE_NUMBER", "0176 12345678"),
])
def test_multilingual_rules(text, type_, value):
    got = [(t, v) for t, v in types_in(text) if t == type_]
    assert [(t, v.lower()) for t, v in got] == [(type_, value.lower())]


@pytest.mark.parametrize("value", [
    "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",
    "npm_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----",
])
def test_provider_formats_and_pem_keys(value):
    text = f"config:\n{value}\nend"
    assert types_in(text) == [("SECRET", value)]


def test_guard_masks_secrets_the_model_writes_with_the_same_rules():
    guard = OutputGuard()
    text = ("Use 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 and the password "
            "for the portal is Lagerhaus#77 then\n-----BEGIN PRIVATE KEY-----\n" + "A1b2C3d4" * 10
            + "\n-----END PRIVATE KEY-----\nbye")
    out = "".join(guard.feed(text[i:i + 7]) for i in range(0, len(text), 7)) + guard.flush()
    assert "SG.ngeV" not in out and "Lagerhaus#77" not in out and "A1b2C3d4" not in out
    assert guard.masked_counts == {"SECRET": 3}


def test_languages_select_the_cue_tables():
    text = "Handy: 0151 00000000"  # refused by the metadata: only the German cue makes it a phone
    assert types_in(text, languages=["de"]) == [("PHONE_NUMBER", "0151 00000000")]
    assert types_in(text, languages=["fr"]) == []
    assert types_in(text) == types_in(text, languages=LANGUAGES)  # default: every language


def test_policy_languages():
    pol = Policy(languages=["ES"])
    assert pol.languages == frozenset({"es"})
    assert redact("Móvil: 612 345 678", pol).counts == {"PHONE_NUMBER": 1}
    with pytest.raises(ValueError):
        Policy(languages=["xx"])
    assert compiled(["es"]) is compiled(["ES"])
