"""Rule tables per type and language: the cue words and phrase patterns the detectors compile.

Organised like Presidio's per-language context words and gitleaks' rule list: data, not
code. To support a new language or phrasing, add a row here; the detectors compile the rows
of the languages asked for (all of them by default) once per language set.

Patterns are regex fragments matched on the lower-cased, folded text (see folding.py), so
write them in lower case. ``{pct}``, ``{days}``, ``{qty}`` and ``{year}`` stand for the
number shapes defined below.
"""
from __future__ import annotations

import re
from re import _constants as _sre, _parser as _sre_parse

from .needles import trie_pattern

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl", "pt")

# ---------------------------------------------------------------- PHONE_NUMBER
# A cue right before a phone-shaped number (within a few words) makes it a phone number
# even when phonenumbers' metadata would refuse it (fiction and test ranges, new ranges).
PHONE_CUES: dict[str, tuple[str, ...]] = {
    "en": ("tel", "tel.", "phone", "telephone", "mobile", "mob", "cell", "cell.", "fax", "whatsapp", "call", "ring",
           "direct line", "direct", "dial", "sms", "text me", "reach me", "number", "ph", "hotline"),
    "de": ("tel", "tel.", "telefon", "telefonisch", "handy", "mobil", "mobilnummer", "fax", "durchwahl", "ruf",
           "anrufen", "erreichen", "erreichbar", "rückruf", "nummer", "festnetz"),
    "fr": ("tél", "tél.", "tel", "téléphone", "portable", "mobile", "mob.", "fax", "ligne directe", "joindre",
           "appeler", "appelle-moi", "numéro", "standard", "whatsapp"),
    "es": ("tel", "tel.", "teléfono", "telefono", "tlf", "tlf.", "móvil", "movil", "fax", "llámame", "llamarme",
           "llamar", "número", "numero", "centralita", "whatsapp", "estoy en el", "dudas"),
    "it": ("tel", "tel.", "telefono", "cellulare", "cell", "cell.", "fax", "chiamami", "chiamare", "numero",
           "numero diretto", "centralino", "mi trovi al", "informazioni", "whatsapp"),
    "nl": ("tel", "tel.", "telefoon", "telefoonnummer", "mobiel", "fax", "bel", "bellen", "bereiken", "nummer",
           "doorkiesnummer", "receptie", "whatsapp", "vragen"),
    "pt": ("tel", "tel.", "telefone", "telemóvel", "tlm", "tlm.", "celular", "fax", "liga-me", "ligar",
           "contactar-me", "número", "whatsapp", "dúvidas"),
}
# Words that make a number right after them something else (a lot, an order, an invoice).
PHONE_ANTI_CUES: dict[str, tuple[str, ...]] = {
    "en": ("lot", "batch", "order", "po", "invoice", "sku", "ean", "tracking", "shipment", "customer no", "ref",
           "serial", "id", "build", "firmware", "version", "v", "release",
           # English names a reference number "<noun> number", after the noun: the compound
           # is the anti-cue (the phone cue "number" alone would be closest). "number of" counts.
           "order number", "invoice number", "customer number", "account number", "reference number",
           "tracking number", "serial number", "part number", "item number", "article number", "product number",
           "batch number", "lot number", "ticket number", "case number", "contract number", "policy number",
           "vat number", "tax number", "registration number", "booking number", "confirmation number",
           "shipment number", "parcel number", "po number", "number of"),
    "de": ("charge", "chargennummer", "auftrag", "bestellung", "rechnung", "art.-nr.", "kundennummer", "sendung",
           "sendungsnummer", "los", "version", "artikel", "artikelnummer", "bestellnummer", "rechnungsnummer",
           "auftragsnummer"),
    "fr": ("lot", "commande", "facture", "réf.", "suivi", "colis", "client", "version"),
    "es": ("lote", "pedido", "factura", "ref.", "seguimiento", "envío", "cliente", "versión"),
    "it": ("lotto", "ordine", "fattura", "cod. art.", "tracking", "spedizione", "cliente", "versione"),
    "nl": ("partij", "lotnummer", "order", "factuur", "art.nr.", "zending", "klantnummer", "versie"),
    "pt": ("lote", "encomenda", "fatura", "ref.", "seguimento", "remessa", "cliente", "versão"),
}
# Column headers that name a phone column in a pasted table (CSV, TSV, "|" tables): a
# phone-shaped cell under one counts as cued. A word of the header must be one of these;
# a header naming an anti-cue (sku, ean, ref, cod_art, artnr...) makes its cells no phones.
PHONE_COLUMNS: dict[str, tuple[str, ...]] = {
    "en": ("phone", "telephone", "tel", "mobile", "mob", "cell", "cellphone", "fax", "whatsapp", "phonenumber"),
    "de": ("telefon", "tel", "telefonnummer", "handy", "handynummer", "mobil", "mobilnummer", "mobiltelefon",
           "fax", "faxnummer", "festnetz", "durchwahl", "rufnummer"),
    "fr": ("téléphone", "telephone", "tél", "tel", "portable", "mobile", "fax", "gsm"),
    "es": ("teléfono", "telefono", "tel", "tlf", "móvil", "movil", "celular", "fax"),
    "it": ("telefono", "tel", "cellulare", "cell", "fax"),
    "nl": ("telefoon", "telefoonnummer", "tel", "mobiel", "gsm", "fax"),
    "pt": ("telefone", "tel", "telemóvel", "telemovel", "tlm", "celular", "fax"),
}
# Regions whose national formats are tried (by phonenumbers' metadata) for a number with no
# cue and no international prefix, per language.
PHONE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "GB"), "de": ("DE", "AT", "CH"), "fr": ("FR", "BE", "CH"), "es": ("ES",), "it": ("IT",),
    "nl": ("NL", "BE"), "pt": ("PT",),
}

