"""A translation-like task with real structure: dates as people write them → ISO 8601.

``"the 3rd of March, 1998"``, ``"03/03/98"``, ``"Tuesday, March 3, 1998"`` → ``"1998-03-03"``.
Sources vary in length (6 to ~30 characters), in order (day-month-year, month-day-year,
year-month-day), in vocabulary (month names, abbreviations, weekdays, ordinals) and in case;
the target is always ``YYYY-MM-DD``. Solving it needs reordering (the year comes last in most
sources and first in the target), lookup (``Mar`` → ``03``), copying and, for two-digit
years, a century rule: what attention is good at.

Conventions (so every source has exactly one reading):

* slashes are month first (US: ``03/14/98``), dots are day first (European: ``14.03.1998``);
* a two-digit year ``yy`` is the one year in ``[year_min, year_max]`` ending in ``yy``, so
  two-digit styles need a range of at most 100 years (default 1950–2049);
* names are English and independent of the process locale (no ``strftime("%B")``).

Everything is seeded: the same ``(n, seed, ...)`` gives the same pairs on every machine.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence

MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def ordinal(day: int) -> str:
    """``1`` → ``1st``, ``2`` → ``2nd``, ``3`` → ``3rd``, ``11`` → ``11th``, ``22`` → ``22nd``."""
    if 10 <= day % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _mon(d: dt.date) -> str:
    return MONTHS[d.month - 1][:3]


def _month(d: dt.date) -> str:
    return MONTHS[d.month - 1]


def _wday(d: dt.date) -> str:
    return WEEKDAYS[d.weekday()]


def _yy(d: dt.date) -> str:
    return f"{d.year % 100:02d}"


#: Style name → formatter. Example outputs are for Tuesday, 3 March 1998.
STYLES: dict[str, Callable[[dt.date], str]] = {
    "us_slash_short": lambda d: f"{d.month:02d}/{d.day:02d}/{_yy(d)}",             # 03/03/98
    "us_slash": lambda d: f"{d.month}/{d.day}/{d.year}",                            # 3/3/1998
    "eu_dot": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",                      # 03.03.1998
    "eu_dot_short": lambda d: f"{d.day}.{d.month}.{_yy(d)}",                        # 3.3.98
    "compact": lambda d: f"{d.year}{d.month:02d}{d.day:02d}",                       # 19980303
    "month_day_year": lambda d: f"{_month(d)} {d.day} {d.year}",                    # March 3 1998
    "month_day_comma_year": lambda d: f"{_month(d)} {d.day}, {d.year}",             # March 3, 1998
    "day_month_year": lambda d: f"{d.day} {_month(d)} {d.year}",                    # 3 March 1998
    "day_mon_year": lambda d: f"{d.day} {_mon(d)} {d.year}",                        # 3 Mar 1998
    "mon_day_comma_year": lambda d: f"{_mon(d)} {d.day}, {d.year}",                 # Mar 3, 1998
    "dash_mon": lambda d: f"{d.day:02d}-{_mon(d)}-{d.year}",                        # 03-Mar-1998
    "the_ordinal_of": lambda d: f"the {ordinal(d.day)} of {_month(d)}, {d.year}",   # the 3rd of March, 1998
    "ordinal_month_year": lambda d: f"{ordinal(d.day)} {_month(d)} {d.year}",       # 3rd March 1998
    "month_ordinal_short_year": lambda d: f"{_month(d)} {ordinal(d.day)}, '{_yy(d)}",  # March 3rd, '98
    "weekday_long": lambda d: f"{_wday(d)}, {_month(d)} {d.day}, {d.year}",         # Tuesday, March 3, 1998
    "weekday_short": lambda d: f"{_wday(d)[:3]} {d.day} {_mon(d)} {d.year}",        # Tue 3 Mar 1998
    "upper_month_day_year": lambda d: f"{_month(d).upper()} {d.day}, {d.year}",     # MARCH 3, 1998
    "lower_day_mon_year": lambda d: f"{d.day} {_mon(d).lower()} {d.year}",          # 3 mar 1998
}

#: Styles that write the year with two digits (need ``year_max - year_min < 100``).
TWO_DIGIT_YEAR_STYLES: frozenset[str] = frozenset({"us_slash_short", "eu_dot_short", "month_ordinal_short_year"})


def format_date(date: dt.date, style: str) -> str:
    """``date`` written in ``style`` (one of :data:`STYLES`)."""
    try:
        return STYLES[style](date)
    except KeyError:
        raise ValueError(f"unknown date style {style!r}; available: {', '.join(STYLES)}") from None


def check_styles(styles: Sequence[str] | None, *, year_min: int, year_max: int) -> list[str]:
    """The styles to use (all when ``None``), validated against the year range."""
    chosen = list(STYLES) if styles is None else list(styles)
    if not chosen:
        raise ValueError("styles must name at least one date style")
    unknown = [s for s in chosen if s not in STYLES]
    if unknown:
        raise ValueError(f"unknown date style(s) {unknown}; available: {', '.join(STYLES)}")
    if not 1 <= year_min <= year_max <= 9999:
        raise ValueError(f"need 1 <= year_min <= year_max <= 9999, got year_min={year_min}, year_max={year_max}")
    two_digit = sorted(set(chosen) & TWO_DIGIT_YEAR_STYLES)
    if two_digit and year_max - year_min >= 100:
        raise ValueError(
            f"styles {two_digit} write two-digit years, which are ambiguous over year_min={year_min}.."
            f"year_max={year_max} (more than 100 years); narrow the range or drop those styles"
        )
    return chosen


def generate_date_pairs(
    n: int,
    *,
    seed: int = 0,
    year_min: int = 1950,
    year_max: int = 2049,
    styles: Sequence[str] | None = None,
) -> list[tuple[str, str, str]]:
    """``n`` seeded ``(source, target, style)`` triples: a uniformly drawn date between
    1 January ``year_min`` and 31 December ``year_max`` in a uniformly drawn style, and its ISO
    8601 form."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    chosen = check_styles(styles, year_min=year_min, year_max=year_max)
    rng = random.Random(seed)
    first = dt.date(year_min, 1, 1).toordinal()
    last = dt.date(year_max, 12, 31).toordinal()
    out: list[tuple[str, str, str]] = []
    for _ in range(n):
        date = dt.date.fromordinal(rng.randint(first, last))
        style = chosen[rng.randrange(len(chosen))]
        out.append((STYLES[style](date), date.isoformat(), style))
    return out
