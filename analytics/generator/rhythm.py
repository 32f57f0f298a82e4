"""When traffic happens: daily volume budgets, the diurnal curve and office hours.

Real KMS traffic follows the business: quiet nights, a midday peak, weekends at a fraction of a
weekday, and people only at their desks on weekdays. Budgets are computed once for the whole
window so the total is exactly ``events_per_day * days`` before scenarios add their few events.
"""

from __future__ import annotations

import calendar
import math
from datetime import date, timedelta

import numpy as np

from analytics.generator.randomness import np_rng_for

WEEKEND_SHARE = 0.4  # a weekend day carries ~40 % of a weekday's volume
OFFICE_HOURS = range(8, 18)  # UTC; the company works from Europe
SECONDS_PER_DAY = 86_400

_WEEKDAY_CURVE = np.array(
    [0.30 + 0.70 * math.exp(-((((h + 0.5) - 13.0) / 4.2) ** 2)) for h in range(24)]
)
_WEEKEND_CURVE = np.array(
    [0.45 + 0.55 * math.exp(-((((h + 0.5) - 14.0) / 5.0) ** 2)) for h in range(24)]
)


def is_weekend(day: date) -> bool:
    return day.weekday() >= 5


def hour_shares(day: date) -> np.ndarray:
    """Fraction of the day's volume falling in each UTC hour (sums to 1)."""
    curve = _WEEKEND_CURVE if is_weekend(day) else _WEEKDAY_CURVE
    shares: np.ndarray = curve / curve.sum()
    return shares


def is_office_hour(day: date, hour: int) -> bool:
    return not is_weekend(day) and hour in OFFICE_HOURS


def daily_budgets(seed: int, start: date, days: int, events_per_day: int) -> list[int]:
    """Records per day: weekday/weekend weights with a little noise, summing to the total."""
    rng = np_rng_for(seed, "daily-budgets")
    weights = np.array(
        [
            (WEEKEND_SHARE if is_weekend(start + timedelta(d)) else 1.0) * rng.lognormal(0, 0.04)
            for d in range(days)
        ]
    )
    total = events_per_day * days
    raw = weights / weights.sum() * total
    budgets = np.floor(raw).astype(np.int64)
    # hand out the rounding remainder to the days with the largest fractional parts
    for index in np.argsort(-(raw - budgets), kind="stable")[: total - int(budgets.sum())]:
        budgets[index] += 1
    return [int(b) for b in budgets]


def day_epoch(start: date, day_index: int) -> int:
    """Unix seconds of 00:00:00 UTC on the given day of the window."""
    return calendar.timegm((start + timedelta(day_index)).timetuple())


_CLOCK = tuple(f"{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60))


def iso_time(day_prefix: str, second_of_day: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` from a precomputed ``YYYY-MM-DDT`` prefix (hot path)."""
    return day_prefix + _CLOCK[second_of_day]


def iso_from_epoch(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for any Unix second (cold path)."""
    days, second = divmod(epoch, SECONDS_PER_DAY)
    return f"{date(1970, 1, 1) + timedelta(days)}T{_CLOCK[second]}"
