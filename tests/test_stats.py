"""Statistics over seeds: the clipped t interval, the metric ranges, the paired and Welch tests."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from rnnlab.analysis.stats import compare, mean_interval, metric_range


def test_interval_is_students_t_by_hand() -> None:
    values = [0.5, 0.6, 0.7]  # mean 0.6, sample sd 0.1
    # t(0.975, 2) = 4.302653 (tables); half width 4.302653 * 0.1 / sqrt(3) = 0.248414
    interval = mean_interval(values)
    assert interval.n == 3 and interval.mean == pytest.approx(0.6) and interval.std == pytest.approx(0.1)
    assert interval.low == pytest.approx(0.6 - 0.248414, abs=1e-6)
    assert interval.high == pytest.approx(0.6 + 0.248414, abs=1e-6)


def test_interval_stays_in_the_range_at_the_boundary() -> None:
    values = [1.0, 1.0, 0.9]  # mean 0.9667, sd 0.0577: the unclipped interval reaches 1.11
    unclipped = mean_interval(values)
    clipped = mean_interval(values, metric_range("test/acc"))
    assert unclipped.high > 1.0
    assert clipped.high == 1.0 and clipped.low == pytest.approx(unclipped.low) and clipped.low < clipped.mean
    assert mean_interval([0.01, 0.0, 0.0], metric_range("test/mse")).low == 0.0
    assert mean_interval([1.0, 1.0, 1.0], (0.0, 1.0)) == mean_interval([1.0, 1.0, 1.0])  # no spread: [1, 1]
    assert mean_interval([1.0, 1.0, 1.0]).low == 1.0


def test_interval_of_one_run_and_none() -> None:
    one = mean_interval([0.8, math.nan])
    assert one.n == 1 and one.mean == 0.8 and math.isnan(one.low) and math.isnan(one.std)
    assert mean_interval([]).n == 0


@pytest.mark.parametrize("metric,bounds", [("test/acc", (0, 1)), ("val/f1_best", (0, 1)), ("test/bleu", (0, 100)),
                                           ("test/ppl", (1, math.inf)), ("test/mse", (0, math.inf)),
                                           ("loss", (0, math.inf)), ("test/unknown", (-math.inf, math.inf)),
                                           (None, (-math.inf, math.inf))])
def test_metric_ranges(metric: str | None, bounds: tuple[float, float]) -> None:
    assert metric_range(metric) == bounds


def test_paired_test_pairs_by_seed_and_equals_scipy() -> None:
    a = pd.Series([0.70, 0.64, 0.61, 0.99], index=[3, 1, 2, 4])  # seed 4: only A has it, not paired
    b = pd.Series([0.60, 0.58, 0.65], index=[1, 2, 3])
    result = compare(a, b)
    expected = stats.ttest_rel([0.64, 0.61, 0.70], [0.60, 0.58, 0.65])
    assert result.test == "paired t" and result.n == "3 pairs"
    assert result.p == pytest.approx(expected.pvalue) and result.difference == pytest.approx(0.04)
    assert result.significant == (expected.pvalue < 0.05)


def test_welch_when_fewer_than_two_seeds_are_shared() -> None:
    a = pd.Series([0.9, 0.8, 0.85], index=[1, 2, 3])
    b = pd.Series([0.5, 0.6, 0.55], index=[3, 4, 5])  # one shared seed
    result = compare(a, b)
    expected = stats.ttest_ind([0.9, 0.8, 0.85], [0.5, 0.6, 0.55], equal_var=False)
    assert result.test == "Welch t" and result.n == "3 + 3 runs"
    assert result.p == pytest.approx(expected.pvalue) and result.difference == pytest.approx(0.3)
    assert result.significant


def test_undefined_tests_say_so() -> None:
    solved = pd.Series([1.0, 1.0, 1.0], index=[1, 2, 3])
    same = compare(solved, solved.copy())
    assert same.test == "paired t" and math.isnan(same.p) and not same.significant  # 0/0: no p-value
    few = compare(pd.Series([0.9], index=[1]), pd.Series([0.5, 0.6], index=[2, 3]))
    assert few.test == "none" and math.isnan(few.p) and few.difference == pytest.approx(0.35)
