"""Detectors for commercial data: PRICE amounts and COMMERCIAL_TERM phrases.

PRICE spans cover the amount with its currency marker, an optional range
("$10-$15", "€5 to €8") and an optional per-unit suffix ("/unit", "per kg").
COMMERCIAL_TERM spans cover the whole term phrase ("net 60", "MOQ 500 units",
"12% rebate", "exclusive distributor for the EU").
"""
from __future__ import annotations

import re

from .spans import COMMERCIAL_TERM, PRICE, Span

# Amount: grouped thousands (1,200 / 1.299,00 / 1 200 with nbsp) or plain digits.
_NUM = r"(?:\d{1,3}(?:[,.'\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)(?![\d])"
_MAG = r"(?:\s?(?:k|K|m|M|mn|bn|million|billion|thousand)(?![A-Za-z]))?"
_SYM = r"(?:US\$|AU\$|CA\$|HK\$|NZ\$|S\$|R\$|[ACN]\$|\$|€|£|¥|₹|₩|₽|₺|₪|₫|₱|Fr\.)"
_CODES = (
    "USD EUR GBP JPY CNY RMB CHF CAD AUD NZD INR SEK NOK DKK PLN CZK HUF MXN BRL ZAR SGD HKD KRW TRY "
    "RUB AED SAR ILS THB IDR MYR PHP VND TWD RON BGN"
).split()
_CODE = r"(?:" + "|".join(_CODES) + r")"
_WORDCUR = r"(?:dollars?|euros?|pounds?(?:\ssterling)?|cents?|pence|yen|francs?)"

_PRICE_ATOM_RE = re.compile(
    r"(?<![\w$€£¥])(?:"
    rf"{_SYM}\s?{_NUM}{_MAG}(?:\s?{_CODE}(?![A-Za-z]))?"  # $12.50, US$ 3k, $5 USD
    rf"|{_CODE}\s?{_SYM}?\s?{_NUM}{_MAG}"  # GBP 45, EUR 1.200
    rf"|{_NUM}{_MAG}\s?(?:{_SYM}|{_CODE}(?![A-Za-z])|{_WORDCUR}(?![A-Za-z]))"  # 12,50 €, 1,200 USD
    r")"
)
# "10-" / "10 to " before an amount whose marker comes last ("10-15 USD").
_RANGE_HEAD_RE = re.compile(rf"{_NUM}{_MAG}\s?(?:-|–|—|to)\s?$")
# "-15" / " to 15" after an amount whose marker comes first ("$10-15").
_RANGE_TAIL_RE = re.compile(rf"\s?(?:-|–|—|to)\s?(?:{_SYM}\s?)?{_NUM}{_MAG}(?![\w%])")
_RANGE_JOIN_RE = re.compile(r"\s?(?:-|–|—|to)\s?$")
_UNIT = (
    r"(?:unit|units|pc|pcs|piece|pieces|item|items|kg|g|lb|lbs|oz|ton|tonne|t|l|litre|liter|ml|m|m2|m²|sqm|sqft|ft|"
    r"each|ea|case|carton|pallet|box|pack|dozen|pair|set|roll|seat|user|licen[cs]e|hour|hr|h|day|week|"
    r"month|mo|year|yr|annum|night|page|word|kwh|mwh|sku|order|shipment|container)"
)
_PER_UNIT_RE = re.compile(rf"(?:\s?/\s?{_UNIT}|\s(?:per|a|an)\s{_UNIT}|\s(?:each|ea\.?))(?![A-Za-z])", re.I)