# ---------------------------------------------------------------- PRICE
# Per-unit phrases after an amount with its currency ("4,20 € l'unité", "€ 3,52 per stuk"),
# made part of the PRICE span. English ones ("/unit", "per kg", "each") are in commercial.py.
# Each row starts at the word after the amount (or at a "/"), on the lower-cased folded text.
PRICE_UNITS: dict[str, tuple[str, ...]] = {
    "de": (r"(?:netto\s|brutto\s)?(?:pro|je|/)\s?(?:stück|stk\.?|einheit|paar|karton|packung|kg|liter|meter)",
           r"das\sstück"),
    "fr": (r"(?:ht\s|ttc\s)?(?:par\s|l'|la\s|/\s?)?(?:unité|pièce|pce|paire|boîte|carton|kg|litre|mètre)",),
    "es": (r"(?:\+\s?iva\s)?(?:por|la|cada|/)\s?(?:unidad|ud\.?|pieza|par|caja|kg|litro|metro)", r"c/u"),
    "it": (r"(?:\+\s?iva\s)?(?:al|a|per|l'|/)\s?(?:pezzo|pz\.?|unità|paio|cartone|kg|litro|metro)",
           r"cad(?:auno|\.)", r"l'uno"),
    "nl": (r"(?:excl\.\sbtw\s|incl\.\sbtw\s)?(?:per|/)\s?(?:stuk|st\.|eenheid|doos|kg|liter|meter)",),
    "pt": (r"(?:\+\s?iva\s)?(?:por|a|cada|/)\s?(?:unidade|peça|par|caixa|kg|litro|metro)",),
}

