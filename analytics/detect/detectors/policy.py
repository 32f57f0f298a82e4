"""Key policies as data: parse one, ask who it lets in, and say what changed between two.

A key policy arrives in CloudTrail as a JSON *string* inside ``requestParameters.policy`` (some
re-exports decode it into an object). IAM's grammar is loose — ``Statement`` may be one object
or a list, ``Principal`` may be ``"*"``, ``{"AWS": "*"}``, ``{"AWS": [...]}`` or
``{"Service": ...}``, ``Action`` a string or a list — and vendor rules have broken on exactly
those variations (an ``==`` between a list and a string never matched). This module flattens
every form into frozen dataclasses so callers compare sets, never raw JSON.

The questions answered are the ones an alert and an audit report need:

* *Is the key open to anyone?* An ``Allow`` to a wildcard principal (or with ``NotPrincipal``)
  whose conditions do not pin the caller down (organisation, account, principal ARN, source
  VPC/IP …), and that no ``Deny`` fences back in.
* *Which outside accounts can use it?* Accounts named by AWS principals of ``Allow``
  statements; the caller decides which accounts count as "inside".
* *What changed?* :func:`diff` of two policies, with :meth:`PolicyDiff.phrases` to say it in
  words.

Everything here is pure and total: a policy that is not valid JSON, or not shaped like a
policy, parses to an empty :class:`Policy` with ``error`` set instead of raising.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Condition",
    "Policy",
    "PolicyDiff",
    "Principal",
    "Statement",
    "account_of",
    "diff",
    "parse_policy",
]

WILDCARD = "*"
_ACCOUNT = re.compile(r"^\d{12}$")
_PRINCIPAL_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):")
_MAX_PHRASE_ITEMS = 5

# Condition keys that pin a request to known callers or networks when matched positively.
_RESTRICTING_KEYS = frozenset(
    {
        "aws:principalorgid", "aws:principalorgpaths", "aws:principalaccount",
        "aws:principalarn", "aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid",
        "aws:sourceorgpaths", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceip",
        "aws:vpcsourceip", "aws:userid", "aws:username", "kms:calleraccount",
    }
)  # fmt: skip
_ARN_VALUED_KEYS = frozenset({"aws:principalarn", "aws:sourcearn"})
_POSITIVE_OPERATORS = frozenset(
    {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike", "ipaddress"}
)
_NEGATIVE_OPERATORS = frozenset(
    {"stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals",
     "arnnotlike", "notipaddress"}
)  # fmt: skip


@dataclass(frozen=True, order=True)
class Principal:
    """One principal of a statement: ``kind`` is ``AWS``, ``Service``, ``Federated``,
    ``CanonicalUser`` or ``*`` (the bare ``"Principal": "*"`` form)."""

    kind: str
    value: str

    @property
    def is_wildcard(self) -> bool:
        return self.value == WILDCARD and self.kind in (WILDCARD, "AWS")

    @property
    def account(self) -> str | None:
        """The 12-digit account of an AWS principal, None when it cannot be placed."""
        return account_of(self.value) if self.kind == "AWS" else None

    def __str__(self) -> str:
        if self.is_wildcard:
            return WILDCARD
        if self.kind == "AWS":
            return self.value
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True, order=True)
class Condition:
    """One ``operator: {key: values}`` entry; ``operator`` keeps its ForAnyValue:/IfExists."""

    operator: str
    key: str
    values: tuple[str, ...]

    @property
    def _base_operator(self) -> str:
        op = self.operator.lower()
        for prefix in ("foranyvalue:", "forallvalues:"):
            op = op.removeprefix(prefix)
        return op

    def _concrete_values(self) -> bool:
        """Every value names something specific (no wildcard standing in for the account)."""
        if not self.values:
            return False
        for value in self.values:
            if self.key.lower() in _ARN_VALUED_KEYS:
                parts = value.split(":")
                if len(parts) < 5 or not _ACCOUNT.match(parts[4]):
                    return False
            elif "*" in value or "?" in value:
                return False
        return True

    def _pins(self, operators: frozenset[str]) -> bool:
        op = self.operator.lower()
        return (
            self.key.lower() in _RESTRICTING_KEYS
            and self._base_operator in operators
            # IfExists passes when the key is absent; ForAllValues passes on an empty set.
            and not op.endswith("ifexists")
            and not op.startswith("forallvalues:")
            and self._concrete_values()
        )

    @property
    def restricts_caller(self) -> bool:
        """In an Allow: the statement only applies to named orgs/accounts/ARNs/networks."""
        return self._pins(_POSITIVE_OPERATORS)

    @property
    def excludes_outsiders(self) -> bool:
        """In a Deny: the statement denies everyone *not* in named orgs/accounts/networks."""
        return self._pins(_NEGATIVE_OPERATORS)

    def __str__(self) -> str:
        return f"{self.operator} {self.key} {', '.join(self.values)}"


@dataclass(frozen=True)
class Statement:
    sid: str | None
    effect: str
    principals: frozenset[Principal]
    actions: frozenset[str]
    conditions: frozenset[Condition]
    not_principal: bool = False
    not_action: bool = False

    @property
    def is_allow(self) -> bool:
        return self.effect.lower() == "allow"

    @property
    def has_wildcard_principal(self) -> bool:
        # An Allow with NotPrincipal applies to everyone except those listed.
        return self.not_principal or any(p.is_wildcard for p in self.principals)

    @property
    def is_public(self) -> bool:
        """An Allow that reaches anyone, not narrowed by a restricting condition."""
        return (
            self.is_allow
            and self.has_wildcard_principal
            and not any(c.restricts_caller for c in self.conditions)
        )

    def action_labels(self) -> frozenset[str]:
        """Actions as shown to a person (``all but kms:X`` for NotAction)."""
        if self.not_action:
            return frozenset({f"every action except {', '.join(sorted(self.actions))}"})
        return self.actions

    def covers(self, action: str) -> bool:
        """Does this statement's Action (or NotAction) match ``action``?"""
        matched = any(_action_matches(pattern, action) for pattern in self.actions)
        return not matched if self.not_action else matched

    def _canonical(self) -> tuple[object, ...]:
        return (
            self.effect.lower(),
            self.not_principal,
            tuple(sorted(self.principals)),
            self.not_action,
            tuple(sorted(a.lower() for a in self.actions)),
            tuple(sorted(self.conditions)),
        )


