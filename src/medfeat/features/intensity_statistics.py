"""Intensity-based statistical features (IBSI chapter 1, section 3.3).

Computed over the intensities ``X`` of the voxels in the ROI intensity mask (after
re-segmentation, before discretisation). ``N_v`` is the number of voxels, ``mu`` the mean,
``P_k`` the k-th percentile (linear interpolation between order statistics, numpy's default).
Moments are population moments (divided by ``N_v``), as IBSI prescribes.

References
----------
.. [1] Zwanenburg A. et al. "The Image Biomarker Standardization Initiative: standardized
       quantitative radiomics for high-throughput image-based phenotyping." Radiology 295 (2020).
.. [2] IBSI reference manual, https://theibsi.github.io/ibsi1/ (feature codes given below).
"""
from __future__ import annotations

from functools import cached_property

import numba
import numpy as np

from medfeat.features.base import FeatureDef, column

FAMILY = "stat"

_PERCENTILES = (10, 25, 50, 75, 90)
_Q = np.true_divide(np.array(_PERCENTILES), 100)  # as numpy.percentile computes its quantiles


@numba.njit(cache=True, nogil=True)
def _integer_order_statistics(x, ranks):  # pragma: no cover - compiled
    """The order statistics ``x_(k)`` (0-based, ``ranks`` ascending) of integer-valued ``x``, by
    counting: O(n) instead of a selection. Empty when ``x`` holds a non-integer (or NaN) or spans
    more than ``max(n, 65536)`` integers (the caller then uses numpy)."""
    lo = x[0]
    hi = x[0]
    for v in x:
        if v != np.floor(v):
            return np.empty(0)
        lo = min(lo, v)
        hi = max(hi, v)
    if not hi - lo < max(x.size, 65536):  # also an infinite span
        return np.empty(0)
    counts = np.zeros(int(hi - lo) + 1, np.int32)
    for v in x:
        counts[int(v - lo)] += 1
    out = np.empty(ranks.size)
    j = 0
    below = 0  # values under lo + j
    for t in range(ranks.size):
        while below + counts[j] <= ranks[t]:
            below += counts[j]
            j += 1
        out[t] = lo + j
    return out


def _percentiles(x: np.ndarray) -> np.ndarray:
    """``numpy.percentile(x, (10, 25, 50, 75, 90))`` (linear interpolation), the same values, faster
    for integer-valued intensities (CT, most MR).

    numpy partitions a copy of ``x`` around the order statistics that each percentile interpolates
    between. Order statistics are exact values, so finding them by counting instead, then
    interpolating as numpy does (``_lerp`` in ``numpy/lib/_function_base_impl.py``, transcribed
    below), gives numpy's result. Other samples go to numpy.
    """
    n = x.size
    if n == 0:
        return np.percentile(x, _PERCENTILES)
    virtual = (n - 1) * _Q
    previous = np.floor(virtual).astype(np.intp)
    following = previous + 1
    above = virtual >= n - 1  # numpy takes the largest value there, via index -1
    previous[above] = -1
    following[above] = -1
    gamma = virtual - previous
    ranks = np.unique(np.concatenate((previous, following)) % n)
    stats = _integer_order_statistics(x, ranks)
    if stats.size == 0:
        return np.percentile(x, _PERCENTILES)
    a = stats[np.searchsorted(ranks, previous % n)]
    b = stats[np.searchsorted(ranks, following % n)]
    diff_b_a = b - a
    result = a + diff_b_a * gamma
    np.subtract(b, diff_b_a * (1 - gamma), out=result, where=gamma >= 0.5)
    return result


#: values per block of the moment and deviation sums: their scratch stays small (and in cache)
#: whatever the ROI's size, instead of two float64 copies of a 34 M-voxel ROI (540 MB)
BLOCK = 1 << 16


