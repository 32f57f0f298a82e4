"""Hypothesis settings for every property-based test: bounded by default, heavier on demand.

The default profile keeps ``make test`` quick and reproducible (the same examples on every run
and every CI machine). ``HYPOTHESIS_PROFILE=fuzz`` (what ``make fuzz`` sets) selects thousands
of fresh examples for a long run. The profiles are defined here only; ``tests/conftest.py``
loads the selected one, and a costly property asks for fewer quick examples with
:func:`fuzz_settings`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "HYPOTHESIS_PROFILE"
FUZZ = "fuzz"
DEFAULT = "default"
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    DEFAULT,
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_RELAXED,
)
settings.register_profile(
    FUZZ, max_examples=5000, deadline=None, database=None, suppress_health_check=_RELAXED
)


def fuzzing() -> bool:
    """Whether the long ``fuzz`` run was asked for."""
    return os.environ.get(PROFILE_ENV) == FUZZ


def load() -> None:
    """Load the profile ``HYPOTHESIS_PROFILE`` names (the default one when unset)."""
    settings.load_profile(os.environ.get(PROFILE_ENV, DEFAULT))


def fuzz_settings(quick_examples: int | None = None) -> settings:
    """The settings of one property: the ``fuzz`` profile if selected, else the default one
    (with ``quick_examples`` examples when given, for the costlier properties)."""
    if fuzzing():
        return settings.get_profile(FUZZ)
    quick = settings.get_profile(DEFAULT)
    return quick if quick_examples is None else settings(quick, max_examples=quick_examples)
