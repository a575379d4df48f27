"""Is one model really better than another? Paired comparisons over cross-validation folds.

A 1-point gap on 80-clip folds is usually noise. Every model is tested against the leaderboard's
best on the same folds with the *corrected resampled t-test* (Nadeau & Bengio 2003, "Inference
for the generalization error"): the per-fold differences' variance is inflated by
``1/k + n_test/n_train`` because the training sets of k-fold CV overlap, which the plain paired
t-test ignores (it then calls far too many gaps significant; Bouckaert & Frank 2004). Hand-written
because scikit-learn and SciPy offer only the uncorrected test; the t distribution is SciPy's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def corrected_resampled_ttest(a: Sequence[float], b: Sequence[float], test_train_ratio: float) -> dict[str, float]:
    """Paired test of ``mean(a - b) == 0`` over folds whose test/train sizes have ratio
    ``test_train_ratio`` (``1/(k-1)`` for k-fold CV). Returns the mean difference, its 95 %
    interval, t and the two-sided p-value. Fewer than two folds: no test (p = nan)."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    k = len(d)
    if k != len(b) or k == 0:
        raise ValueError(f"paired comparison needs the same folds on both sides, got {len(a)} and {len(b)} values")
    mean = float(d.mean())
    if k < 2:
        return {"diff": mean, "ci95_low": math.nan, "ci95_high": math.nan, "t": math.nan, "p": math.nan}
    var = float(d.var(ddof=1)) * (1.0 / k + test_train_ratio)
    if var == 0.0:  # identical differences on every fold
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
        return {"diff": mean, "ci95_low": mean, "ci95_high": mean, "t": t, "p": p}
    se = math.sqrt(var)
    t = mean / se
    half = float(stats.t.ppf(0.975, k - 1)) * se
    p = float(2.0 * stats.t.sf(abs(t), k - 1))
    return {"diff": mean, "ci95_low": mean - half, "ci95_high": mean + half, "t": t, "p": p}