# ---------------------------------------------------------------- SECRET
# Words that introduce a password or key in prose ("the password for the portal is ...",
# "Passwort: ...", "la clé du bucket est ..."). The value is the first token after the cue,
# within a few words, that mixes letters with digits or symbols.
SECRET_CUES: dict[str, tuple[str, ...]] = {
    "en": ("password", "passwd", "passphrase", "pw", "pwd", "pass", "key", "secret", "token", "credentials",
           "api key", "access key"),
    "de": ("passwort", "kennwort", "schlüssel", "api-schlüssel", "api-key", "zugang", "zugangsdaten", "token", "pw"),
    "fr": ("mot de passe", "mdp", "clé", "cle", "clé api", "jeton", "accès", "identifiants"),
    "es": ("contraseña", "clave", "clave api", "token", "acceso", "credenciales", "pass"),
    "it": ("password", "parola d'ordine", "pwd", "chiave", "chiave api", "token", "accesso", "credenziali"),
    "nl": ("wachtwoord", "ww", "sleutel", "api-sleutel", "toegang", "token"),
    "pt": ("senha", "palavra-passe", "chave", "chave api", "token", "acesso", "credenciais", "pw"),
}
# Provider formats (after gitleaks' and trufflehog's rules): (name, literal every match
# contains, pattern, group holding the secret). Matched on the original-case folded text.
SECRET_PROVIDERS: tuple[tuple[str, str, str, int], ...] = (
    ("sendgrid", "SG.", r"SG\.[\w-]{22}\.[\w-]{43}", 0),
    ("twilio-api-key", "SK", r"SK[0-9a-f]{32}", 0),
    ("npm", "npm_", r"npm_[A-Za-z0-9]{36}", 0),
    ("pypi", "pypi-", r"pypi-AgEIcHlwaS5vcmc[\w-]{50,}", 0),
    ("shopify", "shp", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}", 0),
    ("mailgun", "key-", r"key-[0-9a-f]{32}", 0),
    ("huggingface", "hf_", r"hf_[A-Za-z]{34}", 0),
    ("digitalocean", "_v1_", r"do[opr]_v1_[a-f0-9]{64}", 0),
    ("databricks", "dapi", r"dapi[a-f0-9]{32}(?:-\d)?", 0),
    ("telegram-bot", ":AA", r"\d{8,10}:AA[\w-]{33}", 0),
    ("mailchimp", "-us", r"[0-9a-f]{32}-us\d{1,2}", 0),
    ("square", "EAAA", r"EAAA[\w-]{60}", 0),
    ("square-oauth", "sq0", r"sq0(?:atp|csp)-[\w-]{22,43}", 0),
    ("doppler", "dp.", r"dp\.(?:st|ct|sa|scim|audit)\.[A-Za-z0-9_-]{40,44}", 0),
    ("postman", "PMAK-", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}", 0),
    ("stripe-webhook", "whsec_", r"whsec_[A-Za-z0-9]{32,}", 0),
    ("slack-webhook", "hooks.slack.com", r"hooks\.slack\.com/(?:services|workflows)/([A-Za-z0-9+/]{43,56}|T\w+/B\w+/\w+)", 1),
    ("azure-storage", "AccountKey=", r"AccountKey=([A-Za-z0-9+/]{86}==)", 1),
    ("atlassian", "ATATT", r"ATATT3[A-Za-z0-9_=-]{180,200}", 0),
    ("age-secret-key", "AGE-SECRET-KEY-", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", 0),
    ("aws-secret-after-key-id", "A", r"A(?:KIA|SIA)[A-Z0-9]{16}[^\S\n]{0,3}[/,;:|][^\S\n]{0,3}([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])", 1),
    ("private-key", "-----BEGIN", r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\s\S]{64,}?"
                                  r"-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----", 0),
)

