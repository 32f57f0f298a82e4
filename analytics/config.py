"""``keytrail.toml``: thresholds, baseline window, model parameters and governed suppressions.

Every key has a default, so no file is needed. Unknown keys are errors (a typo must not silently
disable a threshold). Suppressions must name an owner, a reason and an expiry; expired ones stop
applying and are reported, so an exception never outlives the reason it was granted.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics.detect.baselines import DEFAULT_WINDOW_DAYS, MIN_WINDOW_DAYS
from analytics.detect.incidents import IncidentSettings
from analytics.detect.model import ModelSettings

if TYPE_CHECKING:
    from analytics.publish.export.settings import HecSettings


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Suppression:
    """Silences matching alerts until ``expires``; every field that is set must match (globs)."""

    id: str
    owner: str
    reason: str
    expires: dt.date
    detector: str | None = None
    actor: str | None = None
    key_arn: str | None = None
    account_id: str | None = None
    invoked_by: str | None = None

    MATCH_FIELDS = ("detector", "actor", "key_arn", "account_id", "invoked_by")

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def matches(self, alert: dict[str, Any]) -> bool:
        for name in self.MATCH_FIELDS:
            pattern = getattr(self, name)
            if pattern is None:
                continue
            value = alert.get(name)
            if value is None or not fnmatch.fnmatchcase(str(value), pattern):
                return False
        return True


@dataclass(frozen=True)
class Config:
    baseline_window_days: int = DEFAULT_WINDOW_DAYS
    merge_window_hours: int = 24
    org_accounts: tuple[str, ...] = ()
    model: ModelSettings = field(default_factory=ModelSettings)
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    disabled_detectors: tuple[str, ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    hec: HecSettings = field(default_factory=lambda: _hec_settings())

    def detector_settings(self, detector_id: str, defaults: dict[str, Any]) -> dict[str, Any]:
        return {**defaults, **self.detectors.get(detector_id, {})}


def _expect(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where}: {key} must be {getattr(kind, '__name__', kind)}, got {value!r}"
        )
    return value


def parse(data: dict[str, Any], where: str = "keytrail.toml") -> Config:
    """Validate a parsed TOML document into a :class:`Config`."""
    known = {"baseline", "alerts", "incidents", "organization", "model", "detectors",
             "suppression", "hec"}  # fmt: skip
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}")
    config = Config()
    baseline = data.get("baseline", {})
    _only(baseline, {"window_days"}, f"{where} [baseline]")
    if "window_days" in baseline:
        days = _expect(baseline, "window_days", int, f"{where} [baseline]")
        if days < MIN_WINDOW_DAYS:
            raise ConfigError(f"{where} [baseline]: window_days must be at least {MIN_WINDOW_DAYS}")
        config = replace(config, baseline_window_days=days)
    alerts = data.get("alerts", {})
    _only(alerts, {"merge_window_hours", "disabled_detectors"}, f"{where} [alerts]")
    if "merge_window_hours" in alerts:
        hours = _expect(alerts, "merge_window_hours", int, f"{where} [alerts]")
        if not 1 <= hours <= 24 * 7:
            raise ConfigError(f"{where} [alerts]: merge_window_hours must be 1..168")
        config = replace(config, merge_window_hours=hours)
    if "disabled_detectors" in alerts:
        disabled = _expect(alerts, "disabled_detectors", list, f"{where} [alerts]")
        config = replace(config, disabled_detectors=tuple(str(d) for d in disabled))
    incidents = data.get("incidents", {})
    _only(incidents, {"window_hours", "consequence_days"}, f"{where} [incidents]")
    grouping = IncidentSettings()
    if "window_hours" in incidents:
        hours = _expect(incidents, "window_hours", int, f"{where} [incidents]")
        if not 1 <= hours <= 24 * 7:
            raise ConfigError(f"{where} [incidents]: window_hours must be 1..168")
        grouping = replace(grouping, window_hours=hours)
    if "consequence_days" in incidents:
        days = _expect(incidents, "consequence_days", int, f"{where} [incidents]")
        if not 0 <= days <= 90:
            raise ConfigError(f"{where} [incidents]: consequence_days must be 0..90")
        grouping = replace(grouping, consequence_days=days)
    config = replace(config, incidents=grouping)
    organization = data.get("organization", {})
    _only(organization, {"accounts"}, f"{where} [organization]")
    if "accounts" in organization:
        accounts = _expect(organization, "accounts", list, f"{where} [organization]")
        config = replace(config, org_accounts=tuple(str(a) for a in accounts))
    model = data.get("model", {})
    allowed = {f.name for f in fields(ModelSettings)}
    _only(model, allowed, f"{where} [model]")
    model_values = {}
    for key, value in model.items():
        default = getattr(ModelSettings(), key)
        _expect(model, key, type(default) if not isinstance(default, float) else (int, float),
                f"{where} [model]")  # fmt: skip
        model_values[key] = value
    config = replace(config, model=replace(ModelSettings(), **model_values))
    detectors = data.get("detectors", {})
    if not isinstance(detectors, dict) or not all(isinstance(v, dict) for v in detectors.values()):
        raise ConfigError(f'{where} [detectors]: expected tables like [detectors."KMS.X"]')
    _check_detector_settings(detectors, where)
    config = replace(config, detectors={str(k): dict(v) for k, v in detectors.items()})
    suppressions = []
    for index, entry in enumerate(data.get("suppression", [])):
        spot = f"{where} [[suppression]] #{index + 1}"
        _only(entry, {"id", "owner", "reason", "expires", *Suppression.MATCH_FIELDS}, spot)
        for required in ("id", "owner", "reason", "expires"):
            if required not in entry:
                raise ConfigError(f"{spot}: {required} is required")
        expires = entry["expires"]
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            raise ConfigError(f"{spot}: expires must be a date like 2027-01-31")
        if not any(entry.get(f) for f in Suppression.MATCH_FIELDS):
            raise ConfigError(
                f"{spot}: match at least one of {', '.join(Suppression.MATCH_FIELDS)}"
            )
        matchers = {k: str(entry[k]) for k in Suppression.MATCH_FIELDS if k in entry}
        suppressions.append(
            Suppression(
                id=str(entry["id"]),
                owner=str(entry["owner"]),
                reason=str(entry["reason"]),
                expires=expires,
                **matchers,
            )
        )
    config = replace(config, hec=_parse_hec(data.get("hec", {}), f"{where} [hec]"))
    return replace(config, suppressions=tuple(suppressions))


def _check_detector_settings(detectors: dict[str, Any], where: str) -> None:
    from analytics.detect.detectors.registry import ALL_DETECTORS

    known = {d.id: d.defaults for d in ALL_DETECTORS}
    for detector_id, settings in detectors.items():
        if detector_id not in known:
            raise ConfigError(f"{where} [detectors]: unknown detector {detector_id!r}")
        spot = f'{where} [detectors."{detector_id}"]'
        _only(settings, set(known[detector_id]), spot)
        for key, value in settings.items():
            default = known[detector_id][key]
            if isinstance(value, bool) or not isinstance(value, type(default) | int):
                raise ConfigError(f"{spot}: {key} must be like {default!r}, got {value!r}")


_HEC_KINDS: dict[str, type | tuple[type, ...]] = {
    "url": str, "index": str, "sourcetype": str, "acks": bool, "ack_timeout_seconds": (int, float),
    "ca_bundle": str, "verify": bool, "max_batch_bytes": int, "attempts": int,
}  # fmt: skip


def _hec_settings(**values: Any) -> HecSettings:
    # The export package imports this module (through the detectors): load it when used.
    from analytics.publish.export.settings import HecSettings

    return HecSettings(**values)


def _parse_hec(table: dict[str, Any], where: str) -> HecSettings:
    """``[hec]``: the Splunk HEC settings (never the token: that stays in the environment or a
    Prefect Secret block)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    _only(table, set(_HEC_KINDS), where)
    for key, kind in _HEC_KINDS.items():
        if key in table and ((kind is not bool and isinstance(table[key], bool))
                             or not isinstance(table[key], kind)):  # fmt: skip
            raise ConfigError(f"{where}: {key} must be {getattr(kind, '__name__', 'a number')}, "
                              f"got {table[key]!r}")  # fmt: skip
    settings = _hec_settings(**{key: table[key] for key in _HEC_KINDS if key in table})
    problems = settings.problems()
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}")
    return settings


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def load(path: Path | None) -> Config:
    """Read ``path`` (or return defaults when None)."""
    if path is None:
        return Config()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse(data, str(path))
