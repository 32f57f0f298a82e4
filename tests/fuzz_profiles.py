"""Hypothesis settings for the fuzz tests: bounded by default, heavier on demand.

The default keeps ``pytest`` quick (a few seconds per property). ``HYPOTHESIS_PROFILE=fuzz``
(what ``make fuzz`` sets) selects the ``fuzz`` profile: many more examples, for a long run.
Profiles are registered here, only if nobody registered one of the same name first, and are
applied per test with :func:`fuzz_settings`, so loading this module changes no other test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

PROFILE_ENV = "HYPOTHESIS_PROFILE"
FUZZ = "fuzz"
_QUICK = "keytrail-quick"
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


def _register(name: str, profile: settings) -> None:
    try:
        settings.get_profile(name)
    except InvalidArgument:
        settings.register_profile(name, profile)


_register(
    _QUICK, settings(max_examples=25, deadline=None, database=None, suppress_health_check=_RELAXED)
)
_register(
    FUZZ, settings(max_examples=3000, deadline=None, database=None, suppress_health_check=_RELAXED)
)


def fuzz_settings(quick_examples: int | None = None) -> settings:
    """The settings of one property: the ``fuzz`` profile if selected, else the quick one
    (with ``quick_examples`` examples when given, for the costlier properties)."""
    if os.environ.get(PROFILE_ENV) == FUZZ:
        return settings.get_profile(FUZZ)
    quick = settings.get_profile(_QUICK)
    return quick if quick_examples is None else settings(quick, max_examples=quick_examples)