# ---------------------------------------------------------------- COMMERCIAL_TERM
# Number shapes used in the phrase patterns (on lower-cased text).
NUMBERS = {
    "pct": r"(?<![\d.])(?<!(?<!\d)\d[.,])(?<!(?<!\d)\d\d[.,])(?<!(?<!\d)\d\d\d[.,])\d{1,3}(?:[.,]\d{1,2})?\s?(?:%|percent\b|pct\b|prozent\b|pour\s?cent\b|por\s?ciento\b|per\s?cento\b|procent\b|por\s?cento\b)",
    "days": r"(?<![\d.])(?<!\d,)\d{1,3}\s(?:days?|tage[n]?|tg\.?|jours?|j\.|d[ií]as|giorni|gg\.?|dagen|dias)",
    "qty": r"(?<![\d.])(?<!\d,)(?:\d{1,3}(?:[,.\s]\d{3})+|\d+)(?:\s?k)?(?:\s(?:units?|pcs\.?|pieces|items|sets|pairs|cases|cartons|kg|"
           r"st(?:ü|u)ck|stk\.?|einheiten|unités|pièces|pcs|unidades|uds\.?|piezas|pezzi|unità|stuks|peças|unidades)(?!\w))?",
    "year": r"(?:19|20)\d{2}",
}
# (keywords, pattern): every match holds one of the "|"-separated keywords, at most 40
# characters after it starts ("%": at most 10, so write percent-first rules under "%").
TERM_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("net", r"net[\s-]?\d{1,3}(?:\sdays)?(?:\s?eom)?(?![\d%]|[.,]\d|\s?(?:g|kg|lbs?|ml|l|oz|units?|pcs|percent)\b)"),
        ("days", r"{days}\s?net"),
        ("payment", r"payment\s(?:within|in|at|of)\s\d{1,3}\sdays"),
        ("%", r"{pct}\s(?:up[\s-]?front|in\sadvance|deposit|down|with\s(?:the\s)?order|on\sorder)(?:,?\s(?:the\s)?(?:remainder|balance|rest)\s(?:on|at|before|upon|after)\s\w+)?"),
        ("deposit", r"deposit\sof\s{pct}(?:[^.\n]{0,30}?,?\s(?:balance|remainder|rest)\s(?:on|at|before|upon|after)\s\w+)?"),
        ("moq", r"moq(?:\s?(?:of|is|:|=|at))?\s?{qty}"),
        ("minimum", r"minimum\sorder(?:\squantity)?(?:\s\(moq\))?(?:\s(?:of|is|at))?:?\s{qty}"),
        ("exclusiv", r"exclusiv(?:e|ity)\b[^.\n]{0,50}?\b(?:until|through|till|thru|to|ending|expires)\s(?:(?:the\s)?end\sof\s)?(?:q[1-4]\s|h[12]\s)?(?:\w+\s)?{year}"),
        ("sole", r"sole\s(?:distribution|distributor|supplier|agency|selling)(?:\srights)?[^.\n]{0,40}?\b(?:until|through|till|to)\s(?:(?:the\s)?end\sof\s)?{year}"),
        ("%", r"{pct}\s(?:(?:volume|annual|year-end|yearly|quarterly|gross|net|target|early[- ]payment|trade|loyalty|"
              r"retro|retrospective|bulk|quantity|promotional|distributor|dealer|reseller|partner|channel|"
              r"prompt[- ]payment|growth|settlement)\s){0,2}(?:rebate|discount|margin|markup|mark-up|commission|bonus|off)"),
        ("rebate|discount|margin|markup|mark-up|commission", r"(?:rebate|discount|margin|markup|mark-up|commission)(?::|\s(?:of|is|at|to|set\sat))?\s(?:(?:up\sto|approximately|about|around)\s)?{pct}"),
    ),
    "de": (
        ("zahlungsziel", r"zahlungsziel(?:\svon)?:?\s{days}(?:\snetto)?"),
        ("zahlbar", r"zahlbar\s(?:innerhalb\s(?:von\s)?|binnen\s|in\s)?{days}(?:\snetto)?"),
        ("netto", r"netto\s{days}|{days}\snetto"),
        ("anzahlung", r"{pct}\sanzahlung(?:,?\s(?:der\s)?rest\s(?:bei|nach|vor)\s\w+)?|anzahlung\s(?:von\s)?{pct}(?:,?\s(?:der\s)?rest\s(?:bei|nach|vor)\s\w+)?"),
        ("mindest", r"mindest(?:bestellmenge|abnahme(?:menge)?|menge|bestellwert)(?:\s(?:liegt\sbei|von|ist|beträgt|:))?:?\s{qty}"),
        ("exklusiv", r"exklusiv\w*[^.\n]{0,60}?\bbis\s(?:(?:zum\s)?ende\s|mitte\s)?(?:\w+\s)?{year}"),
        ("skonto", r"{pct}\sskonto(?:\sbei\szahlung\s(?:binnen|innerhalb\s(?:von\s)?)\s{days})?"),
        ("%", r"{pct}\s\w*(?:rabatt|bonus|marge|provision|nachlass)"),
        ("marge|rabatt|provision|nachlass|bonus", r"\w*(?:marge|rabatt|provision|nachlass|bonus)\s(?:von\s|in\shöhe\svon\s)?{pct}"),
    ),
    "fr": (
        ("jours", r"(?:paiement|règlement|reglement|payable)\s(?:à|a|sous)\s{days}(?:\s(?:fin\sde\smois|net|date\sde\sfacture))?|{days}\s(?:net|fin\sde\smois)"),
        ("acompte", r"acompte\s(?:de\s)?{pct}(?:[^.\n]{0,25}?,?\s(?:le\s)?solde\s(?:à|a)\s(?:la\s)?\w+)?|{pct}\sd'acompte"),
        ("minimum", r"(?:minimum\sde\scommande|commande\sminimum(?:ale)?|quantité\sminimum(?:ale)?)(?:\sde|\s:|:)?\s{qty}"),
        ("exclusiv", r"(?:exclusivité|distribution\sexclusive)[^.\n]{0,60}?\bjusqu(?:'|\s)?(?:à|a|en|au)\s(?:(?:la\s)?fin\s(?:de\s)?)?(?:\w+\s)?{year}"),
        ("escompte", r"{pct}\sd'escompte(?:\spour\spaiement\s(?:à|a)\s{days})?"),
        ("remise|marge|ristourne|commission|rabais|escompte", r"(?:remise|marge|ristourne|commission|rabais|escompte)(?:\s(?:de\s)?fin\sd'année)?\s(?:de\s)?{pct}"),
        ("%", r"{pct}\sde\s(?:remise|marge|ristourne|rabais)"),
    ),
    "es": (
        ("pago", r"pago\s(?:a|en)\s{days}(?:\sfecha\s(?:de\s)?factura)?"),
        ("neto", r"{days}\snetos?"),
        ("adelantado", r"{pct}\s(?:por\sadelantado|de\santicipo)(?:\sy\s(?:el\s)?resto\s(?:a\sla|en\sla|contra)\s\w+)?"),
        ("anticipo", r"anticipo\s(?:del?\s)?{pct}(?:[^.\n]{0,25}?,?\s(?:y\s)?(?:el\s)?resto\s(?:a\sla|en\sla|contra)\s\w+)?"),
        ("mínim", r"(?:pedido\smínimo|cantidad\smínima(?:\sde\spedido)?|compra\smínima)(?:\sde|:)?\s{qty}"),
        ("exclusiv", r"(?:exclusividad|distribución\sexclusiva)[^.\n]{0,60}?\bhasta\s(?:(?:finales|el\sfinal|fin)\sde\s)?(?:\w+\s)?{year}"),
        ("descuento|margen|rappel|comisión|bonificación", r"(?:descuento|margen|rappel|comisión|bonificación)\s(?:del?\s)?{pct}"),
        ("%", r"{pct}\sde\s(?:descuento|margen|rappel|comisión|bonificación)(?:\spor\spronto\spago)?"),
    ),
    "it": (
        ("giorni", r"pagamento\sa\s{days}(?:\s(?:data\sfattura|d\.f\.)(?:\sfine\smese)?)?"),
        ("gg", r"\d{1,3}\sgg\.?\s(?:data\sfattura|d\.f\.|fine\smese)(?:\sfine\smese)?"),
        ("acconto", r"acconto\s(?:del\s)?{pct}(?:,?\s(?:e\s)?(?:il\s)?saldo\s(?:alla|a|al)\s\w+)?"),
        ("minim", r"(?:ordine\sminimo|quantità\sminima(?:\sd'ordine)?|minimo\sd'ordine)(?:\sdi|:)?\s{qty}"),
        ("esclusiv", r"esclusiv\w*[^.\n]{0,60}?\bfino\s(?:al?\s|a\sfine\s)(?:\w+\s)?{year}"),
        ("sconto|margine|ristorno|premio|provvigione|commissione", r"(?:sconto|margine|ristorno|premio(?:\sdi\sfine\sanno)?|provvigione|commissione)\s(?:del\s|di\s)?{pct}(?:\sper\spagamento\santicipato)?"),
        ("%", r"{pct}\sdi\s(?:sconto|margine)"),
    ),
    "nl": (
        ("dagen", r"betaling\sbinnen\s{days}|{days}\snetto|netto\s{days}"),
        ("aanbetaling", r"{pct}\saanbetaling(?:,?\s(?:de\s)?rest\sbij\s\w+)?|aanbetaling\svan\s{pct}(?:,?\s(?:de\s)?rest\sbij\s\w+)?"),
        ("minim", r"(?:minimale\sbestelhoeveelheid|minimumafname|minimum\sbestelling|minimale\safname)(?:\sis|\svan|:)?\s{qty}"),
        ("exclusi", r"exclusi\w*[^.\n]{0,60}?\btot\s(?:(?:eind|het\seinde\svan)\s)?(?:\w+\s)?{year}"),
        ("%", r"{pct}\s(?:korting|marge|bonus|provisie)(?:\sbij\sbetaling\sbinnen\s{days})?"),
        ("korting|marge|bonus|provisie", r"\w*(?:korting|marge|bonus|provisie)\svan\s{pct}"),
    ),
    "pt": (
        ("dias", r"pagamento\sa\s{days}(?:\sap[óo]s\sa\sfatura|\sda\sdata\sda\sfatura)?|{days}\sl[íi]quidos"),
        ("sinal", r"sinal\sde\s{pct}(?:,?\s(?:o\s)?restante\s(?:na|no|à)\s\w+)?"),
        ("mínim", r"(?:encomenda\smínima|quantidade\smínima|pedido\smínimo)(?:\sde|:)?\s{qty}"),
        ("exclusiv", r"exclusiv\w*[^.\n]{0,60}?\baté\s(?:(?:ao\s)?fim\sde\s)?(?:\w+\s)?{year}"),
        ("desconto|margem|rappel|comissão", r"(?:desconto|margem|rappel|comissão)\s(?:de\s)?{pct}"),
        ("%", r"{pct}\sde\s(?:desconto|margem)(?:\spor\spronto\spagamento)?"),
    ),
}


