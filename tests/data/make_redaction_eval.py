# ruff: noqa: E501  (phrase tables are long lines on purpose)
"""Generate the multilingual evaluation corpus: redaction_eval_dev.jsonl and redaction_eval_test.jsonl.

Run: python tests/data/make_redaction_eval.py   (deterministic; see tests/data/README.md)

Records are copy-editing material in seven languages (EN DE FR ES IT NL PT): supplier
e-mails, briefs, chat pastes, CSV snippets and config pastes. They are assembled from
phrase tables (per language and type) and value generators (per country format), with
labels written as ``⟦TYPE|value⟧`` markup so offsets are right by construction.

The split into dev and test is made once, on the phrasings: every phrase table is cut in
two by a hash of each phrase, and dev records are built only from the dev phrases, test
records only from the test phrases. The test half therefore holds sentences, cue words and
layouts that tuning on dev never saw; only the value formats (how a French phone number or
a German IBAN is written) are shared. All values are synthetic.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import string
from pathlib import Path

HERE = Path(__file__).parent
OUT = {"dev": HERE / "redaction_eval_dev.jsonl", "test": HERE / "redaction_eval_test.jsonl"}
LANGS = ("en", "de", "fr", "es", "it", "nl", "pt")
PER_LANG_HALF = 52  # records per language and half: 7 * 52 * 2 = 728
ALIAS = {"E": "EMAIL_ADDRESS", "P": "PHONE_NUMBER", "C": "CREDIT_CARD", "I": "IBAN_CODE", "IP": "IP_ADDRESS",
         "U": "URL_CREDENTIALS", "S": "SECRET", "$": "PRICE", "T": "COMMERCIAL_TERM"}
_MARK = re.compile(r"⟦([A-Z$]+)\|(.*?)⟧", re.S)
_SLOT = re.compile(r"\{([A-Za-z_0-9]+)\}")
NBSP, NNBSP, ZWSP, ZWJ, WJ, SHY = "\u00a0", "\u202f", "\u200b", "\u200d", "\u2060", "\u00ad"


# ---------------------------------------------------------------- value generators
def digits(rng, n):
    return "".join(rng.choice(string.digits) for _ in range(n))


def alnum(rng, n, alphabet=string.ascii_letters + string.digits):
    return "".join(rng.choice(alphabet) for _ in range(n))


def hexs(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return body + str((10 - total % 10) % 10)


def card_number(rng):
    kind = rng.choice(["visa", "visa", "mc", "mc2", "amex", "disc"])
    prefix, length = {"visa": ("4", 16), "mc": (str(rng.randint(51, 55)), 16), "mc2": (str(rng.randint(2221, 2720)), 16),
                      "amex": (rng.choice(["34", "37"]), 15), "disc": ("6011", 16)}[kind]
    return luhn_complete(prefix + digits(rng, length - len(prefix) - 1))


def card_groups(number):
    return [number[:4], number[4:10], number[10:]] if len(number) == 15 else [number[i:i + 4] for i in range(0, 16, 4)]


def fullwidth(s):
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in s)


def card_text(rng, unicode_rate=0.25):
    groups = card_groups(card_number(rng))
    if rng.random() < unicode_rate:
        style = rng.choice(["nbsp", "dots", "double", "mixed", "lines", "fullwidth", "zwsp", "nnbsp"])
        if style == "nbsp":
            return NBSP.join(groups)
        if style == "nnbsp":
            return NNBSP.join(groups)
        if style == "dots":
            return ".".join(groups)
        if style == "double":
            return "  ".join(groups)
        if style == "mixed":
            seps = [rng.choice([" ", "-", " - ", "."]) for _ in groups[1:]]
            if len(set(seps)) == 1:
                seps[0] = "-" if seps[0] != "-" else " "
            return groups[0] + "".join(s + g for s, g in zip(seps, groups[1:]))
        if style == "lines":
            return "\n".join(groups)
        if style == "fullwidth":
            return fullwidth(rng.choice([" ", ""]).join(groups))
        if style == "zwsp":
            flat = "".join(groups)
            cut = sorted(rng.sample(range(1, len(flat)), 3))
            return "".join(flat[a:b] + (ZWSP if b < len(flat) else "") for a, b in zip([0] + cut, cut + [len(flat)]))
    return rng.choice([" ", " ", "-", ""]).join(groups)


IBAN_BBAN = {  # country: (BBAN pieces: (count, class)), how people of that country group it
    "DE": [(18, "n")], "AT": [(16, "n")], "CH": [(5, "n"), (12, "c")], "FR": [(10, "n"), (11, "c"), (2, "n")],
    "BE": [(12, "n")], "ES": [(20, "n")], "IT": [(1, "a"), (10, "n"), (12, "c")], "NL": [(4, "a"), (10, "n")],
    "PT": [(21, "n")], "GB": [(4, "a"), (14, "n")], "LU": [(3, "n"), (13, "c")],
}
NL_BANKS, GB_BANKS = ["ABNA", "INGB", "RABO", "TRIO", "SNSB", "KNAB"], ["NWBK", "BARC", "LOYD", "HBUK", "MIDL"]


def iban_value(rng, country):
    parts = []
    for n, cls in IBAN_BBAN[country]:
        if cls == "n":
            parts.append(digits(rng, n))
        elif cls == "a":
            bank = rng.choice(NL_BANKS if country == "NL" else GB_BANKS) if n == 4 else None
            parts.append(bank or "".join(rng.choice(string.ascii_uppercase) for _ in range(n)))
        else:
            parts.append("".join(rng.choice(string.digits * 3 + string.ascii_uppercase) for _ in range(n)))
    bban = "".join(parts)
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - num % 97:02d}{bban}"


def iban_text(rng, country, unicode_rate=0.15):
    compact = iban_value(rng, country)
    groups = [compact[i:i + 4] for i in range(0, len(compact), 4)]
    r = rng.random()
    if r < unicode_rate:
        return NBSP.join(groups)
    return " ".join(groups) if r < 0.7 else compact


FIRST = {"en": ["Emma", "James", "Olivia", "Liam", "Sophie", "Noah", "Grace", "Ethan", "Priya", "Tom"],
         "de": ["Jonas", "Lena", "Felix", "Hannah", "Lukas", "Marie", "Tobias", "Anja", "Matthias", "Sabine"],
         "fr": ["Camille", "Louis", "Chloé", "Hugo", "Léa", "Julien", "Manon", "Nicolas", "Élodie", "Théo"],
         "es": ["Lucía", "Javier", "Carmen", "Pablo", "Marta", "Diego", "Elena", "Álvaro", "Nuria", "Sergio"],
         "it": ["Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo", "Sara", "Davide", "Elisa", "Paolo"],
         "nl": ["Sanne", "Daan", "Lotte", "Bram", "Femke", "Joris", "Eva", "Thijs", "Anouk", "Ruben"],
         "pt": ["Rita", "João", "Inês", "Tiago", "Beatriz", "Miguel", "Mariana", "Rui", "Catarina", "Duarte"]}
LAST = {"en": ["Walker", "Bennett", "Hughes", "Carter", "Patel", "Reid", "Foster", "Hayes"],
        "de": ["Becker", "Schulz", "Wagner", "Hoffmann", "Krüger", "Neumann", "Vogel", "Brandt"],
        "fr": ["Dupont", "Moreau", "Lefèvre", "Girard", "Bonnet", "Mercier", "Faure", "Roussel"],
        "es": ["García", "Fernández", "Romero", "Navarro", "Torres", "Ruiz", "Molina", "Castro"],
        "it": ["Rossi", "Bianchi", "Ferrari", "Esposito", "Romano", "Colombo", "Ricci", "Marino"],
        "nl": ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Mulder", "de Boer", "Dekker"],
        "pt": ["Silva", "Santos", "Ferreira", "Costa", "Oliveira", "Rodrigues", "Martins", "Sousa"]}
TLD = {"en": ["co.uk", "com", "io"], "de": ["de", "at", "ch"], "fr": ["fr", "be", "ch"], "es": ["es", "com"],
       "it": ["it", "com"], "nl": ["nl", "be"], "pt": ["pt", "com.br"]}
DOMAINS = ["northwind-supply", "lumen-trading", "alpenhof-textil", "verdi-imballaggi", "atelier-brume", "casa-oliva",
           "tulip-logistics", "porto-ceramica", "kestrel-components", "meridian-foods", "helios-packaging", "fjord-outdoor"]


def ascii_fold(s):
    table = str.maketrans("áàâäãçéèêëíìîïñóòôöõúùûüÁÉÍÓÚ", "aaaaaceeeeiiiinooooouuuuAEIOU")
    return s.translate(table).replace(" ", "").lower()


def email_text(rng, lang, unicode_rate=0.12):
    first, last = ascii_fold(rng.choice(FIRST[lang])), ascii_fold(rng.choice(LAST[lang]))
    local = rng.choice([f"{first}.{last}", f"{first[0]}.{last}", f"{first}", f"{last}", "orders", "einkauf", "compras",
                        "achats", "ordini", "inkoop", "encomendas", "sales", "info", f"{first}_{last}", f"{first}.{last}+quotes"])
    domain = f"{rng.choice(DOMAINS)}.{rng.choice(TLD[lang])}"
    if rng.random() < unicode_rate:
        style = rng.choice(["fw_at", "zw_local", "zw_domain", "upper"])
        if style == "fw_at":
            return f"{local}\uff20{domain}"
        if style == "zw_local":
            i = rng.randint(1, len(local) - 1)
            return f"{local[:i]}{rng.choice([ZWSP, ZWJ, WJ, SHY])}{local[i:]}@{domain}"
        if style == "zw_domain":
            i = rng.randint(1, len(domain.split('.')[0]) - 1)
            return f"{local}@{domain[:i]}{ZWSP}{domain[i:]}"
        return f"{local}@{domain}".upper()
    return f"{local}@{domain}"


def _g(rng, *sizes, sep=" "):
    return sep.join(digits(rng, n) for n in sizes)


def phone_text(rng, country, intl=None):
    """A phone number as people of ``country`` write it; fiction/test ranges included."""
    d = lambda n: digits(rng, n)  # noqa: E731
    i = rng.random() < 0.45 if intl is None else intl
    if country == "US":
        area = rng.choice(["212", "415", "312", "617", "646", "202", "305", "512"])
        exch, line = rng.choice([("555", "01" + d(2)), (str(rng.randint(200, 989)), d(4))])
        return rng.choice([f"+1 {area} {exch} {line}", f"+1-{area}-{exch}-{line}"]) if i else rng.choice(
            [f"({area}) {exch}-{line}", f"{area}-{exch}-{line}", f"{area}.{exch}.{line}"])
    if country == "GB":
        return rng.choice([f"+44 20 7946 0{d(3)}", f"+44 7700 900{d(3)}", f"+44 (0)161 496 0{d(3)}", f"+44 113 496 0{d(3)}"]) if i else rng.choice(
            [f"020 7946 0{d(3)}", f"07700 900{d(3)}", f"0161 496 0{d(3)}", f"0117 496 0{d(3)}"])
    if country == "DE":
        area = rng.choice(["30", "40", "89", "69", "221", "711", "211", "351"])
        mob = rng.choice(["151", "160", "170", "171", "176", "157", "162"])
        return rng.choice([f"+49 {area} {d(7)}", f"+49 (0){area} {d(3)} {d(4)}", f"+49 {mob} {d(8)}", f"+49-{area}-{d(6)}-{d(2)}", f"0049 {area} {d(7)}"]) if i else rng.choice(
            [f"0{area} {d(7)}", f"0{area}/{d(7)}", f"0{mob} {d(8)}", f"0{mob}-{d(3)} {d(4)}", f"0{area} {d(3)} {d(2)}-{d(2)}", f"(0{area}) {d(7)}"])
    if country == "AT":
        return rng.choice([f"+43 1 {d(7)}", f"+43 664 {d(7)}", f"+43 (0)512 {d(6)}"]) if i else rng.choice([f"01 {d(7)}", f"0664 {d(7)}", f"0664/{d(3)} {d(4)}"])
    if country == "CH":
        return rng.choice([f"+41 44 {d(3)} {d(2)} {d(2)}", f"+41 79 {d(3)} {d(2)} {d(2)}", f"+41 (0)21 {d(3)} {d(2)} {d(2)}"]) if i else rng.choice(
            [f"044 {d(3)} {d(2)} {d(2)}", f"079 {d(3)} {d(2)} {d(2)}"])
    if country == "FR":
        lead = rng.choice("1234567")
        fiction = rng.random() < 0.2
        body = f"99 00 {d(2)} {d(2)}" if fiction and lead == "1" else f"{d(2)} {d(2)} {d(2)} {d(2)}"
        if i:
            return rng.choice([f"+33 {lead} {body}", f"+33 (0){lead} {body}", f"+33 {lead}{body.replace(' ', '')}"])
        return rng.choice([f"0{lead} {body}", f"0{lead}.{body.replace(' ', '.')}", f"0{lead}{body.replace(' ', '')}", f"0{lead}-{body.replace(' ', '-')}"])
    if country == "BE":
        return rng.choice([f"+32 2 {d(3)} {d(2)} {d(2)}", f"+32 470 {d(2)} {d(2)} {d(2)}", f"+32 (0)9 {d(3)} {d(2)} {d(2)}"]) if i else rng.choice(
            [f"02 {d(3)} {d(2)} {d(2)}", f"0470 {d(2)} {d(2)} {d(2)}", f"09/{d(3)}.{d(2)}.{d(2)}"])
    if country == "ES":
        fixed, mob = "9" + rng.choice("1345") + d(1), rng.choice("67") + d(2)
        return rng.choice([f"+34 {fixed} {d(3)} {d(3)}", f"+34 {mob} {d(3)} {d(3)}", f"+34 {mob}{d(6)}", f"0034 {fixed} {d(2)} {d(2)} {d(2)}"]) if i else rng.choice(
            [f"{fixed} {d(3)} {d(3)}", f"{mob} {d(3)} {d(3)}", f"{mob} {d(2)} {d(2)} {d(2)}", f"{fixed[:2]} {d(3)} {d(2)} {d(2)}", f"{mob}{d(6)}"])
    if country == "IT":
        mob = "3" + rng.choice("234789") + d(1)
        return rng.choice([f"+39 02 {d(4)} {d(4)}", f"+39 {mob} {d(3)} {d(4)}", f"+39 06 {d(8)}", f"+39 {mob}{d(7)}", f"0039 011 {d(7)}"]) if i else rng.choice(
            [f"02 {d(4)} {d(4)}", f"{mob} {d(3)} {d(4)}", f"06 {d(8)}", f"{mob}/{d(7)}", f"011-{d(7)}", f"{mob}.{d(7)}"])
    if country == "NL":
        return rng.choice([f"+31 20 {d(3)} {d(4)}", f"+31 6 {d(8)}", f"+31 (0)6 {d(4)} {d(4)}", f"+31 10 {d(3)} {d(2)} {d(2)}", f"0031 30 {d(7)}"]) if i else rng.choice(
            [f"06-{d(8)}", f"020-{d(7)}", f"06 {d(4)} {d(4)}", f"010 {d(3)} {d(4)}", f"(030) {d(3)} {d(2)} {d(2)}"])
    if country == "PT":
        mob = "9" + rng.choice("1236") + d(1)
        return rng.choice([f"+351 21 {d(3)} {d(4)}", f"+351 {mob} {d(3)} {d(3)}", f"+351 22 {d(3)} {d(2)} {d(2)}", f"00351 {mob}{d(6)}"]) if i else rng.choice(
            [f"21 {d(3)} {d(4)}", f"{mob} {d(3)} {d(3)}", f"22 {d(3)} {d(2)} {d(2)}", f"{mob}{d(6)}"])
    raise KeyError(country)


PHONE_COUNTRIES = {"en": ["US", "GB", "GB", "US"], "de": ["DE", "DE", "DE", "AT", "CH"], "fr": ["FR", "FR", "FR", "BE", "CH"],
                   "es": ["ES"], "it": ["IT"], "nl": ["NL", "NL", "NL", "BE"], "pt": ["PT"]}
IBAN_COUNTRIES = {"en": ["GB", "DE", "NL", "FR", "LU"], "de": ["DE", "DE", "AT", "CH"], "fr": ["FR", "FR", "BE", "LU"],
                  "es": ["ES", "ES", "PT"], "it": ["IT", "IT", "DE"], "nl": ["NL", "NL", "BE"], "pt": ["PT", "PT", "ES"]}

B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = string.ascii_letters + string.digits + "_-"


def pem_block(rng):
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = [alnum(rng, 64, B64) for _ in range(rng.randint(3, 6))] + [alnum(rng, rng.randint(10, 60), B64) + "=="]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def jwt(rng):
    import base64
    enc = lambda o: base64.urlsafe_b64encode(json.dumps(o, separators=(",", ":")).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': rng.choice(['HS256', 'RS256']), 'typ': 'JWT'})}.{enc({'sub': digits(rng, 6), 'iat': 1700000000 + rng.randint(0, 9999999)})}.{alnum(rng, 43, URLSAFE)}"


# (environment variable name, value generator): the provider formats gitleaks/trufflehog know.
SECRET_FAMILIES = [
    ("AWS_ACCESS_KEY_ID", lambda r: "AKIA" + alnum(r, 16, string.ascii_uppercase + string.digits)),
    ("AWS_SECRET_ACCESS_KEY", lambda r: alnum(r, 40, B64)),
    ("GITHUB_TOKEN", lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + alnum(r, 36)),
    ("GH_PAT", lambda r: "github_pat_" + alnum(r, 22) + "_" + alnum(r, 59)),
    ("GITLAB_TOKEN", lambda r: "glpat-" + alnum(r, 20, URLSAFE)),
    ("SLACK_BOT_TOKEN", lambda r: f"xoxb-{digits(r, 12)}-{digits(r, 13)}-{alnum(r, 24)}"),
    ("SLACK_WEBHOOK", lambda r: f"https://hooks.slack.com/services/T{alnum(r, 8, string.ascii_uppercase + string.digits)}/B{alnum(r, 10, string.ascii_uppercase + string.digits)}/{alnum(r, 24)}"),
    ("STRIPE_SECRET_KEY", lambda r: r.choice(["sk_live_", "sk_test_", "rk_live_"]) + alnum(r, 24)),
    ("STRIPE_WEBHOOK_SECRET", lambda r: "whsec_" + alnum(r, 32)),
    ("SENDGRID_API_KEY", lambda r: f"SG.{alnum(r, 22, URLSAFE)}.{alnum(r, 43, URLSAFE)}"),
    ("TWILIO_API_KEY", lambda r: "SK" + hexs(r, 32)),
    ("GOOGLE_MAPS_API_KEY", lambda r: "AIza" + alnum(r, 35, URLSAFE)),
    ("OPENAI_API_KEY", lambda r: "sk-proj-" + alnum(r, 48, URLSAFE)),
    ("ANTHROPIC_API_KEY", lambda r: "sk-ant-api03-" + alnum(r, 93, URLSAFE) + "AA"),
    ("NPM_TOKEN", lambda r: "npm_" + alnum(r, 36)),
    ("PYPI_TOKEN", lambda r: "pypi-AgEIcHlwaS5vcmc" + alnum(r, 60, URLSAFE)),
    ("SHOPIFY_ACCESS_TOKEN", lambda r: r.choice(["shpat_", "shpss_", "shpca_"]) + hexs(r, 32)),
    ("MAILGUN_API_KEY", lambda r: "key-" + hexs(r, 32)),
    ("HF_TOKEN", lambda r: "hf_" + alnum(r, 34, string.ascii_letters)),
    ("DIGITALOCEAN_TOKEN", lambda r: "dop_v1_" + hexs(r, 64)),
    ("DATABRICKS_TOKEN", lambda r: "dapi" + hexs(r, 32)),
    ("TELEGRAM_BOT_TOKEN", lambda r: f"{digits(r, 10)}:AA{alnum(r, 33, URLSAFE)}"),
    ("MAILCHIMP_API_KEY", lambda r: hexs(r, 32) + "-us" + str(r.randint(1, 21))),
    ("SQUARE_ACCESS_TOKEN", lambda r: "EAAA" + alnum(r, 60, URLSAFE)),
    ("DOPPLER_TOKEN", lambda r: "dp.st." + alnum(r, 43)),
    ("POSTMAN_API_KEY", lambda r: f"PMAK-{hexs(r, 24)}-{hexs(r, 34)}"),
    ("AZURE_STORAGE_KEY", lambda r: alnum(r, 86, B64) + "=="),
    ("SESSION_TOKEN", jwt),
]
PASSWORDS = ["Sommer2024!", "Tq8#vLm2xP", "Lagerhaus#77", "Xk9-pR4w!z", "Primavera_2025", "G7u!kR2s", "Zeebrugge88$",
             "Oliveira#1974", "Mq4$Yt9e", "blauwe-Fiets-42", "Kaffee&Kuchen9", "Soleil*2023", "Panettone!12", "R4nd0m-Pa55"]


def key40(rng):
    while True:
        v = alnum(rng, 40, B64)
        if sum(c.isdigit() for c in v) >= 3 and sum(c.isupper() for c in v) >= 3:
            return v


def aws_key_id(rng, zw=False):
    v = "AKIA" + alnum(rng, 16, string.ascii_uppercase + string.digits)
    if zw:
        i = rng.randint(2, 18)
        v = v[:i] + rng.choice([ZWSP, ZWJ, WJ]) + v[i:]
    return v


# ---------------------------------------------------------------- negatives (never labelled)
def ean13(rng, prefix):
    body = prefix + digits(rng, 12 - len(prefix))
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


EAN_PREFIX = {"en": ["50", "00"], "de": ["40", "42"], "fr": ["30", "37"], "es": ["84"], "it": ["80", "83"], "nl": ["87"], "pt": ["560"]}


def neg_value(rng, kind, lang):
    d = lambda n: digits(rng, n)  # noqa: E731
    y = rng.choice(["2023", "2024", "2025"])
    if kind == "order":
        return rng.choice([f"PO-{y}-{d(5)}", f"4500{d(6)}", f"#{d(6)}", f"{y}/{d(4)}", f"SO{d(8)}", f"A{d(7)}-{d(2)}"])
    if kind == "sku":
        return rng.choice([f"SKU-{alnum(rng, 3, string.ascii_uppercase)}-{d(4)}", f"ART-{d(5)}-{alnum(rng, 2, string.ascii_uppercase)}",
                           f"{alnum(rng, 2, string.ascii_uppercase)}{d(4)}-{d(2)}", f"{d(3)}.{d(3)}.{d(2)}", f"{d(4)}-{d(4)}-{d(3)}"])
    if kind == "ean":
        return ean13(rng, rng.choice(EAN_PREFIX[lang]))
    if kind == "lot":
        return rng.choice([f"{y}-{d(4)}-{d(2)}", f"L{y[2:]}{d(3)}-{d(2)}", f"{y[2:]}-{d(3)}-{d(2)}", f"B{d(6)}", f"{d(2)}{d(2)}{d(4)}-{d(3)}", f"{y} {d(4)} {d(2)}"])
    if kind == "tracking":
        return rng.choice([f"1Z{alnum(rng, 6, string.ascii_uppercase + string.digits)}{d(10)}", f"JJD{d(18)}", f"00340{d(15)}",
                           f"{d(12)}", f"RR{d(9)}{rng.choice(['DE', 'FR', 'NL', 'PT', 'IT', 'ES'])}", f"3S{alnum(rng, 4, string.ascii_uppercase)}{d(9)}", f"0{d(13)}"])
    if kind == "date":
        day, mon = rng.randint(1, 28), rng.randint(1, 12)
        return rng.choice([f"{day:02d}.{mon:02d}.{y}", f"{day:02d}/{mon:02d}/{y}", f"{y}-{mon:02d}-{day:02d}", f"{day}.{mon}.{y[2:]}", f"{day:02d}-{mon:02d}-{y}"])
    if kind == "version":
        return rng.choice([f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}", f"v{rng.randint(1, 5)}.{rng.randint(0, 12)}",
                           f"{rng.randint(1, 12)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(100, 9999)}"])
    if kind == "uuid":
        return f"{hexs(rng, 8)}-{hexs(rng, 4)}-4{hexs(rng, 3)}-a{hexs(rng, 3)}-{hexs(rng, 12)}"
    if kind == "sha":
        return hexs(rng, 40)
    if kind == "invoice":
        return rng.choice([f"RE-{y}-{d(6)}", f"F{y}{d(5)}", f"INV-{d(7)}", f"{y}{d(6)}", f"FT {y}/{d(4)}"])
    if kind == "customer":
        return rng.choice([f"{d(9)}", f"K-{d(6)}", f"{d(3)} {d(3)} {d(3)}", f"CUST-{d(5)}"])
    if kind == "postcode":
        return {"en": f"SW1A {d(1)}AA", "de": f"{d(5)} Berlin", "fr": f"750{d(2)} Paris", "es": f"280{d(2)} Madrid",
                "it": f"201{d(2)} Milano", "nl": f"10{d(2)} AB Amsterdam", "pt": f"1000-{d(3)} Lisboa"}[lang]
    if kind == "qty":
        return rng.choice([f"{rng.randint(2, 900)} kg", f"{rng.randint(2, 60)} x {rng.randint(2, 60)} cm", f"{rng.randint(1, 9)}.{d(3)} {rng.choice(['Stück', 'pcs', 'unités', 'uds.', 'pezzi', 'stuks', 'unidades'])}"])
    raise KeyError(kind)


# ---------------------------------------------------------------- phrase tables
# Placeholders in phrases: {PHONE} {EMAIL} {CARD} {IBAN} {IP} {URLCRED} {PW} {KEY40} {SECRETVAL} {AWSZW}
# numbers for terms/prices {D} days {Q} quantity {PCT} {PCT2} {Y} year {PR} amount {PRI} integer amount
# negatives {ORDER} {SKU} {EAN} {LOT} {TRACKING} {DATE} {VERSION} {INVOICE} {CUSTOMER} {POSTCODE} {QTY} {UUID} {SHA}
PHRASES: dict[str, dict[str, list[str]]] = {
    "en": {
        "phone": ["You can reach me on ⟦P|{PHONE}⟧ until 6pm.", "Call me at ⟦P|{PHONE}⟧ if the samples are late.", "Tel. ⟦P|{PHONE}⟧",
                  "My mobile is ⟦P|{PHONE}⟧, text if easier.", "cell: ⟦P|{PHONE}⟧", "Direct line ⟦P|{PHONE}⟧ (warehouse desk).",
                  "WhatsApp ⟦P|{PHONE}⟧ works best while I'm travelling.", "Ring the front desk on ⟦P|{PHONE}⟧ and ask for Dave.",
                  "Phone: ⟦P|{PHONE}⟧", "Her number is ⟦P|{PHONE}⟧ if you need the artwork files.", "Fax ⟦P|{PHONE}⟧ (yes, they still use one)."],
        "email": ["Please send the PO to ⟦E|{EMAIL}⟧.", "cc ⟦E|{EMAIL}⟧ on the final proof", "Reply to ⟦E|{EMAIL}⟧ with the signed quote.",
                  "Questions about invoices go to ⟦E|{EMAIL}⟧ from now on.", "Contact: ⟦E|{EMAIL}⟧", "I've added ⟦E|{EMAIL}⟧ to the thread."],
        "card": ["Charge the samples to card ⟦C|{CARD}⟧, exp 09/27.", "Corporate Amex for the trade fair: ⟦C|{CARD}⟧", "Use ⟦C|{CARD}⟧ for the deposit, CVC by phone.",
                 "card no. ⟦C|{CARD}⟧ (ops team card)", "Payment card on file: ⟦C|{CARD}⟧"],
        "iban": ["Our bank details changed: IBAN ⟦I|{IBAN}⟧, BIC COBADEFFXXX.", "Please remit to ⟦I|{IBAN}⟧ quoting the invoice number.",
                 "Account for the refund: ⟦I|{IBAN}⟧", "Wire the deposit to ⟦I|{IBAN}⟧ by Friday."],
        "ip": ["The label printer sits at ⟦IP|{IP}⟧ on the warehouse VLAN.", "whitelist ⟦IP|{IP}⟧ for the SFTP drop", "staging box is ⟦IP|{IP}⟧, same creds as before"],
        "urlcred": ["Feed URL for the catalogue export: {URLCRED}", "connect with {URLCRED} (read-only user)", "The old FTP is {URLCRED}, please migrate."],
        "password": ["The password for the supplier portal is ⟦S|{PW}⟧.", "login: purchasing / pw: ⟦S|{PW}⟧", "pass ⟦S|{PW}⟧ (case sensitive)",
                     "Wi-Fi password in the showroom: ⟦S|{PW}⟧", "password: ⟦S|{PW}⟧"],
        "secret": ["Here's the API key for the newsletter tool: ⟦S|{SECRETVAL}⟧", "new token ⟦S|{SECRETVAL}⟧ - old one is revoked",
                   "the key for the uploads bucket is ⟦S|{KEY40}⟧", "Access key ⟦S|{AWSZW}⟧ with secret ⟦S|{KEY40}⟧, rotate after the import.",
                   "Use this key: ⟦S|{SECRETVAL}⟧", "private key for the deploy user below:\n⟦S|{PEM}⟧"],
        "price": ["Unit price is ⟦$|${PR}⟧ for the first batch.", "They quoted ⟦$|£{PR} per unit⟧ delivered.", "Landed cost comes to ⟦$|USD {PR}⟧ a carton.",
                  "Our best offer: ⟦$|€{PR} each⟧.", "Wholesale is ⟦$|${PRI}⟧, retail ⟦$|${PRI}.99⟧.", "We pay ⟦$|{PR} EUR/kg⟧ today.", "freight ⟦$|${PRI}⟧ per container"],
        "term": ["Payment terms: ⟦T|net {D}⟧.", "We can offer ⟦T|{D} days net⟧ from invoice date.", "They insist on ⟦T|{PCT}% upfront, remainder on delivery⟧.",
                 "We'd get ⟦T|sole distribution rights until the end of {Y}⟧.", "That leaves ⟦T|a {PCT}% distributor margin⟧ at that price.",
                 "MOQ is ⟦T|{Q} units⟧ per colour.", "They want ⟦T|a minimum order of {Q} pieces⟧.", "plus ⟦T|a {PCT2}% year-end rebate⟧ above target",
                 "⟦T|{PCT2}% early payment discount⟧ if paid within 10 days", "Terms are ⟦T|payment within {D} days⟧ of delivery.",
                 "Deposit of ⟦T|{PCT}% with the order, balance before shipping⟧.", "They'd give us ⟦T|exclusivity for the UK until {Y}⟧."],
        "neg": ["Order {ORDER} left the warehouse on {DATE}.", "SKU {SKU}, EAN {EAN}, lot {LOT}.", "Tracking: {TRACKING}", "Batch {LOT} failed QC, please quarantine.",
                "Firmware {VERSION} fixes the display bug.", "Invoice {INVOICE} is attached for reference.", "Returns dropped to {PCT}% after the packaging change.",
                "Conversion is up {PCT}% year on year.", "Customer no. {CUSTOMER}, delivery to {POSTCODE}.", "Pallet weight {QTY}.", "Build id {UUID}",
                "commit {SHA} is on staging", "Please reset your password before Friday.", "The password is in the vault, ask Tom.", "100% recycled cardboard, FSC certified.",
                "Lot number {LOT} / best before {DATE}", "Shipment {TRACKING} is stuck in customs."],
        "greet": ["Hi {NAME},", "Hello {NAME},", "Dear {NAME},", "Morning {NAME}!", "{NAME} -"],
        "close": ["Best,\n{ME}", "Thanks,\n{ME}", "Kind regards,\n{ME}\n{ROLE}", "Cheers, {ME}", "Regards,\n{ME}\nPurchasing"],
        "sig": ["{ME} | Sourcing\nM ⟦P|{PHONE}⟧ | ⟦E|{EMAIL}⟧", "{ME}\nTel: ⟦P|{PHONE}⟧\n⟦E|{EMAIL}⟧", "--\n{ME}, Buyer\nMobile ⟦P|{PHONE}⟧"],
        "roles": ["Category Manager", "Buyer", "Head of Sourcing"],
        "csvhead": ["supplier,contact,email,phone,iban,unit_price,sku", "name,email,phone,notes", "vendor,email,phone,terms,sku,ean"],
        "cfgcomment": ["# staging credentials - do not commit", "# copied from the old server, clean up later", "# TODO move to the secret manager"],
        "brief": ["Brief: spring launch for the {PRODUCT}.", "Product brief - {PRODUCT}, EU market.", "Copy request: {PRODUCT} listing."],
    },
    "de": {
        "phone": ["Sie erreichen mich unter ⟦P|{PHONE}⟧.", "Tel. ⟦P|{PHONE}⟧", "Handy: ⟦P|{PHONE}⟧", "Ruf mich kurz an: ⟦P|{PHONE}⟧",
                  "Mobil ⟦P|{PHONE}⟧ (auch WhatsApp)", "Durchwahl ⟦P|{PHONE}⟧", "Telefon: ⟦P|{PHONE}⟧", "Bei Rückfragen gern telefonisch unter ⟦P|{PHONE}⟧.",
                  "Rückruf bitte an ⟦P|{PHONE}⟧.", "Fax ⟦P|{PHONE}⟧", "Meine neue Nummer: ⟦P|{PHONE}⟧"],
        "email": ["Bitte die Bestellung an ⟦E|{EMAIL}⟧ schicken.", "E-Mail: ⟦E|{EMAIL}⟧", "Rechnungen ab sofort an ⟦E|{EMAIL}⟧.",
                  "Ich habe ⟦E|{EMAIL}⟧ in CC gesetzt.", "Antwort bitte an ⟦E|{EMAIL}⟧", "Ansprechpartnerin ist Frau Vogel, ⟦E|{EMAIL}⟧."],
        "card": ["Bitte die Muster über die Firmenkarte ⟦C|{CARD}⟧ abrechnen.", "Kreditkarte: ⟦C|{CARD}⟧, gültig bis 11/26", "Kartennummer ⟦C|{CARD}⟧",
                 "Zahlung per Karte ⟦C|{CARD}⟧, Prüfziffer telefonisch.", "die Visa für die Messe: ⟦C|{CARD}⟧"],
        "iban": ["Unsere neue Bankverbindung: IBAN ⟦I|{IBAN}⟧, BIC GENODEF1XXX.", "Bitte auf ⟦I|{IBAN}⟧ überweisen.", "Kontoverbindung: ⟦I|{IBAN}⟧",
                 "Die Anzahlung geht an ⟦I|{IBAN}⟧ (Verwendungszweck: Rechnungsnummer)."],
        "ip": ["Der Etikettendrucker hat die IP ⟦IP|{IP}⟧.", "Bitte ⟦IP|{IP}⟧ für den SFTP-Zugang freischalten.", "Testserver läuft auf ⟦IP|{IP}⟧"],
        "urlcred": ["Export-URL: {URLCRED}", "Zugriff über {URLCRED} (nur lesend)", "Der alte FTP ist {URLCRED}"],
        "password": ["Das Passwort für das Lieferantenportal lautet ⟦S|{PW}⟧.", "Benutzer: einkauf, Passwort: ⟦S|{PW}⟧", "Kennwort ⟦S|{PW}⟧ (Groß-/Kleinschreibung beachten)",
                     "WLAN-Passwort im Showroom: ⟦S|{PW}⟧", "PW: ⟦S|{PW}⟧"],
        "secret": ["Hier der API-Schlüssel für das Newsletter-Tool: ⟦S|{SECRETVAL}⟧", "neuer Token ⟦S|{SECRETVAL}⟧, der alte ist gesperrt",
                   "der Schlüssel für den Upload-Bucket ist ⟦S|{KEY40}⟧", "Zugang: ⟦S|{AWSZW}⟧ / ⟦S|{KEY40}⟧", "API-Key: ⟦S|{SECRETVAL}⟧",
                   "Privater Schlüssel für den Deploy-User:\n⟦S|{PEM}⟧"],
        "price": ["Der Stückpreis liegt bei ⟦$|{PR} €⟧.", "Angebot: ⟦$|{PR} EUR pro Stück⟧ frei Haus.", "Einkaufspreis ⟦$|€ {PR} je Stück⟧",
                  "Wir zahlen aktuell ⟦$|{PR} €/kg⟧.", "Fracht ⟦$|{PRI} Euro⟧ pro Container", "UVP ⟦$|{PRI},99 €⟧, Händlerpreis ⟦$|{PR} €⟧", "Listenpreis ⟦$|CHF {PR}⟧"],
        "term": ["Zahlungsbedingungen: ⟦T|Zahlungsziel {D} Tage⟧.", "⟦T|zahlbar innerhalb von {D} Tagen netto⟧", "Sie verlangen ⟦T|{PCT} % Anzahlung, Rest bei Lieferung⟧.",
                 "Die ⟦T|Mindestbestellmenge liegt bei {Q} Stück⟧.", "⟦T|Mindestabnahme {Q} Stück⟧ pro Farbe", "Wir bekommen ⟦T|{PCT2} % Skonto bei Zahlung binnen 10 Tagen⟧.",
                 "Dazu ⟦T|{PCT2} % Jahresbonus⟧ ab Zielumsatz.", "Das lässt uns ⟦T|eine Marge von {PCT} %⟧.", "⟦T|Exklusivvertrieb für die DACH-Region bis Ende {Y}⟧ ist zugesagt.",
                 "Händlerrabatt ⟦T|{PCT} % Rabatt⟧ auf Listenpreis", "⟦T|Netto {D} Tage⟧ ab Rechnungsdatum", "Sie bieten ⟦T|Exklusivität bis {Y}⟧ an."],
        "neg": ["Auftrag {ORDER} wurde am {DATE} versendet.", "Art.-Nr. {SKU}, EAN {EAN}, Charge {LOT}.", "Sendungsnummer: {TRACKING}", "Charge {LOT} ist gesperrt (QS).",
                "Firmware {VERSION} behebt den Anzeigefehler.", "Rechnung {INVOICE} anbei.", "Die Retourenquote sank auf {PCT} %.", "Umsatz +{PCT} % gegenüber Vorjahr.",
                "Kundennummer {CUSTOMER}, Lieferung nach {POSTCODE}.", "Palettengewicht {QTY}.", "Build-ID {UUID}", "Commit {SHA} liegt auf Staging.",
                "Bitte das Passwort bis Freitag ändern.", "Das Passwort liegt im Tresor, frag Tobias.", "100 % recycelter Karton.", "Chargennummer {LOT}, MHD {DATE}", "Die Sendung {TRACKING} hängt im Zoll."],
        "greet": ["Hallo {NAME},", "Liebe {NAME},", "Sehr geehrte Frau {LASTNAME},", "Moin {NAME},", "Hi {NAME},"],
        "close": ["Viele Grüße\n{ME}", "Beste Grüße,\n{ME}", "Mit freundlichen Grüßen\n{ME}\n{ROLE}", "LG {ME}", "Gruß\n{ME}\nEinkauf"],
        "sig": ["{ME} | Einkauf\nMobil ⟦P|{PHONE}⟧ | ⟦E|{EMAIL}⟧", "{ME}\nTel.: ⟦P|{PHONE}⟧\nE-Mail: ⟦E|{EMAIL}⟧", "--\n{ME}, Beschaffung\nHandy ⟦P|{PHONE}⟧"],
        "roles": ["Leitung Einkauf", "Category Managerin", "Beschaffung"],
        "csvhead": ["Lieferant;Ansprechpartner;E-Mail;Telefon;IBAN;Stückpreis;Art.-Nr.", "Name;E-Mail;Telefon;Bemerkung", "Firma;E-Mail;Telefon;Konditionen;Art.-Nr.;EAN"],
        "cfgcomment": ["# Zugangsdaten Staging - nicht committen", "# vom alten Server kopiert", "# TODO in den Secret Manager verschieben"],
        "brief": ["Briefing: Frühjahrslaunch {PRODUCT}.", "Produktbriefing - {PRODUCT}, DACH.", "Texte für {PRODUCT} (Shop + Katalog)."],
    },
    "fr": {
        "phone": ["Vous pouvez me joindre au ⟦P|{PHONE}⟧.", "Tél. ⟦P|{PHONE}⟧", "Portable : ⟦P|{PHONE}⟧", "Appelle-moi au ⟦P|{PHONE}⟧ si besoin.",
                  "Ligne directe ⟦P|{PHONE}⟧", "tél : ⟦P|{PHONE}⟧ (standard)", "Mon numéro : ⟦P|{PHONE}⟧", "N'hésitez pas à m'appeler au ⟦P|{PHONE}⟧.",
                  "Mobile ⟦P|{PHONE}⟧", "Fax : ⟦P|{PHONE}⟧", "Joignable sur WhatsApp au ⟦P|{PHONE}⟧"],
        "email": ["Merci d'envoyer la commande à ⟦E|{EMAIL}⟧.", "Courriel : ⟦E|{EMAIL}⟧", "Les factures sont à adresser à ⟦E|{EMAIL}⟧.",
                  "J'ai mis ⟦E|{EMAIL}⟧ en copie.", "Répondre à ⟦E|{EMAIL}⟧", "Contact : ⟦E|{EMAIL}⟧"],
        "card": ["Réglez les échantillons avec la carte ⟦C|{CARD}⟧.", "Carte bancaire : ⟦C|{CARD}⟧, exp. 08/27", "numéro de carte ⟦C|{CARD}⟧",
                 "Paiement par carte ⟦C|{CARD}⟧, cryptogramme par téléphone.", "la carte Amex du salon : ⟦C|{CARD}⟧"],
        "iban": ["Nos nouvelles coordonnées bancaires : IBAN ⟦I|{IBAN}⟧, BIC BNPAFRPPXXX.", "Merci de virer sur ⟦I|{IBAN}⟧.", "RIB / IBAN : ⟦I|{IBAN}⟧",
                 "L'acompte est à verser sur ⟦I|{IBAN}⟧."],
        "ip": ["L'imprimante d'étiquettes est en ⟦IP|{IP}⟧.", "Merci d'autoriser ⟦IP|{IP}⟧ pour le SFTP.", "serveur de recette : ⟦IP|{IP}⟧"],
        "urlcred": ["URL d'export : {URLCRED}", "accès via {URLCRED} (lecture seule)", "L'ancien FTP : {URLCRED}"],
        "password": ["Le mot de passe du portail fournisseur est ⟦S|{PW}⟧.", "identifiant : achats / mot de passe : ⟦S|{PW}⟧", "mdp : ⟦S|{PW}⟧",
                     "Mot de passe Wi-Fi du showroom : ⟦S|{PW}⟧", "MDP ⟦S|{PW}⟧ (attention aux majuscules)"],
        "secret": ["Voici la clé API de l'outil newsletter : ⟦S|{SECRETVAL}⟧", "nouveau jeton ⟦S|{SECRETVAL}⟧, l'ancien est révoqué",
                   "la clé du bucket d'upload est ⟦S|{KEY40}⟧", "Accès : ⟦S|{AWSZW}⟧ / ⟦S|{KEY40}⟧", "Clé : ⟦S|{SECRETVAL}⟧", "Clé privée du compte de déploiement :\n⟦S|{PEM}⟧"],
        "price": ["Le prix unitaire est de ⟦$|{PR} €⟧.", "Ils proposent ⟦$|{PR} € l'unité⟧ franco.", "Prix d'achat : ⟦$|{PR} € HT par unité⟧",
                  "Nous payons ⟦$|{PR} €/kg⟧ actuellement.", "Transport : ⟦$|{PRI} euros⟧ par conteneur", "PVC ⟦$|{PRI},90 €⟧, prix revendeur ⟦$|{PR} €⟧", "⟦$|{PR} € pièce⟧ au-delà de 500"],
        "term": ["Conditions : ⟦T|paiement à {D} jours fin de mois⟧.", "⟦T|règlement à {D} jours⟧ date de facture", "Ils demandent ⟦T|un acompte de {PCT} % à la commande, solde à la livraison⟧.",
                 "Le ⟦T|minimum de commande de {Q} unités⟧ s'applique.", "⟦T|commande minimum {Q} pièces⟧ par coloris", "⟦T|{PCT2} % d'escompte pour paiement à 10 jours⟧",
                 "plus ⟦T|une remise de fin d'année de {PCT2} %⟧", "Il nous reste ⟦T|une marge de {PCT} %⟧.", "⟦T|exclusivité sur la France jusqu'à fin {Y}⟧ confirmée",
                 "⟦T|remise de {PCT} %⟧ sur le tarif", "⟦T|{D} jours net⟧", "Ils nous accordent ⟦T|la distribution exclusive pour le Benelux jusqu'en {Y}⟧."],
        "neg": ["La commande {ORDER} est partie le {DATE}.", "Réf. {SKU}, EAN {EAN}, lot {LOT}.", "Numéro de suivi : {TRACKING}", "Le lot {LOT} est bloqué (qualité).",
                "Le firmware {VERSION} corrige l'affichage.", "Facture {INVOICE} ci-jointe.", "Le taux de retour est tombé à {PCT} %.", "Chiffre d'affaires +{PCT} % sur un an.",
                "N° client {CUSTOMER}, livraison {POSTCODE}.", "Poids palette {QTY}.", "ID de build {UUID}", "commit {SHA} en recette",
                "Pensez à changer votre mot de passe avant vendredi.", "Le mot de passe est dans le coffre, voir Hugo.", "Carton 100 % recyclé.", "Lot {LOT}, DLUO {DATE}", "Le colis {TRACKING} est bloqué en douane."],
        "greet": ["Bonjour {NAME},", "Chère {NAME},", "Madame {LASTNAME},", "Salut {NAME} !", "Bonjour à tous,"],
        "close": ["Bien à vous,\n{ME}", "Cordialement,\n{ME}", "Bien cordialement,\n{ME}\n{ROLE}", "Merci, {ME}", "Belle journée,\n{ME}\nService achats"],
        "sig": ["{ME} | Achats\nPortable ⟦P|{PHONE}⟧ | ⟦E|{EMAIL}⟧", "{ME}\nTél. : ⟦P|{PHONE}⟧\n⟦E|{EMAIL}⟧", "--\n{ME}, acheteuse\nMob. ⟦P|{PHONE}⟧"],
        "roles": ["Responsable achats", "Acheteuse", "Chef de produit"],
        "csvhead": ["fournisseur;contact;courriel;téléphone;iban;prix_unitaire;réf", "nom;e-mail;tél;remarques", "société;e-mail;téléphone;conditions;réf;ean"],
        "cfgcomment": ["# identifiants de recette - ne pas committer", "# copié de l'ancien serveur", "# TODO passer au gestionnaire de secrets"],
        "brief": ["Brief : lancement printemps {PRODUCT}.", "Fiche produit - {PRODUCT}, marché FR.", "Demande de textes : {PRODUCT}."],
    },
    "es": {
        "phone": ["Puedes llamarme al ⟦P|{PHONE}⟧.", "Tel. ⟦P|{PHONE}⟧", "Móvil: ⟦P|{PHONE}⟧", "Llámame al ⟦P|{PHONE}⟧ cuando puedas.",
                  "Teléfono directo ⟦P|{PHONE}⟧", "tlf: ⟦P|{PHONE}⟧", "Mi número: ⟦P|{PHONE}⟧", "Para dudas, al ⟦P|{PHONE}⟧ (centralita).",
                  "WhatsApp ⟦P|{PHONE}⟧", "Fax: ⟦P|{PHONE}⟧", "Estoy en el ⟦P|{PHONE}⟧ toda la mañana."],
        "email": ["Envía el pedido a ⟦E|{EMAIL}⟧.", "Correo: ⟦E|{EMAIL}⟧", "Las facturas, a partir de ahora, a ⟦E|{EMAIL}⟧.",
                  "He puesto en copia a ⟦E|{EMAIL}⟧.", "Responder a ⟦E|{EMAIL}⟧", "Contacto: ⟦E|{EMAIL}⟧"],
        "card": ["Cargad las muestras a la tarjeta ⟦C|{CARD}⟧.", "Tarjeta de crédito: ⟦C|{CARD}⟧, caduca 10/27", "n.º de tarjeta ⟦C|{CARD}⟧",
                 "Pago con tarjeta ⟦C|{CARD}⟧, el CVV por teléfono.", "la Visa de la feria: ⟦C|{CARD}⟧"],
        "iban": ["Nuestros nuevos datos bancarios: IBAN ⟦I|{IBAN}⟧, BIC CAIXESBBXXX.", "Por favor, transferid a ⟦I|{IBAN}⟧.", "Cuenta: ⟦I|{IBAN}⟧",
                 "El anticipo se ingresa en ⟦I|{IBAN}⟧."],
        "ip": ["La impresora de etiquetas está en ⟦IP|{IP}⟧.", "Hay que autorizar ⟦IP|{IP}⟧ para el SFTP.", "servidor de pruebas: ⟦IP|{IP}⟧"],
        "urlcred": ["URL de exportación: {URLCRED}", "acceso por {URLCRED} (solo lectura)", "El FTP antiguo es {URLCRED}"],
        "password": ["La contraseña del portal de proveedores es ⟦S|{PW}⟧.", "usuario: compras / contraseña: ⟦S|{PW}⟧", "clave: ⟦S|{PW}⟧",
                     "Contraseña del wifi del showroom: ⟦S|{PW}⟧", "pass ⟦S|{PW}⟧ (ojo con las mayúsculas)"],
        "secret": ["Aquí la clave API de la herramienta de newsletter: ⟦S|{SECRETVAL}⟧", "nuevo token ⟦S|{SECRETVAL}⟧, el anterior está revocado",
                   "la clave del bucket de subidas es ⟦S|{KEY40}⟧", "Acceso: ⟦S|{AWSZW}⟧ / ⟦S|{KEY40}⟧", "API key: ⟦S|{SECRETVAL}⟧", "Clave privada del usuario de despliegue:\n⟦S|{PEM}⟧"],
        "price": ["El precio unitario es de ⟦$|{PR} €⟧.", "Nos ofrecen ⟦$|{PR} € por unidad⟧ puesto en almacén.", "Precio de compra: ⟦$|{PR} € la unidad⟧",
                  "Pagamos ⟦$|{PR} €/kg⟧ ahora mismo.", "Flete ⟦$|{PRI} euros⟧ por contenedor", "PVP ⟦$|{PRI},95 €⟧, precio distribuidor ⟦$|{PR} €⟧", "⟦$|USD {PR}⟧ FOB Shenzhen"],
        "term": ["Condiciones: ⟦T|pago a {D} días⟧.", "⟦T|pago a {D} días fecha factura⟧", "Piden ⟦T|un {PCT} % por adelantado y el resto a la entrega⟧.",
                 "El ⟦T|pedido mínimo de {Q} unidades⟧ se mantiene.", "⟦T|cantidad mínima de pedido: {Q} uds.⟧", "⟦T|{PCT2} % de descuento por pronto pago⟧",
                 "además ⟦T|un rappel del {PCT2} %⟧ a fin de año", "Nos queda ⟦T|un margen del {PCT} %⟧.", "⟦T|exclusividad en España hasta {Y}⟧ confirmada",
                 "⟦T|descuento del {PCT} %⟧ sobre tarifa", "⟦T|{D} días netos⟧ desde la factura", "Nos dan ⟦T|la distribución exclusiva en Iberia hasta finales de {Y}⟧."],
        "neg": ["El pedido {ORDER} salió el {DATE}.", "Ref. {SKU}, EAN {EAN}, lote {LOT}.", "Número de seguimiento: {TRACKING}", "El lote {LOT} está bloqueado (calidad).",
                "El firmware {VERSION} corrige la pantalla.", "Adjunto la factura {INVOICE}.", "Las devoluciones bajaron al {PCT} %.", "Ventas +{PCT} % interanual.",
                "N.º de cliente {CUSTOMER}, entrega en {POSTCODE}.", "Peso del palé {QTY}.", "ID de build {UUID}", "commit {SHA} en preproducción",
                "Cambia tu contraseña antes del viernes.", "La contraseña está en la caja fuerte, pregunta a Diego.", "Cartón 100 % reciclado.", "Lote {LOT}, consumo preferente {DATE}", "El envío {TRACKING} está retenido en aduanas."],
        "greet": ["Hola {NAME}:", "Hola {NAME},", "Estimada {NAME}:", "Buenos días, {NAME}:", "Buenas {NAME},"],
        "close": ["Un saludo,\n{ME}", "Saludos,\n{ME}", "Atentamente,\n{ME}\n{ROLE}", "Gracias, {ME}", "Un abrazo,\n{ME}\nCompras"],
        "sig": ["{ME} | Compras\nMóvil ⟦P|{PHONE}⟧ | ⟦E|{EMAIL}⟧", "{ME}\nTel.: ⟦P|{PHONE}⟧\n⟦E|{EMAIL}⟧", "--\n{ME}, compradora\nTlf. ⟦P|{PHONE}⟧"],
        "roles": ["Responsable de compras", "Compradora", "Jefe de producto"],
        "csvhead": ["proveedor;contacto;correo;teléfono;iban;precio_unitario;ref", "nombre;email;teléfono;notas", "empresa;correo;teléfono;condiciones;ref;ean"],
        "cfgcomment": ["# credenciales de preproducción - no subir", "# copiado del servidor antiguo", "# TODO mover al gestor de secretos"],
        "brief": ["Brief: lanzamiento de primavera {PRODUCT}.", "Ficha de producto - {PRODUCT}, mercado ES.", "Textos para {PRODUCT}."],
    },
    "it": {
        "phone": ["Mi trovi al ⟦P|{PHONE}⟧.", "Tel. ⟦P|{PHONE}⟧", "Cellulare: ⟦P|{PHONE}⟧", "Chiamami al ⟦P|{PHONE}⟧ quando puoi.",
                  "Cell. ⟦P|{PHONE}⟧", "Numero diretto ⟦P|{PHONE}⟧", "tel: ⟦P|{PHONE}⟧ (centralino)", "Per informazioni: ⟦P|{PHONE}⟧",
                  "WhatsApp ⟦P|{PHONE}⟧", "Fax ⟦P|{PHONE}⟧", "Il mio numero è ⟦P|{PHONE}⟧."],
        "email": ["Inviate l'ordine a ⟦E|{EMAIL}⟧.", "Email: ⟦E|{EMAIL}⟧", "Le fatture vanno d'ora in poi a ⟦E|{EMAIL}⟧.",
                  "Ho messo in copia ⟦E|{EMAIL}⟧.", "Rispondere a ⟦E|{EMAIL}⟧", "Referente: ⟦E|{EMAIL}⟧"],
        "card": ["Addebitate i campioni sulla carta ⟦C|{CARD}⟧.", "Carta di credito: ⟦C|{CARD}⟧, scad. 12/26", "numero carta ⟦C|{CARD}⟧",
                 "Pagamento con carta ⟦C|{CARD}⟧, CVV per telefono.", "la carta aziendale per la fiera: ⟦C|{CARD}⟧"],
        "iban": ["Le nostre nuove coordinate bancarie: IBAN ⟦I|{IBAN}⟧, BIC BCITITMMXXX.", "Bonifico su ⟦I|{IBAN}⟧, grazie.", "Conto: ⟦I|{IBAN}⟧",
                 "L'acconto va versato su ⟦I|{IBAN}⟧."],
        "ip": ["La stampante etichette è su ⟦IP|{IP}⟧.", "Abilitate ⟦IP|{IP}⟧ per l'SFTP.", "server di test: ⟦IP|{IP}⟧"],
        "urlcred": ["URL di export: {URLCRED}", "accesso tramite {URLCRED} (sola lettura)", "Il vecchio FTP è {URLCRED}"],
        "password": ["La password del portale fornitori è ⟦S|{PW}⟧.", "utente: acquisti / password: ⟦S|{PW}⟧", "parola d'ordine: ⟦S|{PW}⟧",
                     "Password del wifi in showroom: ⟦S|{PW}⟧", "pwd ⟦S|{PW}⟧ (attenzione alle maiuscole)"],
        "secret": ["Ecco la chiave API del tool newsletter: ⟦S|{SECRETVAL}⟧", "nuovo token ⟦S|{SECRETVAL}⟧, il vecchio è revocato",
                   "la chiave del bucket di upload è ⟦S|{KEY40}⟧", "Accesso: ⟦S|{AWSZW}⟧ / ⟦S|{KEY40}⟧", "Chiave: ⟦S|{SECRETVAL}⟧", "Chiave privata dell'utente di deploy:\n⟦S|{PEM}⟧"],
        "price": ["Il prezzo unitario è di ⟦$|{PR} €⟧.", "Ci offrono ⟦$|€ {PR} al pezzo⟧ franco magazzino.", "Prezzo d'acquisto: ⟦$|{PR} euro cad.⟧",
                  "Paghiamo ⟦$|{PR} €/kg⟧ al momento.", "Trasporto ⟦$|{PRI} euro⟧ a container", "Prezzo al pubblico ⟦$|{PRI},90 €⟧, rivenditori ⟦$|{PR} €⟧", "⟦$|€ {PR} a pezzo⟧ sopra i 500"],
        "term": ["Condizioni: ⟦T|pagamento a {D} giorni⟧.", "⟦T|pagamento a {D} giorni data fattura fine mese⟧", "Chiedono ⟦T|un acconto del {PCT}%, saldo alla consegna⟧.",
                 "L'⟦T|ordine minimo di {Q} pezzi⟧ resta.", "⟦T|quantità minima d'ordine {Q} pezzi⟧", "⟦T|sconto del {PCT2}% per pagamento anticipato⟧",
                 "più ⟦T|un premio di fine anno del {PCT2}%⟧", "Ci resta ⟦T|un margine del {PCT}%⟧.", "⟦T|esclusiva per l'Italia fino al {Y}⟧ confermata",
                 "⟦T|sconto del {PCT}%⟧ sul listino", "⟦T|{D} gg. data fattura⟧", "Ci danno ⟦T|la distribuzione esclusiva per il Nord Italia fino a fine {Y}⟧."],
        "neg": ["L'ordine {ORDER} è partito il {DATE}.", "Cod. art. {SKU}, EAN {EAN}, lotto {LOT}.", "Numero di tracking: {TRACKING}", "Il lotto {LOT} è bloccato (qualità).",
                "Il firmware {VERSION} corregge il display.", "In allegato la fattura {INVOICE}.", "I resi sono scesi al {PCT}%.", "Fatturato +{PCT}% sull'anno scorso.",
                "Codice cliente {CUSTOMER}, consegna a {POSTCODE}.", "Peso bancale {QTY}.", "ID build {UUID}", "commit {SHA} in staging",
                "Cambia la password entro venerdì.", "La password è nella cassaforte, chiedi a Marco.", "Cartone 100% riciclato.", "Lotto {LOT}, da consumarsi entro {DATE}", "La spedizione {TRACKING} è ferma in dogana."],
        "greet": ["Ciao {NAME},", "Gentile {NAME},", "Buongiorno {NAME},", "Gentile dott.ssa {LASTNAME},", "Ciao a tutti,"],
        "close": ["Un saluto,\n{ME}", "Cordiali saluti,\n{ME}", "Distinti saluti,\n{ME}\n{ROLE}", "Grazie, {ME}", "A presto,\n{ME}\nUfficio acquisti"],
        "sig": ["{ME} | Acquisti\nCell. ⟦P|{PHONE}⟧ | ⟦E|{EMAIL}⟧", "{ME}\nTel. ⟦P|{PHONE}⟧\n⟦E|{EMAIL}⟧", "--\n{ME}, buyer\nCellulare ⟦P|{PHONE}⟧"],
        "roles": ["Responsabile acquisti", "Buyer", "Product manager"],
        "csvhead": ["fornitore;referente;email;telefono;iban;prezzo_unitario;cod_art", "nome;email;telefono;note", "azienda;email;telefono;condizioni;cod_art;ean"],
        "cfgcomment": ["# credenziali di staging - non committare", "# copiato dal vecchio server", "# TODO spostare nel secret manager"],
        "brief": ["Brief: lancio primavera {PRODUCT}.", "Scheda prodotto - {PRODUCT}, mercato IT.", "Testi per {PRODUCT}."],
    },
    "nl": {
        "phone": ["Je kunt me bereiken op ⟦P|{PHONE}⟧.", "Tel. ⟦P|{PHONE}⟧", "Mobiel: ⟦P|{PHONE}⟧", "Bel me even op ⟦P|{PHONE}⟧.",
                  "Telefoon ⟦P|{PHONE}⟧", "tel: ⟦P|{PHONE}⟧ (receptie)", "Mijn nummer: ⟦P|{PHONE}⟧", "Voor vragen: ⟦P|{PHONE}⟧",
                  "WhatsApp ⟦P|{PHONE}⟧", "Fax ⟦P|{PHONE}⟧", "Doorkiesnummer ⟦P|{PHONE}⟧"],
        "email": ["Stuur de bestelling naar ⟦E|{EMAIL}⟧.", "E-mail: ⟦E|{EMAIL}⟧", "Facturen voortaan naar ⟦E|{EMAIL}⟧.",
                  "Ik heb ⟦E|{EMAIL}⟧ in cc gezet.", "Antwoord graag aan ⟦E|{EMAIL}⟧", "Contactpersoon: ⟦E|{EMAIL}⟧"],
        "card": ["Reken de samples af met kaart ⟦C|{CARD}⟧.", "Creditcard: ⟦C|{CARD}⟧, geldig tot 07/27", "kaartnummer ⟦C|{CARD}⟧",
                 "Betaling met kaart ⟦C|{CARD}⟧, CVC telefonisch.", "de Amex voor de beurs: ⟦C|{CARD}⟧"],
        "iban": ["Onze nieuwe bankgegevens: IBAN ⟦I|{IBAN}⟧, BIC INGBNL2AXXX.", "Graag overmaken naar ⟦I|{IBAN}⟧.", "Rekeningnummer: ⟦I|{IBAN}⟧",
                 "De aanbetaling gaat naar ⟦I|{IBAN}⟧."],
        "ip": ["De labelprinter staat op ⟦IP|{IP}⟧.", "Zet ⟦IP|{IP}⟧ op de whitelist voor SFTP.", "testserver: ⟦IP|{IP}⟧"],
        "urlcred": ["Export-URL: {URLCRED}", "toegang via {URLCRED} (alleen lezen)", "De oude FTP is {URLCRED}"],
        "password": ["Het wachtwoord voor het leveranciersportaal is ⟦S|{PW}⟧.", "gebruiker: inkoop / wachtwoord: ⟦S|{PW}⟧", "ww: ⟦S|{PW}⟧",
                     "Wifi-wachtwoord showroom: ⟦S|{PW}⟧", "Wachtwoord ⟦S|{PW}⟧ (hoofdlettergevoelig)"],
        "secret": ["Hier is de API-sleutel voor de nieuwsbrieftool: ⟦S|{SECRETVAL}⟧", "nieuwe token ⟦S|{SECRETVAL}⟧, de oude is ingetrokken",
                   "de sleutel voor de upload-bucket is ⟦S|{KEY40}⟧", "Toegang: ⟦S|{AWSZW}⟧ / ⟦S|{KEY40}⟧", "API key: ⟦S|{SECRETVAL}⟧", "Private key van de deploy-gebruiker:\n⟦S|{PEM}⟧"],
        "price": ["De stuksprijs is ⟦$|€ {PR}⟧.", "Ze bieden ⟦$|€ {PR} per stuk⟧ franco.", "Inkoopprijs: ⟦$|{PR} euro per stuk⟧",
                  "We betalen nu ⟦$|€ {PR}/kg⟧.", "Vracht ⟦$|€ {PRI}⟧ per container", "Adviesprijs ⟦$|€ {PRI},95⟧, dealerprijs ⟦$|€ {PR}⟧", "⟦$|{PR} EUR⟧ per doos"],
        "term": ["Betalingsvoorwaarden: ⟦T|betaling binnen {D} dagen⟧.", "⟦T|{D} dagen netto⟧ na factuurdatum", "Ze willen ⟦T|{PCT}% aanbetaling, rest bij levering⟧.",
                 "De ⟦T|minimale bestelhoeveelheid is {Q} stuks⟧.", "⟦T|minimumafname {Q} stuks⟧ per kleur", "⟦T|{PCT2}% korting bij betaling binnen 8 dagen⟧",
                 "plus ⟦T|een eindejaarsbonus van {PCT2}%⟧", "Dan houden we ⟦T|een marge van {PCT}%⟧ over.", "⟦T|exclusiviteit voor de Benelux tot eind {Y}⟧ toegezegd",
                 "⟦T|{PCT}% korting⟧ op de catalogusprijs", "⟦T|netto {D} dagen⟧", "Ze geven ons ⟦T|het exclusieve distributierecht voor België tot {Y}⟧."],
        "neg": ["Order {ORDER} is op {DATE} verzonden.", "Art.nr. {SKU}, EAN {EAN}, partij {LOT}.", "Track & trace: {TRACKING}", "Partij {LOT} is geblokkeerd (QC).",
                "Firmware {VERSION} lost de displayfout op.", "Factuur {INVOICE} in de bijlage.", "Retouren daalden naar {PCT}%.", "Omzet +{PCT}% t.o.v. vorig jaar.",
                "Klantnummer {CUSTOMER}, levering in {POSTCODE}.", "Palletgewicht {QTY}.", "Build-ID {UUID}", "commit {SHA} staat op staging",
                "Wijzig je wachtwoord voor vrijdag.", "Het wachtwoord staat in de kluis, vraag Bram.", "100% gerecycled karton.", "Lotnummer {LOT}, THT {DATE}", "Zending {TRACKING} staat vast bij de douane."],
        "greet": ["Hoi {NAME},", "Beste {NAME},", "Geachte mevrouw {LASTNAME},", "Hallo {NAME},", "Goedemorgen {NAME},"],
        "close": ["Groet,\n{ME}", "Met vriendelijke groet,\n{ME}", "Met vriendelijke groeten,\n{ME}\n{ROLE}", "Dank, {ME}", "Groetjes,\n{ME}\nInkoop"],
        "sig": ["{ME} | Inkoop\nMobiel ⟦P|{PHONE}⟧ | ⟦E|{EMAIL}⟧", "{ME}\nT ⟦P|{PHONE}⟧\nE ⟦E|{EMAIL}⟧", "--\n{ME}, inkoper\nTel. ⟦P|{PHONE}⟧"],
        "roles": ["Hoofd inkoop", "Inkoper", "Productmanager"],
        "csvhead": ["leverancier;contactpersoon;email;telefoon;iban;stuksprijs;artnr", "naam;email;telefoon;opmerking", "bedrijf;email;telefoon;voorwaarden;artnr;ean"],
        "cfgcomment": ["# staging-inloggegevens - niet committen", "# gekopieerd van de oude server", "# TODO naar de secret manager"],
        "brief": ["Briefing: voorjaarslancering {PRODUCT}.", "Productbriefing - {PRODUCT}, Benelux.", "Teksten voor {PRODUCT}."],
    },
    "pt": {
        "phone": ["Pode contactar-me pelo ⟦P|{PHONE}⟧.", "Tel. ⟦P|{PHONE}⟧", "Telemóvel: ⟦P|{PHONE}⟧", "Liga-me para o ⟦P|{PHONE}⟧ quando puderes.",
                  "Telefone direto ⟦P|{PHONE}⟧", "tlm: ⟦P|{PHONE}⟧", "O meu número: ⟦P|{PHONE}⟧", "Para dúvidas: ⟦P|{PHONE}⟧ (geral)",
                  "WhatsApp ⟦P|{PHONE}⟧", "Fax ⟦P|{PHONE}⟧", "Celular: ⟦P|{PHONE}⟧"],
        "email": ["Enviem a encomenda para ⟦E|{EMAIL}⟧.", "Email: ⟦E|{EMAIL}⟧", "As faturas passam a ir para ⟦E|{EMAIL}⟧.",
                  "Coloquei ⟦E|{EMAIL}⟧ em cópia.", "Responder para ⟦E|{EMAIL}⟧", "Contacto: ⟦E|{EMAIL}⟧"],
        "card": ["Debitem as amostras no cartão ⟦C|{CARD}⟧.", "Cartão de crédito: ⟦C|{CARD}⟧, validade 05/27", "n.º do cartão ⟦C|{CARD}⟧",
                 "Pagamento com cartão ⟦C|{CARD}⟧, CVV por telefone.", "o cartão da feira: ⟦C|{CARD}⟧"],
        "iban": ["Os nossos novos dados bancários: IBAN ⟦I|{IBAN}⟧, BIC CGDIPTPLXXX.", "Transfiram para ⟦I|{IBAN}⟧, por favor.", "NIB/IBAN: ⟦I|{IBAN}⟧",
                 "O sinal é pago para ⟦I|{IBAN}⟧."],
        "ip": ["A impressora de etiquetas está em ⟦IP|{IP}⟧.", "Autorizem ⟦IP|{IP}⟧ para o SFTP.", "servidor de testes: ⟦IP|{IP}⟧"],
        "urlcred": ["URL de exportação: {URLCRED}", "acesso por {URLCRED} (só leitura)", "O FTP antigo é {URLCRED}"],
        "password": ["A senha do portal de fornecedores é ⟦S|{PW}⟧.", "utilizador: compras / senha: ⟦S|{PW}⟧", "palavra-passe: ⟦S|{PW}⟧",
                     "Senha do wifi do showroom: ⟦S|{PW}⟧", "pw ⟦S|{PW}⟧ (atenção às maiúsculas)"],
        "secret": ["Aqui está a chave API da ferramenta de newsletter: ⟦S|{SECRETVAL}⟧", "novo token ⟦S|{SECRETVAL}⟧, o antigo foi revogado",
                   "a chave do bucket de uploads é ⟦S|{KEY40}⟧", "Acesso: ⟦S|{AWSZW}⟧ / ⟦S|{KEY40}⟧", "Chave: ⟦S|{SECRETVAL}⟧", "Chave privada do utilizador de deploy:\n⟦S|{PEM}⟧"],
        "price": ["O preço unitário é de ⟦$|{PR} €⟧.", "Oferecem ⟦$|{PR} € por unidade⟧ posto no armazém.", "Preço de compra: ⟦$|{PR} euros a unidade⟧",
                  "Pagamos ⟦$|{PR} €/kg⟧ neste momento.", "Frete ⟦$|{PRI} euros⟧ por contentor", "PVP ⟦$|{PRI},99 €⟧, preço revenda ⟦$|{PR} €⟧", "⟦$|R$ {PR}⟧ no Brasil"],
        "term": ["Condições: ⟦T|pagamento a {D} dias⟧.", "⟦T|pagamento a {D} dias após a fatura⟧", "Pedem ⟦T|um sinal de {PCT}%, restante na entrega⟧.",
                 "A ⟦T|encomenda mínima de {Q} unidades⟧ mantém-se.", "⟦T|quantidade mínima de {Q} peças⟧ por cor", "⟦T|{PCT2}% de desconto por pronto pagamento⟧",
                 "mais ⟦T|um rappel de {PCT2}%⟧ no fim do ano", "Fica-nos ⟦T|uma margem de {PCT}%⟧.", "⟦T|exclusividade em Portugal até {Y}⟧ confirmada",
                 "⟦T|desconto de {PCT}%⟧ sobre a tabela", "⟦T|{D} dias líquidos⟧", "Dão-nos ⟦T|a distribuição exclusiva em Portugal até ao fim de {Y}⟧."],
        "neg": ["A encomenda {ORDER} saiu a {DATE}.", "Ref. {SKU}, EAN {EAN}, lote {LOT}.", "Número de seguimento: {TRACKING}", "O lote {LOT} está bloqueado (qualidade).",
                "O firmware {VERSION} corrige o ecrã.", "Segue a fatura {INVOICE}.", "As devoluções desceram para {PCT}%.", "Vendas +{PCT}% face ao ano passado.",
                "N.º de cliente {CUSTOMER}, entrega em {POSTCODE}.", "Peso da palete {QTY}.", "ID de build {UUID}", "commit {SHA} em staging",
                "Mude a sua senha até sexta.", "A senha está no cofre, pergunta ao Tiago.", "Cartão 100% reciclado.", "Lote {LOT}, consumir de preferência antes de {DATE}", "A remessa {TRACKING} está retida na alfândega."],
        "greet": ["Olá {NAME},", "Cara {NAME},", "Bom dia {NAME},", "Exma. Sra. {LASTNAME},", "Olá a todos,"],
        "close": ["Cumprimentos,\n{ME}", "Com os melhores cumprimentos,\n{ME}", "Atenciosamente,\n{ME}\n{ROLE}", "Obrigada, {ME}", "Abraço,\n{ME}\nCompras"],
        "sig": ["{ME} | Compras\nTlm. ⟦P|{PHONE}⟧ | ⟦E|{EMAIL}⟧", "{ME}\nTel.: ⟦P|{PHONE}⟧\n⟦E|{EMAIL}⟧", "--\n{ME}, compradora\nTelemóvel ⟦P|{PHONE}⟧"],
        "roles": ["Diretora de compras", "Compradora", "Gestor de produto"],
        "csvhead": ["fornecedor;contacto;email;telefone;iban;preço_unitário;ref", "nome;email;telefone;notas", "empresa;email;telefone;condições;ref;ean"],
        "cfgcomment": ["# credenciais de staging - não fazer commit", "# copiado do servidor antigo", "# TODO passar para o gestor de segredos"],
        "brief": ["Brief: lançamento de primavera {PRODUCT}.", "Ficha de produto - {PRODUCT}, mercado PT.", "Textos para {PRODUCT}."],
    },
}
PRODUCTS = ["cedar cutting board", "merino base layer", "LED panel 60x60", "espresso beans 1 kg", "yoga mat 6 mm", "steel bottle 750 ml",
            "linen tea towels", "oak side table", "rain jacket", "ceramic mug set", "bamboo toothbrush 4-pack", "desk lamp Aurora"]
# Config pastes: (key, value) lines; {SECRET_ENV} picks a provider family, the rest are fixed shapes.
CFG_POS = ["DATABASE_URL={URLCRED}", "SMTP_PASSWORD=⟦S|{PW}⟧", "{SECRET_ENV}", "{SECRET_ENV}", "ADMIN_EMAIL=⟦E|{EMAIL}⟧", "DB_HOST=⟦IP|{IP}⟧",
           "redis_url: {URLCRED}", "  password: \"⟦S|{PW}⟧\"", "\"apiKey\": \"⟦S|{SECRETVAL}⟧\",", "host = ⟦IP|{IP}⟧", "SUPPORT_PHONE=\"⟦P|{PHONEI}⟧\"",
           "aws_secret_access_key = ⟦S|{KEY40}⟧", "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=sluicefiles;AccountKey=⟦S|{AZKEY}⟧;EndpointSuffix=core.windows.net"]
CFG_NEG = ["PORT=8080", "TIMEOUT_SECONDS=30", "APP_VERSION={VERSION}", "IMAGE=nginx:1.25.3", "GIT_SHA={SHA}", "REQUEST_ID={UUID}", "CACHE_TTL=3600",
           "LOG_LEVEL=info", "MAX_TOKENS=1024", "PASSWORD_MIN_LENGTH=12", "password: ${DB_PASSWORD}", "token: <set in vault>", "SENTRY_DSN_ENABLED=false",
           "replicas: 3", "retry_backoff: 2.5", "api_key: \"\"", "BATCH_SIZE=500", "DEFAULT_CURRENCY=EUR"]
IPS = ["10.{a}.{b}.{c}", "192.168.{a}.{c}", "172.16.{a}.{c}", "203.0.113.{c}", "198.51.100.{c}", "2001:db8::{h}", "fd12:3456:789a:1::{h}", "2001:db8:85a3::8a2e:370:{h}"]
URL_SCHEMES = ["postgres://{u}:{p}@db.internal:5432/sales", "mysql://{u}:{p}@⟦IP|10.0.3.7⟧:3306/shop", "https://{u}:{p}@ftp.partner-portal.example/export",
               "amqp://{u}:{p}@mq.internal:5672/", "ftp://{u}:{p}@files.example.net/in", "redis://{u}:{p}@cache.internal:6379/0", "mongodb+srv://{u}:{p}@cluster0.example.mongodb.net/app"]


def split_half(items: list[str], half: str) -> list[str]:
    """The half of a phrase table that ``half`` may use: fixed by a hash of each phrase."""
    ranked = sorted(items, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    picked = ranked[0::2] if half == "dev" else ranked[1::2]
    return picked or items


class Builder:
    def __init__(self, lang: str, half: str, rng: random.Random) -> None:
        self.lang, self.half, self.rng = lang, half, rng
        self.table = {k: split_half(v, half) if isinstance(v, list) and len(v) > 1 else v for k, v in PHRASES[lang].items()}
        self.cfg_pos, self.cfg_neg = split_half(CFG_POS, half), split_half(CFG_NEG, half)

    def pick(self, key):
        return self.rng.choice(self.table[key])

    def slot(self, name: str) -> str:
        r, lang = self.rng, self.lang
        if name == "PHONE":
            return phone_text(r, r.choice(PHONE_COUNTRIES[lang]))
        if name == "PHONEI":
            return phone_text(r, r.choice(PHONE_COUNTRIES[lang]), intl=True)
        if name == "EMAIL":
            return email_text(r, lang)
        if name == "CARD":
            return card_text(r)
        if name == "IBAN":
            return iban_text(r, r.choice(IBAN_COUNTRIES[lang]))
        if name == "IP":
            return r.choice(IPS).format(a=r.randint(0, 254), b=r.randint(0, 254), c=r.randint(1, 254), h=hexs(r, r.randint(1, 4)).lstrip("0") or "1")
        if name == "URLCRED":
            user = r.choice(["app", "readonly", "export", "svc_shop", "admin", "partner42"])
            pw = r.choice(PASSWORDS[:6]) if r.random() < 0.3 else alnum(r, r.randint(10, 18))
            return r.choice(URL_SCHEMES).format(u="⟦U|" + user, p=pw + "⟧")
        if name == "PW":
            return r.choice(PASSWORDS) if r.random() < 0.5 else alnum(r, r.randint(3, 6), string.ascii_letters) + r.choice("!#$%&*-_.") + digits(r, r.randint(2, 4)) + alnum(r, 2)
        if name == "KEY40":
            return key40(r)
        if name == "AWSZW":
            return aws_key_id(r, zw=r.random() < 0.35)
        if name == "AZKEY":
            return alnum(r, 86, B64) + "=="
        if name == "PEM":
            return pem_block(r)
        if name == "SECRETVAL":
            env, gen = r.choice(SECRET_FAMILIES)
            return gen(r)
        if name == "SECRET_ENV":
            env, gen = r.choice(SECRET_FAMILIES)
            value = gen(r)
            return f"{env}=⟦S|{value}⟧" if not value.startswith("https://") else f"{env}={value[:value.rfind('/') + 1]}⟦S|{value[value.rfind('/') + 1:]}⟧"
        if name == "D":
            return str(r.choice([14, 30, 30, 45, 60, 60, 90, 120]))
        if name == "Q":
            return r.choice(["100", "250", "300", "500", "1000", "1.000" if lang != "en" else "1,000", "2500", "5.000" if lang != "en" else "5,000"])
        if name == "PCT":
            return str(r.choice([10, 15, 20, 25, 30, 35, 40, 42, 45, 50]))
        if name == "PCT2":
            return r.choice(["2", "3", "1,5" if lang != "en" else "1.5", "2,5" if lang != "en" else "2.5", "4", "5"])
        if name == "Y":
            return str(r.choice([2026, 2027, 2028, 2029]))
        if name == "PR":
            whole, cents = r.choice([1, 2, 3, 4, 6, 8, 12, 18, 24, 38, 145, 1250, 3800]), r.randint(0, 99)
            if lang == "en":
                return f"{whole:,}.{cents:02d}" if r.random() < 0.8 else f"{whole:,}"
            w = f"{whole:,}".replace(",", "." if lang != "fr" else NNBSP)
            return f"{w},{cents:02d}" if r.random() < 0.8 else w
        if name == "PRI":
            return str(r.choice([9, 19, 29, 49, 79, 129, 249, 1450, 1900]))
        if name == "NAME":
            return r.choice(FIRST[lang])
        if name == "LASTNAME":
            return r.choice(LAST[lang])
        if name in ("ME",):
            return f"{r.choice(FIRST[lang])} {r.choice(LAST[lang])}"
        if name == "ROLE":
            return r.choice(PHRASES[lang]["roles"])
        if name == "PRODUCT":
            return r.choice(PRODUCTS)
        if name == "PCT_NEG":
            return str(r.randint(2, 60))
        kind = {"ORDER": "order", "SKU": "sku", "EAN": "ean", "LOT": "lot", "TRACKING": "tracking", "DATE": "date", "VERSION": "version",
                "INVOICE": "invoice", "CUSTOMER": "customer", "POSTCODE": "postcode", "QTY": "qty", "UUID": "uuid", "SHA": "sha"}.get(name)
        if kind:
            return neg_value(r, kind, lang)
        return "{" + name + "}"  # not a slot: literal text such as ${DB_PASSWORD}

    def fill(self, template: str) -> str:
        out = template
        for _ in range(4):  # slots may produce further slots ({ROLE} in a closing)
            new = _SLOT.sub(lambda m: self.slot(m.group(1)), out)
            if new == out:
                break
            out = new
        return out

    def sentences(self, n_pos: int, n_neg: int) -> list[str]:
        kinds = ["phone", "phone", "email", "card", "card", "iban", "ip", "urlcred", "password", "secret", "secret", "price", "price", "term", "term", "term"]
        parts = [self.fill(self.pick(self.rng.choice(kinds))) for _ in range(n_pos)]
        parts += [self.fill(self.pick("neg")) for _ in range(n_neg)]
        self.rng.shuffle(parts)
        return parts

    # ------------------------------------------------------------ genres
    def email(self) -> str:
        r = self.rng
        body = self.sentences(r.randint(0, 3), r.randint(0, 2))
        glue = r.choice([" ", "\n", "\n\n"])
        closing = self.fill(self.pick("sig") if r.random() < 0.35 else self.pick("close"))
        return f"{self.fill(self.pick('greet'))}\n{glue.join(body)}\n{closing}"

    def chat(self) -> str:
        r = self.rng
        people = [r.choice(FIRST[self.lang]) for _ in range(2)]
        lines, minute = [], r.randint(0, 40)
        for part in self.sentences(r.randint(1, 3), r.randint(0, 2)):
            minute += r.randint(0, 4)
            who = r.choice(people)
            style = r.random()
            if style < 0.4:
                lines.append(f"[{r.randint(8, 17):02d}:{minute % 60:02d}] {who}: {part}")
            elif style < 0.7:
                lines.append(f"{who}  {r.randint(8, 17)}:{minute % 60:02d}\n{part}")
            else:
                lines.append(f"<{who.lower()}> {part}")
        return "\n".join(lines)

    def brief(self) -> str:
        r = self.rng
        head = self.fill(self.pick("brief"))
        return head + "\n" + r.choice([" ", "\n- "]).join(self.sentences(r.randint(1, 3), r.randint(1, 3)))

    def csv(self) -> str:
        r, lang = self.rng, self.lang
        header = self.pick("csvhead")
        sep = "," if "," in header else ";"
        cols = header.split(sep)
        rows = [header]
        for _ in range(r.randint(2, 4)):
            cells = []
            for col in cols:
                c = col.lower()
                if "mail" in c or "courriel" in c or "correo" in c:
                    cells.append("⟦E|{EMAIL}⟧")
                elif c.startswith(("tel", "tél", "phone")):
                    cells.append("⟦P|{PHONEI}⟧" if r.random() < 0.6 else "⟦P|{PHONE}⟧")
                elif c == "iban":
                    cells.append("⟦I|{IBAN}⟧")
                elif c in PRICE_COLUMNS:
                    cells.append(r.choice(["⟦$|{PR} EUR⟧", "⟦$|€{PR}⟧", "⟦$|{PR} €⟧"]) if lang != "en" else r.choice(["⟦$|${PR}⟧", "⟦$|£{PR}⟧"]))
                elif c in ("sku", "ref", "réf", "art.-nr.", "artnr", "cod_art"):
                    cells.append("{SKU}")
                elif c == "ean":
                    cells.append("{EAN}")
                elif c in ("terms", "konditionen", "conditions", "condiciones", "condizioni", "voorwaarden", "condições"):
                    cells.append(self.pick("term").split("⟦T|", 1)[-1].split("⟧", 1)[0].join(["⟦T|", "⟧"]) if r.random() < 0.7 else "{LOT}")
                elif c in ("notes", "bemerkung", "remarques", "notas", "note", "opmerking"):
                    cells.append(r.choice(["{ORDER}", "lot {LOT}", "{DATE}", "-", "{TRACKING}"]))
                else:
                    cells.append(f"{r.choice(DOMAINS).replace('-', ' ').title()}" if r.random() < 0.5 else f"{r.choice(FIRST[lang])} {r.choice(LAST[lang])}")
            rows.append(sep.join(cells))
        return self.fill("\n".join(rows))

    def config(self) -> str:
        r = self.rng
        lines = [self.pick("cfgcomment")] if r.random() < 0.7 else []
        picked = [r.choice(self.cfg_pos) for _ in range(r.randint(1, 3))] + [r.choice(self.cfg_neg) for _ in range(r.randint(1, 3))]
        r.shuffle(picked)
        return self.fill("\n".join(lines + picked))


PRICE_COLUMNS = ("unit_price", "stückpreis", "prix_unitaire", "precio_unitario", "prezzo_unitario", "stuksprijs", "preço_unitário")
GENRES = ["email"] * 18 + ["chat"] * 11 + ["brief"] * 9 + ["csv"] * 7 + ["config"] * 7  # 52 per language and half


def parse(marked: str) -> tuple[str, list[dict]]:
    text, spans, pos = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        before = marked[pos:m.start()]
        text.append(before)
        length += len(before)
        value = m.group(2)
        spans.append({"start": length, "end": length + len(value), "type": ALIAS[m.group(1)]})
        text.append(value)
        length += len(value)
        pos = m.end()
    text.append(marked[pos:])
    return "".join(text), spans


def build(half: str, round_: int = 0) -> list[dict]:
    """The records of one half. ``round_`` 0 is the corpus as first made; rounds 1 and up are
    the extension (EXT_OUT): the same generator and the same half's phrase tables, other
    seeds, so other combinations of those phrasings and other values."""
    out = []
    tag = "" if round_ == 0 else f"/ext{round_}"
    for lang in LANGS:
        seed = int(hashlib.sha256(f"{lang}/{half}{tag}".encode()).hexdigest()[:8], 16)
        b = Builder(lang, half, random.Random(seed))
        for n, genre in enumerate(GENRES, 1):
            text, spans = parse(getattr(b, genre)())
            rid = f"{half}-{lang}-{genre}-{n:03d}" if round_ == 0 else f"{half}-x{round_}-{lang}-{genre}-{n:03d}"
            out.append({"id": rid, "lang": lang, "genre": genre, "text": text, "spans": spans})
    return out


# The extension (session 10): EXT_ROUNDS more rounds per half, in files of their own so the
# first corpus (and the benchmark's mix made from its dev half) stays as it was.
EXT_OUT = {"dev": HERE / "redaction_eval_dev_ext.jsonl", "test": HERE / "redaction_eval_test_ext.jsonl"}
EXT_ROUNDS = 3


def build_extension(half: str) -> list[dict]:
    return [rec for k in range(1, EXT_ROUNDS + 1) for rec in build(half, k)]


if __name__ == "__main__":
    for outputs, make in ((OUT, build), (EXT_OUT, build_extension)):
        for half, path in outputs.items():
            records = make(half)
            with path.open("w", encoding="utf-8") as fh:
                for rec in records:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            print(f"wrote {len(records)} records, {sum(len(r['spans']) for r in records)} spans to {path.name}")
