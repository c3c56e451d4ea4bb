"""Intensity histogram features (IBSI chapter 1, section 3.4).

Computed over the *discretised* intensities ``X_d`` (grey levels ``1..N_g``) of the ROI. The
statistical ones use the same formulas as the intensity-based statistics
(:mod:`medfeat.features.intensity_statistics`), applied to ``X_d``. ``H(i)`` is the number of
voxels with grey level ``i`` and ``p_i = H(i) / N_v``.

References
----------
.. [1] Zwanenburg A. et al. Radiology 295 (2020); IBSI reference manual, section 3.4.
"""
from __future__ import annotations

import numpy as np

from medfeat.features import intensity_statistics as st
from medfeat.features.base import FeatureDef, column

FAMILY = "ih"


class HistogramSummary(st.Summary):
    """A :class:`~medfeat.features.intensity_statistics.Summary` plus the grey-level histogram."""

    def __init__(self, levels: np.ndarray, n_levels: int):
        super().__init__(levels)
        self.n_levels = max(int(n_levels), int(self.x.max()))
        self.hist = np.bincount(np.asarray(levels, dtype=np.int64).ravel(), minlength=self.n_levels + 1)[1:]

    @property
    def gradient(self) -> np.ndarray:
        # IBSI: forward difference at i = 1, backward at i = N_g, central difference inside.
        return np.gradient(self.hist.astype(np.float64)) if self.hist.size > 1 else np.zeros(1)


def mode(s: HistogramSummary) -> float:
    """Intensity histogram mode (IBSI ``AMMC``, ``ih.mode``): the most frequent grey level.

    Ties are broken by taking the mode closest to the mean (IBSI's rule); a remaining tie takes the
    lowest level.
    """
    top = np.flatnonzero(s.hist == s.hist.max()) + 1
    return float(top[np.argmin(np.abs(top - s.mean))])


def entropy(s: HistogramSummary) -> float:
    """Discretised intensity entropy (IBSI ``TLU2``, ``ih.entropy``): ``F = -sum_i p_i log2 p_i``."""
    p = s.hist[s.hist > 0] / s.x.size
    return float(-np.sum(p * np.log2(p)))


def uniformity(s: HistogramSummary) -> float:
    """Discretised intensity uniformity (IBSI ``BJ5W``, ``ih.uniformity``): ``F = sum_i p_i^2``."""
    p = s.hist / s.x.size
    return float(np.dot(p, p))


def max_gradient(s: HistogramSummary) -> float:
    """Maximum histogram gradient (IBSI ``12CE``, ``ih.max.grad``): ``F = max_i H'(i)``.

    ``H'(1) = H(2) - H(1)``, ``H'(i) = (H(i+1) - H(i-1)) / 2`` and ``H'(N_g) = H(N_g) - H(N_g - 1)``.
    """
    return float(s.gradient.max())


def max_gradient_level(s: HistogramSummary) -> float:
    """Maximum histogram gradient intensity (IBSI ``8E6O``, ``ih.max.grad.gl``): ``argmax_i H'(i)`` (lowest on ties)."""
    return float(np.argmax(s.gradient) + 1)


def min_gradient(s: HistogramSummary) -> float:
    """Minimum histogram gradient (IBSI ``VQB3``, ``ih.min.grad``): ``F = min_i H'(i)``."""
    return float(s.gradient.min())


def min_gradient_level(s: HistogramSummary) -> float:
    """Minimum histogram gradient intensity (IBSI ``RHQZ``, ``ih.min.grad.gl``): ``argmin_i H'(i)`` (lowest on ties)."""
    return float(np.argmin(s.gradient) + 1)


_TABLE = (
    ("ih.mean", "X6K6", "Mean discretised intensity", st.mean),
    ("ih.var", "CH89", "Discretised intensity variance", st.variance),
    ("ih.skew", "88K1", "Discretised intensity skewness", st.skewness),
    ("ih.kurt", "C3I7", "(Excess) discretised intensity kurtosis", st.kurtosis),
    ("ih.median", "WIFQ", "Median discretised intensity", st.median),
    ("ih.min", "1PR8", "Minimum discretised intensity", st.minimum),
    ("ih.P10", "1PR8", "10th discretised intensity percentile", st.percentile_10),
    ("ih.P90", "GPMT", "90th discretised intensity percentile", st.percentile_90),
    ("ih.max", "3NCY", "Maximum discretised intensity", st.maximum),
    ("ih.mode", "AMMC", "Intensity histogram mode", mode),
    ("ih.iqr", "WR0O", "Discretised intensity interquartile range", st.interquartile_range),
    ("ih.range", "5Z3W", "Discretised intensity range", st.value_range),
    ("ih.mad", "D2ZX", "Intensity histogram mean absolute deviation", st.mean_absolute_deviation),
    ("ih.rmad", "WRZB", "Intensity histogram robust mean absolute deviation", st.robust_mean_absolute_deviation),
    ("ih.medad", "4RNL", "Intensity histogram median absolute deviation", st.median_absolute_deviation),
    ("ih.cov", "CWYJ", "Intensity histogram coefficient of variation", st.coefficient_of_variation),
    ("ih.qcod", "SLWD", "Intensity histogram quartile coefficient of dispersion", st.quartile_coefficient_of_dispersion),
    ("ih.entropy", "TLU2", "Discretised intensity entropy", entropy),
    ("ih.uniformity", "BJ5W", "Discretised intensity uniformity", uniformity),
    ("ih.max.grad", "12CE", "Maximum histogram gradient", max_gradient),
    ("ih.max.grad.gl", "8E6O", "Maximum histogram gradient intensity", max_gradient_level),
    ("ih.min.grad", "VQB3", "Minimum histogram gradient", min_gradient),
    ("ih.min.grad.gl", "RHQZ", "Minimum histogram gradient intensity", min_gradient_level),
)
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def histogram_features(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """All intensity histogram features of the discretised ROI intensities ``levels`` (1-D, 1..n_levels)."""
    s = HistogramSummary(levels, n_levels)
    return {column(tag): fn(s) for tag, _, _, fn in _TABLE}