def find_prices(text: str) -> list[Span]:
    atoms = [(m.start(), m.end()) for m in _PRICE_ATOM_RE.finditer(text)]
    if not atoms:
        return []
    merged: list[list[int]] = []
    for start, end in atoms:
        # Join "$10 - $15" / "€5 to €8" into one range span.
        if merged and _RANGE_JOIN_RE.fullmatch(text, merged[-1][1], start):
            merged[-1][1] = end
            continue
        head = _RANGE_HEAD_RE.search(text, max(0, start - 24), start)
        if head and (head.start() == 0 or not text[head.start() - 1].isalnum()):
            start = head.start()
        merged.append([start, end])
    out: list[Span] = []
    for start, end in merged:
        tail = _RANGE_TAIL_RE.match(text, end)
        if tail:
            end = tail.end()
        unit = _PER_UNIT_RE.match(text, end)
        if unit:
            end = unit.end()
        out.append(Span(start, end, PRICE, 0.9))
    return out


_PCT = r"\d{1,3}(?:[.,]\d{1,2})?\s?(?:%|percent\b|pct\b)"
_ADJ = (
    r"(?:volume|annual|year-end|yearly|quarterly|gross|net|target|early[- ]payment|trade|loyalty|retro|"
    r"retrospective|bulk|quantity|promotional|distributor|dealer|reseller|partner|channel|agreed|contribution|"
    r"operating|cash|prompt[- ]payment|growth)"
)
_KIND = r"(?:rebate|discount|margin|markup|mark-up|commission|kickback|bonus|off)"
_REGION = r"(?:the\s)?[A-Z][\w-]*(?:\s(?:and|&|of)\s[A-Z][\w-]*|\s[A-Z][\w-]*)*"
_QTY = r"(?:\d{1,3}(?:[,.\u00a0]\d{3})+|\d+)(?:\s?k)?"
_QTY_UNIT = (
    r"(?:\s(?:units?|pcs|pieces|cases|cartons|pallets|kg|tonnes|tons|boxes|items|sets|pairs|rolls|"
    r"meters|metres|bottles|cans|bags|packs|dozen|containers|licen[cs]es|seats))?"
)
_TERM_RE = re.compile(
    r"(?<![\w/])(?:"
    r"(?:\d{1,2}(?:[.,]\d{1,2})?%?/\d{1,2},?\s)?(?i:net)[\s-]?\d{1,3}(?:\sdays)?(?:\s?EOM)?"
    r"(?!\d|[.,]\d|%|\s?(?:g|kg|lbs?|ml|l|oz|units?|pcs|%|percent)\b)"
    rf"|\d{{1,3}}\sdays\snet"
    rf"|MOQ(?:\s?(?:of|is|:|=|at))?\s?{_QTY}{_QTY_UNIT}"
    rf"|(?i:minimum\sorder(?:\squantity)?(?:\s\(MOQ\))?(?:\s(?:of|is|at))?:?)\s{_QTY}{_QTY_UNIT}"
    rf"|{_PCT}\s(?:{_ADJ}\s){{0,2}}{_KIND}"
    rf"|(?:{_ADJ}\s)?(?:rebate|discount|margin|markup|mark-up|commission):?\s(?:(?:of|is|at|to|set\sat)\s)?"
    rf"(?:(?:up\sto|approximately|about|roughly|around)\s)?{_PCT}"
    rf"|[Ee]xclusive\s(?:distributor|distribution|supplier|supply|reseller|partner|agent|licen[cs]e|rights|dealer|"
    rf"representation)(?:\s(?:agreement|rights|deal|contract))?\s(?:for|in|across|within|covering|throughout)\s{_REGION}"
    rf"|[Ee]xclusivity\s(?:until|through|till|thru|to|ending|ends|expires)\s(?:(?:the\s)?end\sof\s)?"
    r"(?:Q[1-4]\s|H[12]\s|(?:January|February|March|April|May|June|July|August|September|October|November|"
    r"December)\s(?:\d{1,2},?\s)?)?(?:19|20)\d{2}"
    rf"|[Ee]xclusivity\s(?:period\s)?(?:of|for)\s\d{{1,2}}\s(?:years?|months?)"
    rf"|[Ee]xclusivity\s(?:in|for|across|covering)\s{_REGION}"
    r")"
)


def find_commercial_terms(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), COMMERCIAL_TERM, 0.85) for m in _TERM_RE.finditer(text)]