@dataclass(frozen=True)
class Policy:
    """A parsed key policy. ``error`` says why nothing could be read from the text."""

    statements: tuple[Statement, ...] = ()
    error: str | None = None

    @property
    def canonical(self) -> frozenset[tuple[object, ...]]:
        """What the policy means, ignoring Sid, Version, order and formatting."""
        return frozenset(st._canonical() for st in self.statements)

    def _fenced(self, action: str) -> bool:
        """A Deny to everyone outside named orgs/accounts covers ``action``."""
        return any(
            not st.is_allow
            and st.has_wildcard_principal
            and st.covers(action)
            and any(c.excludes_outsiders for c in st.conditions)
            for st in self.statements
        )

    def public_actions(self) -> frozenset[str]:
        """Actions anyone may call: public Allows not fenced in by a Deny."""
        found: set[str] = set()
        for st in self.statements:
            if not st.is_public:
                continue
            if st.not_action:
                found |= st.action_labels()
                continue
            found.update(action for action in st.actions if not self._fenced(action))
        return frozenset(found)

    @property
    def is_public(self) -> bool:
        return bool(self.public_actions())

    def accounts(self) -> frozenset[str]:
        """Accounts whose principals an Allow statement names."""
        return frozenset(
            account
            for st in self.statements
            if st.is_allow
            for p in st.principals
            if (account := p.account) is not None
        )

    def unplaced_principals(self) -> frozenset[str]:
        """AWS principals of Allows whose account cannot be read (e.g. AROA… unique IDs)."""
        return frozenset(
            p.value
            for st in self.statements
            if st.is_allow
            for p in st.principals
            if p.kind == "AWS" and not p.is_wildcard and p.account is None
        )

    def grants(self) -> frozenset[tuple[str, str]]:
        """(principal, action) pairs that Allow statements name, conditions aside."""
        return frozenset(
            (str(p) if not st.not_principal else f"everyone except {p}", action)
            for st in self.statements
            if st.is_allow
            for p in st.principals
            for action in st.action_labels()
        )


