"""The argument checks every statistics function shares: numpy scalars are numbers, NaN and infinity are
refused with the library's own error naming the argument (not Python's ValueError/OverflowError from
``int(nan)`` / ``int(inf)``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canarywise.stats._checks import (
    StatsInputError,
    check_arms,
    check_count,
    check_finite,
    check_positive,
    check_probability,
)
from canarywise.stats.proportions import two_proportion_ztest
from canarywise.stats.srm import srm_test


@pytest.mark.parametrize("value", [np.int64(7), np.int32(7), np.uint16(7), np.float64(7.0), 7, 7.0])
def test_numpy_and_python_integers_are_counts(value: object) -> None:
    assert check_count("n", value) == 7  # type: ignore[arg-type]
    assert type(check_count("n", value)) is int  # type: ignore[arg-type]


def test_numpy_counts_reach_the_tests() -> None:
    """Counts straight out of a numpy array: 120/1000 vs 130/1000 is the same test as with Python ints."""
    counts = np.array([120, 1000, 130, 1000])
    from_numpy = two_proportion_ztest(*counts)
    from_python = two_proportion_ztest(120, 1000, 130, 1000)
    assert from_numpy.pvalue == from_python.pvalue
    assert (
        srm_test(np.array([9500, 500]), np.array([95.0, 5.0])).pvalue == srm_test([9500, 500], [95, 5]).pvalue
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan"), np.float64("inf")])
def test_nan_and_inf_counts_raise_the_library_error(value: float) -> None:
    with pytest.raises(StatsInputError, match=r"^`n_control` must be an integer >= 1, found"):
        check_arms(1, value, 1, 10)  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match=r"^`x` must be an integer >= 0, found"):
        check_count("x", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, "3", None, 2.5, -1, np.int64(-1)])
def test_non_counts_are_refused(value: object) -> None:
    with pytest.raises(StatsInputError, match=r"^`x` must be an integer >= 0, found"):
        check_count("x", value)  # type: ignore[arg-type]


def test_numpy_floats_pass_the_other_checks() -> None:
    assert check_finite("null", np.float32(0.5)) == 0.5
    assert check_positive("tau2", np.float64(2.0)) == 2.0
    assert check_probability("alpha", np.float64(0.05)) == 0.05
    with pytest.raises(StatsInputError, match=r"^`alpha` must be in \(0, 1\), found"):
        check_probability("alpha", np.float64("nan"))
    with pytest.raises(StatsInputError, match=r"^`null` must be a finite number, found"):
        check_finite("null", np.float64("inf"))


@pytest.mark.parametrize("value", [True, np.bool_(True)])
def test_booleans_are_not_counts_nor_probabilities(value: object) -> None:
    """True is not the number 1 here, Python's or numpy's (the check looks numpy up, does not import it)."""
    with pytest.raises(StatsInputError, match="n"):
        check_count("n", value)  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="p"):
        check_probability("p", value)  # type: ignore[arg-type]