# ---------------------------------------------------------------- compiled per language set
class Compiled:
    """The tables of a set of languages, compiled once (see :func:`compiled`)."""

    def __init__(self, languages: frozenset[str]) -> None:
        langs = [lang for lang in LANGUAGES if lang in languages]
        self.languages = frozenset(langs)

        def words(table: dict[str, tuple[str, ...]]) -> str:
            return trie_pattern({w for lang in langs for w in table.get(lang, ())})

        # The last cue in the window before a number decides: phone cue or anti-cue. One trie
        # for both, so the longest cue at a place wins ("order number" and "number of" are
        # anti-cues that begin or end with the phone cue "number"); phone_cue_kind tells which.
        phone_words = {w for lang in langs for w in PHONE_CUES.get(lang, ())}
        anti_words = {w for lang in langs for w in PHONE_ANTI_CUES.get(lang, ())}
        self.phone_cue_kind = {**{w: "a" for w in anti_words}, **{w: "p" for w in phone_words}}
        self.phone_cue = re.compile(rf"(?<![\w.])(?P<w>{trie_pattern(phone_words | anti_words)})(?![\w])")
        # The same with the character before the cue consumed instead of looked behind at:
        # the scan skips to the characters that can precede a cue in C. phones._cue runs it
        # on its window after a space, and starts after the last digit or line break.
        self.phone_cue_after = re.compile("[^\\w.]" + self.phone_cue.pattern[len("(?<![\\w.])"):])
        cues = [w for table in (PHONE_CUES, PHONE_ANTI_CUES) for lang in langs for w in table.get(lang, ())]
        if not all(w[0].isalpha() and re.match(r"[\w.]", w[-1]) and not re.search(r"[\d\n]", w) for w in cues):
            raise ValueError("a phone cue starts with a letter, ends in one or a dot and holds no digit or line break")
        # Header words of a phone column, and of a column that is no phone (anti-cues
        # with their dots and spaces dropped: "art.-nr." is the header "artnr").
        self.phone_columns = frozenset(w for lang in langs for w in PHONE_COLUMNS.get(lang, ()))
        self.anti_columns = frozenset("".join(re.findall(r"[^\W\d_]+", w)) for lang in langs
                                      for w in PHONE_ANTI_CUES.get(lang, ())) - {""}
        units = [u for lang in langs for u in PRICE_UNITS.get(lang, ())]
        self.price_unit = re.compile(r"(?:\s|\s?(?=/))(?:" + "|".join(units) + r")(?!\w)") if units else None
        self.phone_regions = tuple(dict.fromkeys(r for lang in langs for r in PHONE_REGIONS.get(lang, ())))
        self.secret_cue = re.compile(rf"(?:{words(SECRET_CUES)})(?![\w])")
        # Every cue starts with one of these stems: str.find for them, then the regex at
        # each word start found, costs far less than a regex scan of the whole text.
        stems = sorted({w[:8] for lang in langs for w in SECRET_CUES.get(lang, ())})
        self.secret_stems = tuple(s for s in stems if not any(o != s and s.startswith(o) for o in stems))
        self.secret_stem_set = frozenset(self.secret_stems)
        rules: dict[str, list[str]] = {}
        year_led: dict[str, bool] = {}
        for lang in langs:
            for hints, pattern in TERM_RULES.get(lang, ()):
                ends_in_year = _ends_in(pattern, "{year}")
                for name, shape in NUMBERS.items():
                    pattern = pattern.replace("{" + name + "}", shape)
                for hint in hints.split("|"):
                    rules.setdefault(hint, []).append(pattern)
                    year_led[hint] = year_led.get(hint, True) and ends_in_year
        # One alternation per keyword; the keyword's presence gates the scan.
        self.terms = tuple((hint, re.compile(r"\b(?:" + "|".join(f"(?:{p})" for p in pats) + ")"))
                           for hint, pats in rules.items())
        self.term_hints = frozenset(rules)
        # Per keyword, the word starts its alternation can match at: those whose character
        # can begin a match (WORD_START_RE where that is not known).
        self.term_starts = {hint: _word_starts(regex.pattern) for hint, regex in self.terms}
        # Per keyword, keywords one of which begins every match of its alternation (each
        # head stands for the longest keyword it starts with), or None: the scan then
        # tries only where they occur instead of at every word start near the keyword.
        self.term_heads = {hint: _keyword_heads(regex.pattern, rules) for hint, regex in self.terms}
        # Keywords every match of whose alternation ends in a {year}: where no year-shaped
        # number follows an occurrence within the span a match may take, no start can match
        # (exclusivity clauses: "exclusive ... until the end of 2027").
        self.term_years = frozenset(hint for hint, flag in year_led.items() if flag)


