"""Statistics over seeds: a confidence interval of the mean kept inside the metric's range, and a two-sample test.

The seed is the unit of replication: each run gives one value of the metric, and a configuration's runs differ
only in their seed (initial draws, data order, and for the synthetic tasks the generated data).

- Interval: Student's t interval of the mean, ``mean ± t(0.975, n − 1) · sd / √n`` with the sample standard
  deviation ``sd``, then clipped to the metric's range (``metric_range``). The true mean lies inside that
  range, so clipping never removes it from the interval: the clipped interval covers it whenever the unclipped
  one does. One run gives no interval.
- Test: a paired t-test (two-sided) over the seeds two configurations share, pairing run with run by seed;
  Welch's t-test (two-sided, unequal variances) over all their runs when they share fewer than 2 seeds.
- Several tests: ``holm`` adjusts their p-values (Holm's step-down method) so that the family of tests keeps its
  error rate.

With 3 seeds a paired test has 2 degrees of freedom (t(0.975, 2) = 4.30): only differences that are large
against their seed-to-seed spread reach p < 0.05, and "not significant" means "not shown", not "equal".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rnnlab.metrics.declared import METRICS

CONFIDENCE = 0.95  # of the intervals
ALPHA = 0.05       # significance level of the tests

UNBOUNDED = (-math.inf, math.inf)


def metric_range(metric: str | float | None) -> tuple[float, float]:
    """The range of a metric from its name (``test/f1`` -> ``(0, 1)``), as ``rnnlab.metrics.declared.METRICS``
    declares it; ``(-inf, inf)`` for a name not declared there."""
    if not isinstance(metric, str):  # None or NaN: no metric name
        return UNBOUNDED
    name = re.sub(r"_best$", "", metric.rsplit("/", 1)[-1])
    return METRICS[name].range if name in METRICS else UNBOUNDED


def describe_range(bounds: tuple[float, float]) -> str:
    """``(0, 1)`` -> ``"[0, 1]"``, ``(0, inf)`` -> ``"[0, ∞)"``, unbounded -> ``"(−∞, ∞)"``."""
    low, high = bounds
    left = "(−∞" if math.isinf(low) else f"[{low:g}"
    right = "∞)" if math.isinf(high) else f"{high:g}]"
    return f"{left}, {right}"


@dataclass(frozen=True)
class Interval:
    """Mean of a configuration's runs with its confidence interval.

    Attributes:
        mean: mean over the runs.
        low: lower end of the interval (clipped to the metric's range); NaN for fewer than 2 runs.
        high: upper end, likewise.
        std: sample standard deviation (n − 1 in the denominator); NaN for fewer than 2 runs.
        n: number of runs (NaN values not counted).
    """

    mean: float
    low: float
    high: float
    std: float
    n: int


def mean_interval(values, bounds: tuple[float, float] = UNBOUNDED, confidence: float = CONFIDENCE) -> Interval:
    """Mean and Student-t confidence interval of the mean of ``values``, clipped to ``bounds``.

    Args:
        values: one metric value per run; NaN values are dropped.
        bounds: the metric's range ``(low, high)`` (``metric_range``); infinite ends clip nothing.
        confidence: coverage of the interval.

    Returns:
        The ``Interval``; all NaN (and ``n=0``) without values, NaN ends and spread for one value.
    """
    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]  # (n,)
    n = len(array)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, math.nan, 1)
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    low, high = bounds
    return Interval(mean, max(mean - half, low), min(mean + half, high), std, n)


@dataclass(frozen=True)
class Comparison:
    """A two-sided test of the difference between two configurations' means.

    Attributes:
        difference: mean of A minus mean of B (paired: the mean of the per-seed differences, over the shared
            seeds only).
        test: ``"paired t"``, ``"Welch t"``, or ``"none"`` (too few runs for either).
        n: ``"3 pairs"`` for the paired test, ``"3 + 2 runs"`` for Welch's.
        p: the p-value; NaN when the test is undefined: too few runs, or no spread at all (paired: the same
            difference on every seed, e.g. both at accuracy 1.0; Welch: both constant).
    """

    difference: float
    test: str
    n: str
    p: float

    @property
    def significant(self) -> bool:
        """p < ``ALPHA``; False when p is NaN."""
        return bool(self.p < ALPHA)


def compare(a: pd.Series, b: pd.Series) -> Comparison:
    """Paired t-test of A against B over the seeds they share, Welch's t-test when they share fewer than 2.

    Args:
        a: metric values of configuration A indexed by seed (NaN or None index: seed unknown, never paired);
            several runs of one seed are averaged for pairing.
        b: the same for configuration B.

    Returns:
        The ``Comparison``.
    """
    a, b = a.dropna(), b.dropna()
    by_seed_a = a[a.index.notna()].groupby(level=0).mean()
    by_seed_b = b[b.index.notna()].groupby(level=0).mean()
    shared = by_seed_a.index.intersection(by_seed_b.index)
    if len(shared) >= 2:
        differences = by_seed_a[shared] - by_seed_b[shared]  # (pairs,)
        p = math.nan if _constant(differences) else stats.ttest_rel(by_seed_a[shared], by_seed_b[shared]).pvalue
        return Comparison(float(differences.mean()), "paired t", f"{len(shared)} pairs", float(p))
    difference = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Comparison(difference, "none", f"{len(a)} + {len(b)} runs", math.nan)
    p = math.nan if _constant(a) and _constant(b) else stats.ttest_ind(a, b, equal_var=False).pvalue
    return Comparison(difference, "Welch t", f"{len(a)} + {len(b)} runs", float(p))


def _constant(values: pd.Series) -> bool:
    """No spread up to rounding (e.g. every seed at accuracy 1.0): the t statistic is 0/0 or ±inf, no p-value."""
    return bool(np.ptp(values.to_numpy()) <= 1e-12 * max(1.0, float(np.abs(values).max())))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of p-values for multiple comparisons (family-wise error rate).

    The k-th smallest of m p-values becomes ``max over j ≤ k of min(1, (m − j + 1) · p(j))``; an adjusted p below
    ``ALPHA`` rejects at family-wise level ``ALPHA``. NaN p-values (undefined tests) stay NaN and are not counted
    in m.

    Args:
        pvalues: the p-values of one family of tests.

    Returns:
        The adjusted p-values, in the order given.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, math.nan)
    defined = np.flatnonzero(~np.isnan(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    running = 0.0  # adjusted values never decrease along the sorted order
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted
