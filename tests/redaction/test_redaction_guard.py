"""The output guard's cheap path (pre-checks of released pieces, cue zones only where a cue
stem occurs, cuts found in one pass) gives what the plain guard gave, for any chunking."""
import re
from re import _constants as sre, _parser as sre_parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redaction import OutputGuard, pii, secrets
from redaction.detect import scan
from redaction.needles import Hits
from redaction.restore import Segment, merge_plain
from redaction.rules import SECRET_PROVIDERS, compiled
from redaction.spans import CREDIT_CARD, SECRET, resolve_cands

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- the plain guard, as it was
_TOKEN_BEFORE_WS_RE = re.compile(r"\S+(?=\s)")
_HOT_END_RE = re.compile(r"(?:\d|[:=\"'`]|(?i:password|passwd|pwd|secret|key|token|bearer))$")
_PEM_END_RE = re.compile(r"-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
MASKS = {SECRET: "[REDACTED SECRET]", CREDIT_CARD: "[REDACTED CARD]"}


def _held(buf):
    low = buf.lower()
    zones = [(m.end(), m.end() + secrets.CUE_REACH) for m in secrets.cue_matches(low, compiled(), Hits.direct(low))]
    i = buf.find("-----BEGIN")
    while i >= 0:
        end = _PEM_END_RE.search(buf, i)
        zones.append((i, end.end() if end else len(buf) + 1))
        i = buf.find("-----BEGIN", i + 1)
    return zones


def _safe_cuts(buf, base):
    cuts = [m.end() for m in _TOKEN_BEFORE_WS_RE.finditer(buf, base) if not _HOT_END_RE.search(m.group())]
    zones = _held(buf) if cuts else []
    return [c for c in cuts if not any(a <= c < b for a, b in zones)]


class PlainGuard:
    """OutputGuard before its fast paths: every cut from a regex scan of the whole buffer,
    every cue stem found with str.find, every released piece scanned."""

    def __init__(self, max_holdback=1024):
        self._max, self._buf, self.counts = max_holdback, "", {}

    def feed(self, chunk):
        buf = self._buf + chunk
        cuts = _safe_cuts(buf, 0)
        out, start, pos = [], 0, 0
        while True:
            k = max((i for i, c in enumerate(cuts) if c <= pos + self._max), default=-1)
            if k >= 0 and cuts[k] > pos:
                pos = cuts[k]
            elif len(buf) - pos > self._max:
                pos += self._max
                out += self._mask(buf[start:pos])
                start = pos
                cuts = _safe_cuts(buf, pos)
            else:
                break
        rest = buf[pos:]
        pos += len(rest) - len(rest.lstrip())
        out += self._mask(buf[start:pos])
        self._buf = buf[pos:]
        return merge_plain(out)

    def flush(self):
        rest, self._buf = self._buf, ""
        return merge_plain(self._mask(rest))

    def _mask(self, text):
        if not text:
            return []
        out, pos = [], 0
        for start, end, type_, _ in resolve_cands(scan(text, types=(SECRET, CREDIT_CARD))):
            out += [Segment(text[pos:start]), Segment(MASKS[type_], type=type_, masked=True)]
            self.counts[type_] = self.counts.get(type_, 0) + 1
            pos = end
        return out + [Segment(text[pos:])]


PIECES = [
    "4111 1111 1111 1111", "5555-5555-5555-4444", "4111.1111.\n1111.1111", "３７８２ ８２２４ ６３１０ ００５",
    "AKIAIOSFODNN7EXAMPLE", "ghp_R2d2C3poExampleToken0123456789abcdEF", "sk_live_abcdefghij1234",
    "xoxb-1234567890-abc", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "Bearer abcdefghijkl12345",
    "password: hunter2x", "PASSWORD=Tr0ub4dor", "Passwort: Xy12ab34", "mot de passe : abc123XY",
    "la contraseña es Zq81kk9", "la clé du bucket est K8s9Lm2x", "senha: Tr0ub4dor", "wachtwoord = pa55word",
    "the password for the portal is Lagerhaus#77", "api key", "token", "key", "ſecret=abcd1234", "\u212aey: x9y8z7w6",
    "-----BEGIN RSA PRIVATE KEY-----\n" + "A1b2C3d4" * 9 + "\n-----END RSA PRIVATE KEY-----", "-----BEGIN", "-----",
    "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", "x" * 16, "ab1" * 6,
    "the ", "quick", " brown", "fox", "İ", "é", "\u00a0", "\u200b", " ", "  ", "\n", "\t", ", ", ". ", "12", "2024",
    "=", ":", '"', "'", "`", "#", "/", "-", "apikey", "DB_PASSWORD", "auth_token", " = ", "x9y8z7w6",
]
TEXTS = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)
CUTS = st.lists(st.integers(min_value=0, max_value=600), max_size=30)