YEAR_RE = re.compile(NUMBERS["year"])


def _ends_in(pattern: str, token: str) -> bool:
    """Whether every match of ``pattern`` (a TERM_RULES row, placeholders unexpanded) ends
    with what ``token`` matches: the pattern, parsed, is a sequence whose last item is it."""
    if not pattern.endswith(token):
        return False
    marked = pattern[: -len(token)] + "(?P<_end>x)"
    for name, shape in NUMBERS.items():
        marked = marked.replace("{" + name + "}", shape)
    try:
        parsed = _sre_parse.parse(marked)
    except re.error:
        return False
    if not parsed.data:
        return False
    op, av = parsed.data[-1]
    return op is _sre.SUBPATTERN and av[0] == parsed.state.groupdict["_end"]


# A word start as str.isalnum() sees it: an alphanumeric character (the regex's "\w" less
# "_") not preceded by one. Its lookbehind sees the text before ``pos``.
WORD_START_RE = re.compile(r"(?<![^\W_])[^\W_]")
_CATEGORIES = {_sre.CATEGORY_DIGIT: r"\d", _sre.CATEGORY_NOT_DIGIT: r"\D", _sre.CATEGORY_SPACE: r"\s",
               _sre.CATEGORY_NOT_SPACE: r"\S", _sre.CATEGORY_WORD: r"\w", _sre.CATEGORY_NOT_WORD: r"\W"}
