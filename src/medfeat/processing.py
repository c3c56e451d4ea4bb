"""IBSI image processing before feature computation: ROI cropping, re-segmentation,
outlier filtering and intensity discretisation.

References
----------
Zwanenburg A. et al., "The Image Biomarker Standardization Initiative", Radiology 295 (2020),
and the IBSI reference manual, chapter 2 ("Image processing"), sections 2.5 (re-segmentation)
and 2.7 (discretisation).
"""
from __future__ import annotations

import numpy as np


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Smallest box (tuple of slices) holding every ``True`` voxel of ``mask``."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(box)


def resegment_range(image: np.ndarray, mask: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """IBSI range re-segmentation: keep ROI voxels with ``low <= value <= high`` (bounds optional)."""
    out = mask.copy()
    if low is not None:
        out &= image >= low
    if high is not None:
        out &= image <= high
    return out


def resegment_outliers(image: np.ndarray, mask: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """IBSI intensity outlier filtering: keep ROI voxels within ``mean +/- sigma * sd`` of the ROI.

    The mean and (population) standard deviation are those of the ROI given, so when combined with a
    range re-segmentation, the range is applied first.
    """
    values = image[mask]
    if values.size == 0:
        return mask.copy()
    mu = values.mean()
    sd = values.std()
    return mask & (image >= mu - sigma * sd) & (image <= mu + sigma * sd)


def discretise_fixed_bin_number(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Fixed bin number discretisation (IBSI 2.7.1), grey levels ``1..n_bins``.

    ``X_d = floor(N_g (X - X_min) / (X_max - X_min)) + 1`` and ``X_d = N_g`` where ``X = X_max``;
    ``X_min`` and ``X_max`` are the extremes of the ROI intensities. A constant ROI gets level 1.
    """
    values = np.asarray(values, dtype=np.float64)
    lo, hi = values.min(), values.max()
    if hi <= lo:
        return np.ones(values.shape, dtype=np.int32)
    levels = np.floor(n_bins * (values - lo) / (hi - lo)).astype(np.int32) + 1
    np.minimum(levels, n_bins, out=levels)
    return levels


def discretise_fixed_bin_size(values: np.ndarray, bin_width: float, lower_bound: float | None = None) -> np.ndarray:
    """Fixed bin size discretisation (IBSI 2.7.2), grey levels from 1.

    ``X_d = floor((X - X_min) / w_b) + 1``, where ``X_min`` is the lower bound of the
    re-segmentation range when one is set (IBSI's rule, so that bins keep their meaning across
    images, e.g. HU), else the ROI minimum.
    """
    values = np.asarray(values, dtype=np.float64)
    lo = values.min() if lower_bound is None else lower_bound
    # A small relative guard keeps values that sit exactly on a bin edge from falling one bin
    # low through floating point error (e.g. (-475 - -500) / 25 computed as 0.99999...).
    q = (values - lo) / bin_width
    return (np.floor(q + 1e-9 * np.maximum(1.0, np.abs(q))).astype(np.int32) + 1).clip(min=1)