@dataclass(frozen=True)
class PolicyDiff:
    """What changed from ``old`` (None when no earlier policy is known) to ``new``."""

    old: Policy | None
    new: Policy
    public_added: frozenset[str] = field(default_factory=frozenset)
    public_kept: frozenset[str] = field(default_factory=frozenset)
    public_removed: frozenset[str] = field(default_factory=frozenset)
    accounts_added: frozenset[str] = field(default_factory=frozenset)
    accounts_removed: frozenset[str] = field(default_factory=frozenset)
    grants_added: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    grants_removed: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @property
    def changed(self) -> bool:
        return self.old is None or self.old.canonical != self.new.canonical

    @property
    def widened(self) -> bool:
        """Someone can do something they could not do before (or we cannot tell)."""
        return self.old is None or bool(
            self.public_added or self.accounts_added or self.grants_added
        )

    def outside_accounts_added(self, inside: Iterable[str]) -> tuple[str, ...]:
        inside_set = set(inside)
        return tuple(sorted(a for a in self.accounts_added if a not in inside_set))

    def phrases(self, inside: Iterable[str] = ()) -> list[str]:
        """The change in plain words, most serious first."""
        inside_set = frozenset(inside)
        out: list[str] = []
        if self.new.error is not None:
            # Nothing can be said about access when the new text is unreadable; listing every
            # old grant as "lost" would be wrong.
            return [f"the new policy could not be read ({self.new.error})"]
        if self.public_added:
            out.append(f"now allows * to {_listed(self.public_added)}")
        if self.public_kept:
            out.append(f"still allows * to {_listed(self.public_kept)}")
        outside = self.outside_accounts_added(inside_set)
        if outside:
            noun = "account" if len(outside) == 1 else "accounts"
            out.append(f"new outside {noun} {_listed(outside)}")
        if self.old is None:
            out.append("no earlier policy of this key is known to compare with")
            return out
        public = self.public_added | self.public_kept
        added = _by_principal(
            # "now allows * to X" already said it; a wildcard grant that is not public is one
            # held in check by its conditions, which is worth saying differently.
            (principal if principal != WILDCARD else "* (under conditions)", action)
            for principal, action in self.grants_added
            if not (principal == WILDCARD and action in public)
        )
        for principal, actions in list(added.items())[:_MAX_PHRASE_ITEMS]:
            out.append(f"{principal} gains {_listed(actions)}")
        if len(added) > _MAX_PHRASE_ITEMS:
            out.append(f"{len(added) - _MAX_PHRASE_ITEMS} more principals gain access")
        removed = _by_principal(
            (principal if principal != WILDCARD else "* (under conditions)", action)
            for principal, action in self.grants_removed
            if not (principal == WILDCARD and action in self.public_removed)
        )
        for principal, actions in list(removed.items())[:_MAX_PHRASE_ITEMS]:
            out.append(f"{principal} loses {_listed(actions)}")
        if len(removed) > _MAX_PHRASE_ITEMS:
            out.append(f"{len(removed) - _MAX_PHRASE_ITEMS} more principals lose access")
        if self.public_removed:
            out.append(f"no longer allows * to {_listed(self.public_removed)}")
        if self.changed and not (added or removed or self.public_removed):
            out.append("conditions or statement details changed, principals and actions did not")
        return out


