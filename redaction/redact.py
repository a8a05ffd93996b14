"""Policy-driven redaction of one text field into placeholders."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Collection, Mapping

from .detect import DEFAULT_REGION, scan
from .placeholders import PLACEHOLDER_RE, PlaceholderMap
from .rules import compiled
from .spans import BUILTIN_TYPES, LITERAL, resolve_cands
from .terms import TermMatcher

ACTIONS = frozenset({"redact", "reject", "allow"})
DEFAULT_ACTION = "redact"


@dataclass(frozen=True)
class Policy:
    """type -> action ("redact" | "reject" | "allow"); unlisted types use ``default``.

    ``region`` is the phone region tried first for national-format numbers;
    ``languages`` (a collection of codes from ``rules.LANGUAGES``, None for all) picks
    the languages whose cue words and phrase rules apply.
    """

    actions: Mapping[str, str] = field(default_factory=dict)
    default: str = DEFAULT_ACTION
    region: str = DEFAULT_REGION
    languages: Collection[str] | None = None

    def __post_init__(self) -> None:
        for type_, action in self.actions.items():
            if action not in ACTIONS:
                raise ValueError(f"invalid policy action for type {type_!s}; expected redact, reject or allow")
        if self.default not in ACTIONS:
            raise ValueError("invalid default policy action; expected redact, reject or allow")
        object.__setattr__(self, "actions", MappingProxyType(dict(self.actions)))
        if self.languages is not None:
            compiled(self.languages)  # unknown codes fail here, not on the first request
            object.__setattr__(self, "languages", frozenset(lang.lower() for lang in self.languages))

    @classmethod
    def coerce(cls, policy: "Policy | Mapping[str, str]") -> "Policy":
        """Accept a Policy or a plain mapping; a ``"*"`` key sets the default."""
        if isinstance(policy, Policy):
            return policy
        actions = dict(policy)
        default = actions.pop("*", DEFAULT_ACTION)
        return cls(actions, default)

    def action(self, type_: str) -> str:
        return self.actions.get(type_, self.default)


class RedactionRejected(Exception):
    """Raised by callers when a policy "reject" type was found. Names types only."""

    def __init__(self, types) -> None:
        self.types = tuple(sorted(set(types)))
        super().__init__("request rejected by redaction policy; found: " + ", ".join(self.types))


@dataclass(frozen=True)
class Redacted:
    """Result of :func:`redact`. Its repr shows counts only, never text or values."""

    text: str
    mapping: PlaceholderMap
    counts: Mapping[str, int]
    rejected: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Redacted(len={len(self.text)}, counts={dict(self.counts)!r}, rejected={self.rejected!r})"

    def raise_if_rejected(self) -> None:
        if self.rejected:
            raise RedactionRejected(self.rejected)


def redact(
    text: str,
    policy: Policy | Mapping[str, str],
    *,
    terms: TermMatcher | None = None,
    mapping: PlaceholderMap | None = None,
) -> Redacted:
    """Replace detected values with placeholders according to ``policy``.

    "reject" types are replaced too (so ``.text`` never carries them) and listed
    in ``.rejected``. Input text that already has placeholder shape is escaped
    to a ``[LITERAL_N]`` placeholder restoring to itself, so the model only ever
    sees placeholders issued by ``mapping``.
    """
    pol = Policy.coerce(policy)
    if mapping is None:
        mapping = PlaceholderMap()
    # Allowed types are not detected at all: their spans could only be dropped.
    types = [t for t in BUILTIN_TYPES if pol.action(t) != "allow"]
    candidates = scan(text, terms=terms, region=pol.region, languages=pol.languages,
                      types=None if len(types) == len(BUILTIN_TYPES) else types)
    if terms and (pol.default == "allow" or "allow" in pol.actions.values()):  # a term type may be allowed
        action, default = pol.actions.get, pol.default
        candidates = [c for c in candidates if action(c[2], default) != "allow"]
    if "[" in text:
        candidates += [(m.start(), m.end(), LITERAL, 1.0) for m in PLACEHOLDER_RE.finditer(text)]
    spans = resolve_cands(candidates)

    redacted, counts = mapping.substitute(text, spans)
    counts.pop(LITERAL, None)  # escapes are not counted and no policy applies to them
    rejected = sorted(t for t in counts if pol.action(t) == "reject")
    return Redacted(redacted, mapping, MappingProxyType(counts), tuple(rejected))