_ZERO_WIDTH = (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT)


class _Unknown(Exception):
    pass


def _first_chars(pattern: str) -> str | None:
    """A character class holding every character a match of ``pattern`` (no flags) can
    start with, or None where the parse holds something this does not follow."""
    items: list[str] = []

    def seq(data) -> bool:  # adds the first characters of a sequence; True if it can match ""
        for op, av in data:
            if op in _ZERO_WIDTH:
                continue  # zero width: the next item holds the first character
            if op is _sre.LITERAL:
                items.append(re.escape(chr(av)))
                return False
            if op is _sre.IN:
                for kind, arg in av:
                    if kind is _sre.LITERAL:
                        items.append(re.escape(chr(arg)))
                    elif kind is _sre.RANGE:
                        items.append(re.escape(chr(arg[0])) + "-" + re.escape(chr(arg[1])))
                    elif kind is _sre.CATEGORY and arg in _CATEGORIES:
                        items.append(_CATEGORIES[arg])
                    else:  # NEGATE and the rest
                        raise _Unknown
                return False
            if op is _sre.BRANCH:
                if not any([seq(branch) for branch in av[1]]):  # every branch, not just up to one
                    return False
                continue
            if op is _sre.SUBPATTERN:
                if av[1] or av[2]:  # inline flags
                    raise _Unknown
                if not seq(av[3]):
                    return False
                continue
            if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
                if not seq(av[2]) and av[0] > 0:
                    return False
                continue
            raise _Unknown
        return True

    try:
        empty = seq(_sre_parse.parse(pattern))
    except (_Unknown, re.error):
        return None
    return None if empty or not items else "[" + "".join(items) + "]"