class Summary:
    """Quantities shared by several features of a 1-D sample, computed once and cached.

    Sums over the sample run block by block (:data:`BLOCK` values) through one small scratch
    buffer, so no sample-sized temporary is made.
    """

    def __init__(self, x: np.ndarray):
        self.x = np.asarray(x, dtype=np.float64).ravel()
        self.n = self.x.size
        self._buf = np.empty((2, min(self.n, BLOCK)))

    def _blocks(self):
        for i in range(0, self.n, BLOCK):
            yield self.x[i:i + BLOCK]

    @cached_property
    def mean(self) -> float:
        return float(self.x.mean())

    @cached_property
    def _moments(self) -> tuple[float, float, float]:
        s2 = s3 = s4 = 0.0
        for x in self._blocks():
            c, c2 = self._buf[0, :x.size], self._buf[1, :x.size]
            np.subtract(x, self.mean, out=c)
            np.multiply(c, c, out=c2)
            s2 += float(c2.sum())
            s3 += float(np.dot(c2, c))
            s4 += float(np.dot(c2, c2))
        return s2 / self.n, s3 / self.n, s4 / self.n

    @property
    def m2(self) -> float:
        return self._moments[0]

    @property
    def m3(self) -> float:
        return self._moments[1]

    @property
    def m4(self) -> float:
        return self._moments[2]

    @cached_property
    def percentiles(self) -> dict[int, float]:
        return dict(zip(_PERCENTILES, (float(v) for v in _percentiles(self.x))))

    @cached_property
    def minmax(self) -> tuple[float, float]:
        return float(self.x.min()), float(self.x.max())

    @cached_property
    def sum_of_squares(self) -> float:
        return float(np.dot(self.x, self.x))

    def _abs_deviation_sum(self, x: np.ndarray, centre: float) -> float:
        d = np.subtract(x, centre, out=self._buf[0, :x.size])
        return float(np.abs(d, out=d).sum())

    def mean_abs_deviation(self, centre: float) -> float:
        """``1/N sum |X_k - centre|``."""
        return sum(self._abs_deviation_sum(x, centre) for x in self._blocks()) / self.n

    def robust_mean_abs_deviation(self) -> float:
        """Mean absolute deviation from their mean of the values within ``[P_10, P_90]``."""
        lo, hi = self.percentiles[10], self.percentiles[90]
        if self.n <= BLOCK:  # one block: one pass
            inner = self.x[(self.x >= lo) & (self.x <= hi)]
            if not inner.size:  # e.g. two values: P10 and P90 fall strictly between them
                return float("nan")
            return self._abs_deviation_sum(inner, float(inner.mean())) / inner.size
        total, k = 0.0, 0
        for x in self._blocks():  # two passes: the mean of the kept values, then their deviations
            inner = x[(x >= lo) & (x <= hi)]
            total += float(inner.sum())
            k += inner.size
        if not k:
            return float("nan")
        centre = total / k
        return sum(self._abs_deviation_sum(x[(x >= lo) & (x <= hi)], centre) for x in self._blocks()) / k


def mean(s: Summary) -> float:
    """Mean intensity (IBSI ``Q4LE``, ``stat.mean``): ``F = 1/N_v sum_k X_k``."""
    return s.mean


def variance(s: Summary) -> float:
    """Intensity variance (IBSI ``ECT3``, ``stat.var``): ``F = 1/N_v sum_k (X_k - mu)^2``."""
    return s.m2


def skewness(s: Summary) -> float:
    """Intensity skewness (IBSI ``KE2A``, ``stat.skew``).

    ``F = (1/N_v sum (X_k - mu)^3) / (1/N_v sum (X_k - mu)^2)^(3/2)``; 0 when the variance is 0.
    """
    if s.m2 == 0:
        return 0.0
    return s.m3 / s.m2**1.5


def kurtosis(s: Summary) -> float:
    """(Excess) intensity kurtosis (IBSI ``IPH6``, ``stat.kurt``).

    ``F = (1/N_v sum (X_k - mu)^4) / (1/N_v sum (X_k - mu)^2)^2 - 3``; 0 when the variance is 0.
    """
    if s.m2 == 0:
        return 0.0
    return s.m4 / s.m2**2 - 3.0


def median(s: Summary) -> float:
    """Median intensity (IBSI ``Y12H``, ``stat.median``): the sample median ``P_50``."""
    return s.percentiles[50]


def minimum(s: Summary) -> float:
    """Minimum intensity (IBSI ``1GSF``, ``stat.min``): ``F = min(X)``."""
    return s.minmax[0]


def percentile_10(s: Summary) -> float:
    """10th intensity percentile (IBSI ``QG58``, ``stat.P10``): ``F = P_10``."""
    return s.percentiles[10]


def percentile_90(s: Summary) -> float:
    """90th intensity percentile (IBSI ``8DWT``, ``stat.P90``): ``F = P_90``."""
    return s.percentiles[90]


def maximum(s: Summary) -> float:
    """Maximum intensity (IBSI ``84IY``, ``stat.max``): ``F = max(X)``."""
    return s.minmax[1]