def chunked(text, cuts):
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0] + points, points + [len(text)])]


def stream(guard, pieces):
    segs = [s for piece in pieces for s in guard.feed_segments(piece)] + guard.flush_segments()
    return merge_plain(segs)


@SETTINGS
@given(TEXTS, CUTS, st.sampled_from([1024, 64, 100]))
def test_guard_matches_the_plain_guard_for_any_chunking(text, cuts, holdback):
    pieces = chunked(text, cuts)
    plain = PlainGuard(holdback)
    expected = merge_plain([s for p in pieces for s in plain.feed(p)] + plain.flush())
    guard = OutputGuard(max_holdback=holdback)
    assert stream(guard, pieces) == expected
    assert guard.masked_counts == plain.counts


@SETTINGS
@given(TEXTS, CUTS)
def test_guard_token_by_token_matches_the_plain_guard(text, cuts):
    # Model streams: mostly one short token per feed.
    pieces = re.findall(r" ?[^\s]{1,4}|\s", text) or [""]
    plain = PlainGuard()
    expected = merge_plain([s for p in pieces for s in plain.feed(p)] + plain.flush())
    assert stream(OutputGuard(), pieces) == expected


# ---------------------------------------------------------------- the pre-checks
@SETTINGS
@given(TEXTS)
def test_pre_checks_never_skip_a_match(text):
    for piece in {text, text[: len(text) // 2], text[len(text) // 3:]}:
        if not secrets.may_hold_secret(piece, piece.lower()):
            assert secrets.scan_secrets(piece) == []
        if not pii.may_hold_card(piece):
            assert pii.scan_cards(piece) == []


def _matches_space(items) -> bool:
    """Whether a character set of a parse (IN's items) takes some whitespace character."""
    spaces = [c for c in map(chr, range(0x3100)) if c.isspace()]
    negate = items and items[0][0] is sre.NEGATE
    categories = {sre.CATEGORY_DIGIT: str.isdecimal, sre.CATEGORY_SPACE: str.isspace,
                  sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_"}
    negated = {sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT, sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
               sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD}

    def takes(c):
        for op, av in items:
            if op is sre.LITERAL and chr(av) == c:
                return True
            if op is sre.RANGE and av[0] <= ord(c) <= av[1]:
                return True
            if op is sre.CATEGORY:
                if av in categories and categories[av](c):
                    return True
                if av in negated and not categories[negated[av]](c):
                    return True
        return False

    return any(takes(c) != bool(negate) for c in spaces)


def longest_space_free_run(data):
    """(may take a space, minimum width, a lower bound of the longest run without a space
    that every match holds) for a parsed pattern."""
    take = False
    width = best = run = 0
    for op, av in data:
        if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue
        if op is sre.LITERAL:
            item = (chr(av).isspace(), 1, 0 if chr(av).isspace() else 1)
        elif op is sre.IN:
            spaced = _matches_space(av)
            item = (spaced, 1, 0 if spaced else 1)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            t, w, b = longest_space_free_run(av[2])
            item = (t, av[0] * w, (b if av[0] else 0) if t else av[0] * w)
        elif op is sre.SUBPATTERN:
            item = longest_space_free_run(av[3])
        elif op is sre.BRANCH:
            alts = [longest_space_free_run(alt) for alt in av[1]]
            item = (any(a[0] for a in alts), min(a[1] for a in alts), min(a[2] for a in alts))
        else:  # ANY, NOT_LITERAL, references...: may take anything
            item = (True, 1, 0)
        t, w, b = item
        take, width = take or t, width + w
        if t:
            best, run = max(best, run, b), 0
        else:
            run += w
    return take, width, max(best, run)


def test_every_keyless_secret_format_is_a_long_run():
    # _PREFIXED_RE is one alternation: the bound holds for its shortest branch.
    patterns = [secrets._AWS_KEY_ID_RE, secrets._JWT_RE, secrets._AWS_SECRET_RE, secrets._PREFIXED_RE]
    patterns += [re.compile(p) for name, _, p, _ in SECRET_PROVIDERS if name != "private-key"]
    for regex in patterns:
        assert longest_space_free_run(sre_parse.parse(regex.pattern))[2] >= secrets.KEYLESS_MIN_RUN, regex.pattern


def test_run_bound_helper():
    assert longest_space_free_run(sre_parse.parse(r"ab[ c]de{3}"))[2] == 4
    assert longest_space_free_run(sre_parse.parse(r"(?:abc|de)\sx"))[2] == 2
    assert longest_space_free_run(sre_parse.parse(r"[^\S\n]{0,3}[A-Z]{4}"))[2] == 4


def test_guard_skips_the_scan_of_plain_prose(monkeypatch):
    import redaction.guard as guard_module  # noqa: PLC0415

    scanned = []
    monkeypatch.setattr(guard_module, "scan", lambda text, **kw: scanned.append(text) or scan(text, **kw))
    g = OutputGuard()
    out = "".join(g.feed(t) for t in re.findall(r" ?\S+|\s", "The quick brown fox jumps over the lazy dog.\n"))
    assert out + g.flush() == "The quick brown fox jumps over the lazy dog.\n" and scanned == []
    g.feed("Use card 4111 1111 1111 1111 now ")
    assert scanned == ["Use card 4111 1111 1111 1111 now "]


KEYED = ["apikey = x9y8z7w6 ok", "DB_PASSWORD : Tr0ub4dor then", "the auth_token = abcd1234 here",
         "my passwd 'zq81kk9' x",
         "clientsecret = s3cr3tv4lue ok", "use Bearer abcdefghijkl12345 now", "card 4111 1111 1111 1111 ok",
         "a 4111\n1111\n1111\n1111 b", "mot de passe : abc123XY fin", "ſecret=abcd1234 x", "\u212aey: x9y8z7w6 y"]


def test_hot_ends_and_cues_fed_in_every_way():
    for text in KEYED:
        for pieces in (list(text), re.findall(r" ?\S+|\s", text), [text]):
            plain = PlainGuard()
            expected = merge_plain([s for p in pieces for s in plain.feed(p)] + plain.flush())
            assert stream(OutputGuard(), pieces) == expected, text


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abkeyKYPASWORDtn1:='\"`_-\u212a\u017fé ")), min_size=1, max_size=14),
       st.integers(0, 3))
def test_hot_end_is_the_regex(token, start):
    import redaction.guard as guard_module  # noqa: PLC0415

    token = "x" * start + token.replace(" ", "")
    if token[start:]:
        assert guard_module._hot(token, start, len(token)) == (_HOT_END_RE.search(token[start:]) is not None)


@settings(max_examples=500, deadline=None)
@given(TEXTS, st.integers(0, 600))
def test_token_cuts_of_a_prefix_hold_for_its_extensions(text, cut):
    import redaction.guard as guard_module  # noqa: PLC0415

    prefix = text[: cut % (len(text) + 1)]
    known = guard_module._token_cuts(prefix)
    assert guard_module._token_cuts(text, 0, known) == guard_module._token_cuts(text)