def diff(old: Policy | None, new: Policy) -> PolicyDiff:
    """Compare two policies; ``old=None`` means the earlier policy is unknown."""
    new_public = new.public_actions()
    if old is None:
        return PolicyDiff(
            old=None,
            new=new,
            public_added=new_public,
            accounts_added=new.accounts(),
            grants_added=new.grants(),
        )
    old_public = old.public_actions()
    return PolicyDiff(
        old=old,
        new=new,
        public_added=new_public - old_public,
        public_kept=new_public & old_public,
        public_removed=old_public - new_public,
        accounts_added=new.accounts() - old.accounts(),
        accounts_removed=old.accounts() - new.accounts(),
        grants_added=new.grants() - old.grants(),
        grants_removed=old.grants() - new.grants(),
    )


def parse_policy(text: str | bytes | Mapping[str, Any] | None) -> Policy:
    """Parse a key policy given as JSON text (or an already-decoded object). Never raises."""
    if text is None:
        return Policy(error="no policy")
    document: Any = text
    try:
        # Some copies encode the policy twice (a JSON string holding JSON text).
        for _ in range(2):
            if isinstance(document, str | bytes):
                document = json.loads(document)
    except (ValueError, RecursionError) as exc:
        return Policy(error=f"not valid JSON: {str(exc)[:80]}")
    if not isinstance(document, Mapping):
        return Policy(error=f"a policy is a JSON object, not {type(document).__name__}")
    raw_statements = document.get("Statement")
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        return Policy(error="the policy has no Statement")
    statements = tuple(_statement(raw) for raw in raw_statements if isinstance(raw, Mapping))
    return Policy(statements=statements)


def account_of(principal: str) -> str | None:
    """The account of an account ID or IAM/STS principal ARN; None for anything else."""
    if _ACCOUNT.match(principal):
        return principal
    match = _PRINCIPAL_ARN_ACCOUNT.match(principal)
    return match.group(1) if match else None


def _strings(value: Any) -> tuple[str, ...]:
    """A string or list of strings as a tuple; anything else as its JSON text."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v if isinstance(v, str) else json.dumps(v) for v in value)
    return (json.dumps(value, sort_keys=True),)


def _principals(value: Any) -> frozenset[Principal]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({Principal(WILDCARD if value == WILDCARD else "AWS", value)})
    if isinstance(value, Mapping):
        return frozenset(
            Principal(str(kind), item) for kind, items in value.items() for item in _strings(items)
        )
    return frozenset({Principal("unreadable", json.dumps(value, sort_keys=True))})


def _actions(value: Any) -> frozenset[str]:
    return frozenset(_normalise_action(a) for a in _strings(value))


def _normalise_action(action: str) -> str:
    """Service prefixes are case-insensitive in IAM: 'KMS:Decrypt' is 'kms:Decrypt'."""
    prefix, sep, name = action.partition(":")
    return f"{prefix.lower()}{sep}{name}" if sep else action


def _conditions(value: Any) -> frozenset[Condition]:
    if not isinstance(value, Mapping):
        return frozenset()
    return frozenset(
        Condition(str(operator), str(key), _strings(values))
        for operator, entries in value.items()
        if isinstance(entries, Mapping)
        for key, values in entries.items()
    )


def _statement(raw: Mapping[str, Any]) -> Statement:
    not_principal = "NotPrincipal" in raw and "Principal" not in raw
    not_action = "NotAction" in raw and "Action" not in raw
    sid = raw.get("Sid")
    return Statement(
        sid=sid if isinstance(sid, str) else None,
        effect=str(raw.get("Effect", "")),
        principals=_principals(raw.get("NotPrincipal" if not_principal else "Principal")),
        actions=_actions(raw.get("NotAction" if not_action else "Action")),
        conditions=_conditions(raw.get("Condition")),
        not_principal=not_principal,
        not_action=not_action,
    )


def _action_matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def _listed(items: Iterable[str]) -> str:
    ordered = sorted(items)
    shown = ", ".join(ordered[:_MAX_PHRASE_ITEMS])
    more = len(ordered) - _MAX_PHRASE_ITEMS
    return f"{shown} and {more} more" if more > 0 else shown


def _by_principal(grants: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for principal, action in sorted(grants):
        grouped.setdefault(principal, []).append(action)
    return grouped
