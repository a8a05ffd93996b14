"""``phonenumbers``' validity test, rebuilt on its metadata with patterns compiled once.

``valid_number(country_code, nsn)`` gives the same verdict as
``is_valid_number_for_region(n, main_region) or is_valid_number(n)`` for a
``PhoneNumber`` ``n`` with that country code and national significant number,
at a fraction of the cost: phonenumbers looks up (and, once they fall
out of ``re``'s 512-entry cache, recompiles) each metadata pattern on every
check and walks its metadata objects in Python. The steps mirror
``phonenumberutil``: ``is_valid_number_for_region``, ``_number_type_helper``,
``_is_number_matching_desc`` and ``_region_code_for_number_from_list``.
Rules are built per country code on first use and never change afterwards;
``tests/redaction/test_redaction_phonevalid.py`` checks them against
phonenumbers itself.
"""
from __future__ import annotations

import re

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

_NON_GEO = "001"  # phonenumbers' REGION_CODE_FOR_NON_GEO_ENTITY
# The number types _number_type_helper tries after the general description;
# mobile is tried only when its pattern differs from the fixed-line one.
_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
               "voicemail", "fixed_line")


def _desc(desc) -> tuple[frozenset[int] | None, str] | None:
    """(possible lengths or None for any, pattern), or None where the desc can never match."""
    if desc is None or not desc.national_number_pattern:
        return None
    return (frozenset(desc.possible_length) if len(desc.possible_length) > 0 else None,
            desc.national_number_pattern)


class _Rules:
    """``_number_type_helper(nsn, metadata) != UNKNOWN`` for one metadata object."""

    __slots__ = ("_by_length", "_general", "_general_re", "_types")

    def __init__(self, metadata) -> None:
        self._general = _desc(metadata.general_desc)
        self._general_re = re.compile(self._general[1]) if self._general else None
        descs = [_desc(getattr(metadata, name)) for name in _TYPE_DESCS]
        if not metadata.same_mobile_and_fixed_line_pattern:
            descs.append(_desc(metadata.mobile))
        self._types = [d for d in descs if d is not None]
        self._by_length: dict[int, re.Pattern[str] | None] = {}

    def _types_for(self, length: int) -> re.Pattern[str] | None:
        # One alternation of the type patterns that allow this length: it
        # fullmatches exactly when one of them does (the metadata patterns hold
        # no anchors, groups references or flags).
        patterns = [p for lengths, p in self._types if lengths is None or length in lengths]
        found = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self._by_length[length] = found
        return found

    def ok(self, nsn: str) -> bool:
        general = self._general
        if general is None or (general[0] is not None and len(nsn) not in general[0]):
            return False
        if self._general_re.fullmatch(nsn) is None:
            return False
        length = len(nsn)
        types = self._by_length[length] if length in self._by_length else self._types_for(length)
        return types is not None and types.fullmatch(nsn) is not None


def _region_metadata(country_code: int, region: str | None):
    """The metadata ``is_valid_number_for_region(n, region)`` tests against, or None
    where that call is always False."""
    if region is None:
        return None
    region = region.upper()
    if region == _NON_GEO:
        metadata = PhoneMetadata.metadata_for_nongeo_region(country_code, None)
    else:
        metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or (region != _NON_GEO and metadata.country_code != country_code):
        return None
    return metadata


class _Country:
    """Everything ``valid_number`` needs for one country calling code."""

    __slots__ = ("main", "pick", "regions")

    def __init__(self, country_code: int) -> None:
        rules: dict[int, _Rules] = {}  # by id(metadata): one compiled set per region

        def rules_for(metadata) -> _Rules | None:
            if metadata is None:
                return None
            if id(metadata) not in rules:
                rules[id(metadata)] = _Rules(metadata)
            return rules[id(metadata)]

        regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
        self.main = rules_for(_region_metadata(country_code, (regions or ("ZZ",))[0]))
        self.regions = None if regions is None else len(regions)
        # For region_code_for_number over several regions: (leading digits,
        # rules for the type test, rules for the final validity test).
        self.pick: list[tuple[re.Pattern[str] | None, _Rules, _Rules | None]] = []
        if regions is not None and len(regions) > 1:
            for region in regions:
                metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
                if metadata is None:
                    continue
                lead = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
                final = rules_for(_region_metadata(country_code, region))
                self.pick.append((lead, rules_for(metadata), final))


_COUNTRIES: dict[int, _Country] = {}


def valid_number(country_code: int, nsn: str) -> bool:
    """phonenumbers' verdict for a number with this country code and national significant number."""
    country = _COUNTRIES.get(country_code)
    if country is None:
        country = _COUNTRIES[country_code] = _Country(country_code)
    if country.main is not None and country.main.ok(nsn):
        return True
    if country.regions is None:
        return False  # no region: is_valid_number is False
    if country.regions == 1:
        return False  # its only region is the main one, tried above
    for lead, rules, final in country.pick:
        if lead is not None:
            if lead.match(nsn):
                return final is not None and final.ok(nsn)
        elif rules.ok(nsn):
            return final is not None and final.ok(nsn)
    return False