def interquartile_range(s: Summary) -> float:
    """Intensity interquartile range (IBSI ``SALO``, ``stat.iqr``): ``F = P_75 - P_25``."""
    return s.percentiles[75] - s.percentiles[25]


def value_range(s: Summary) -> float:
    """Intensity range (IBSI ``2OJQ``, ``stat.range``): ``F = max(X) - min(X)``."""
    return s.minmax[1] - s.minmax[0]


def mean_absolute_deviation(s: Summary) -> float:
    """Mean absolute deviation (IBSI ``4FUA``, ``stat.mad``): ``F = 1/N_v sum |X_k - mu|``."""
    return s.mean_abs_deviation(s.mean)


def robust_mean_absolute_deviation(s: Summary) -> float:
    """Robust mean absolute deviation (IBSI ``1128``, ``stat.rmad``).

    ``F = 1/N_{10-90} sum |X_{10-90,k} - mu_{10-90}|`` over the voxels with ``P_10 <= X <= P_90``.
    """
    return s.robust_mean_abs_deviation()


def median_absolute_deviation(s: Summary) -> float:
    """Median absolute deviation (IBSI ``N72L``, ``stat.medad``): ``F = 1/N_v sum |X_k - M|``.

    IBSI defines it as the mean absolute deviation from the median ``M``.
    """
    return s.mean_abs_deviation(s.percentiles[50])


def coefficient_of_variation(s: Summary) -> float:
    """Coefficient of variation (IBSI ``7TET``, ``stat.cov``): ``F = sigma / mu`` (population sigma)."""
    return float(np.sqrt(s.m2) / s.mean) if s.mean != 0 else float("nan")


def quartile_coefficient_of_dispersion(s: Summary) -> float:
    """Quartile coefficient of dispersion (IBSI ``9S40``, ``stat.qcod``): ``F = (P_75 - P_25) / (P_75 + P_25)``."""
    den = s.percentiles[75] + s.percentiles[25]
    return float((s.percentiles[75] - s.percentiles[25]) / den) if den != 0 else float("nan")


def energy(s: Summary) -> float:
    """Intensity-based energy (IBSI ``N8CA``, ``stat.energy``): ``F = sum_k X_k^2``."""
    return s.sum_of_squares


def root_mean_square(s: Summary) -> float:
    """Root mean square intensity (IBSI ``5ZWQ``, ``stat.rms``): ``F = sqrt(1/N_v sum_k X_k^2)``."""
    return float(np.sqrt(s.sum_of_squares / s.n))


# (tag, code, name, function), in IBSI order.
_TABLE = (
    ("stat.mean", "Q4LE", "Mean intensity", mean),
    ("stat.var", "ECT3", "Intensity variance", variance),
    ("stat.skew", "KE2A", "Intensity skewness", skewness),
    ("stat.kurt", "IPH6", "(Excess) intensity kurtosis", kurtosis),
    ("stat.median", "Y12H", "Median intensity", median),
    ("stat.min", "1GSF", "Minimum intensity", minimum),
    ("stat.P10", "QG58", "10th intensity percentile", percentile_10),
    ("stat.P90", "8DWT", "90th intensity percentile", percentile_90),
    ("stat.max", "84IY", "Maximum intensity", maximum),
    ("stat.iqr", "SALO", "Intensity interquartile range", interquartile_range),
    ("stat.range", "2OJQ", "Intensity range", value_range),
    ("stat.mad", "4FUA", "Intensity-based mean absolute deviation", mean_absolute_deviation),
    ("stat.rmad", "1128", "Intensity-based robust mean absolute deviation", robust_mean_absolute_deviation),
    ("stat.medad", "N72L", "Intensity-based median absolute deviation", median_absolute_deviation),
    ("stat.cov", "7TET", "Intensity-based coefficient of variation", coefficient_of_variation),
    ("stat.qcod", "9S40", "Intensity-based quartile coefficient of dispersion", quartile_coefficient_of_dispersion),
    ("stat.energy", "N8CA", "Intensity-based energy", energy),
    ("stat.rms", "5ZWQ", "Root mean square intensity", root_mean_square),
)
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)
#: ``(tag, function of a Summary)`` per feature, in column order (feature maps compute them one by one).
FEATURE_FUNCTIONS: tuple = tuple((t, fn) for t, _, _, fn in _TABLE)


def statistics_features(values: np.ndarray) -> dict[str, float]:
    """All intensity-based statistical features of the ROI intensities ``values`` (1-D)."""
    s = Summary(values)
    return {column(tag): fn(s) for tag, _, _, fn in _TABLE}