def _literal_heads(pattern: str) -> list[str] | None:
    """Literal strings one of which begins every match of ``pattern`` (no flags), or None
    where a match may begin otherwise or the parse holds something this does not follow.
    A head may be shorter than the literal text a match begins with."""

    def heads(data, prefix: str) -> list[str] | None:
        for op, av in data:
            if op in _ZERO_WIDTH:
                continue  # zero width: the next item holds the next character
            if op is _sre.LITERAL:
                prefix += chr(av)
                continue
            if op is _sre.SUBPATTERN and not av[1] and not av[2]:
                return heads(av[3], prefix)
            if op is _sre.BRANCH:
                out: list[str] = []
                for branch in av[1]:
                    found = heads(branch, prefix)
                    if found is None:
                        return None
                    out += found
                return out
            break
        return [prefix] if prefix else None

    try:
        parsed = _sre_parse.parse(pattern)
    except re.error:
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    return heads(parsed, "")


def _keyword_heads(pattern: str, keywords) -> tuple[str, ...] | None:
    """The keywords among ``keywords`` one of which begins every match of ``pattern``:
    each literal head replaced by the longest keyword it starts with (a keyword occurs
    wherever the head does); None when some head starts with none."""
    found = _literal_heads(pattern)
    if found is None:
        return None
    out = set()
    for head in found:
        best = max((k for k in keywords if head.startswith(k)), key=len, default=None)
        if best is None:
            return None
        out.add(best)
    return tuple(sorted(out))


def _word_starts(pattern: str) -> re.Pattern[str]:
    first = _first_chars(pattern)
    return WORD_START_RE if first is None else re.compile(rf"(?<![^\W_])(?={first})[^\W_]")


_COMPILED: dict[frozenset[str], Compiled] = {}


_ALL = frozenset(LANGUAGES)


def compiled(languages=None) -> Compiled:
    """The compiled tables for ``languages`` (None: every language). Built once per set."""
    if languages is None and _ALL in _COMPILED:  # the common call, once per text scanned
        return _COMPILED[_ALL]
    key = _ALL if languages is None else frozenset(lang.lower() for lang in languages)
    unknown = key - set(LANGUAGES)
    if unknown:
        raise ValueError("unknown redaction language; expected some of " + ", ".join(LANGUAGES))
    found = _COMPILED.get(key)
    if found is None:
        found = _COMPILED[key] = Compiled(key)
    return found
