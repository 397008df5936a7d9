"""Argument checks shared by the statistics functions: messages name the argument and show the value."""

from __future__ import annotations

import math
import numbers
import sys
from typing import Final

from canarywise.errors import CanarywiseError

ALTERNATIVES: Final = ("two-sided", "greater", "less")


class StatsInputError(CanarywiseError, ValueError):
    """An argument to a statistics function is out of its domain."""


def check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise StatsInputError(f"`alternative` must be one of {ALTERNATIVES}, found {alternative!r}")
    return alternative


def _is_real(value: object) -> bool:
    """A real number: Python's int/float and numpy's integer and floating scalars (all register as
    ``numbers.Real``); not a bool, whose True/False are not quantities.

    numpy is looked up, not imported: a ``numpy.bool_`` exists only once numpy is loaded, and the rollback,
    stage gate and promote functions load these checks without numpy (``tests/unit/test_handler_imports.py``).
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    np = sys.modules.get("numpy")
    return np is None or not isinstance(value, np.bool_)


def check_probability(name: str, value: float, *, open_low: bool = True, open_high: bool = True) -> float:
    """`value` in (0, 1) (or with a closed end where asked)."""
    ok = _is_real(value) and math.isfinite(value)
    low_ok = ok and (value > 0 if open_low else value >= 0)
    high_ok = ok and (value < 1 if open_high else value <= 1)
    if not (low_ok and high_ok):
        interval = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
        raise StatsInputError(f"`{name}` must be in {interval}, found {value!r}")
    return float(value)


def check_count(name: str, value: int, *, minimum: int = 0) -> int:
    """A whole number >= `minimum` (a numpy integer, or a float such as 7.0, is accepted); NaN and
    infinity are refused here, before ``int()`` would raise Python's own ValueError/OverflowError."""
    if not (_is_real(value) and math.isfinite(value) and value == int(value) and value >= minimum):
        raise StatsInputError(f"`{name}` must be an integer >= {minimum}, found {value!r}")
    return int(value)


def check_successes(name: str, successes: int, trials: int) -> None:
    if successes > trials:
        raise StatsInputError(
            f"`{name}` must not exceed its number of trials ({trials}), found {successes!r}"
        )


def check_arms(
    x_control: int, n_control: int, x_treatment: int, n_treatment: int
) -> tuple[int, int, int, int]:
    """Successes and trials of two arms: each ``n >= 1``, ``0 <= x <= n``; returns them as ints."""
    n_c = check_count("n_control", n_control, minimum=1)
    n_t = check_count("n_treatment", n_treatment, minimum=1)
    x_c = check_count("x_control", x_control)
    x_t = check_count("x_treatment", x_treatment)
    # The messages show the values as given (2.0, not 2), as check_count's do.
    check_successes("x_control", x_control, n_control)
    check_successes("x_treatment", x_treatment, n_treatment)
    return x_c, n_c, x_t, n_t


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = _is_real(value) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise StatsInputError(f"`{name}` must be {'>= 0' if allow_zero else '> 0'}, found {value!r}")
    return float(value)


def check_finite(name: str, value: float) -> float:
    if not (_is_real(value) and math.isfinite(value)):
        raise StatsInputError(f"`{name}` must be a finite number, found {value!r}")
    return float(value)
