"""Intensity-volume histogram features (IBSI chapter 1, section 3.5).

The IVH gives, for each intensity ``i`` of the (possibly discretised) intensity set ``G``, the
fraction of the ROI volume with an intensity of at least ``i``::

    nu_i    = 1 - 1/N_v sum_k [X_k < i]                       (fractional volume)
    gamma_i = (i - min G) / (max G - min G)                    (intensity fraction)

``G`` runs over every value between the lowest and highest possible intensity, not just those
present: every integer for unbinned integer images (HU, the digital phantom), every bin for
discretised images. Where a re-segmentation range is set, its bounds are the extremes of ``G``.

References
----------
.. [1] Zwanenburg A. et al. Radiology 295 (2020); IBSI reference manual, section 3.5.
.. [2] El Naqa I. et al. "Exploring feature-based approaches in PET images for predicting cancer
       treatment outcomes." Pattern Recognit. 42 (2009).
"""
from __future__ import annotations

import numpy as np

from medfeat.features.base import FeatureDef, column, level_counts

FAMILY = "ivh"

FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("ivh.V10", "BC2M", "Volume at intensity fraction"),
    FeatureDef("ivh.V90", "BC2M", "Volume at intensity fraction"),
    FeatureDef("ivh.I10", "GBPN", "Intensity at volume fraction"),
    FeatureDef("ivh.I90", "GBPN", "Intensity at volume fraction"),
    FeatureDef("ivh.V10minusV90", "DDTU", "Volume fraction difference between intensity fractions"),
    FeatureDef("ivh.I10minusI90", "CNV2", "Intensity fraction difference between volume fractions"),
)


def fractional_volumes(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``nu_i`` for every ``i`` of ``grid`` (sorted ascending): fraction of voxels with ``X >= i``."""
    x = np.asarray(values).ravel()
    g0 = grid[0]
    if np.issubdtype(x.dtype, np.integer) and np.array_equal(grid, g0 + np.arange(grid.size)):
        # bin numbers on a unit grid: cumulative counts, no sort
        counts = level_counts(x, grid.size - 1, offset=int(g0))  # block by block: no sample-sized temporaries
        below = np.concatenate(([0], np.cumsum(counts)[:-1]))
        below += np.count_nonzero(x < g0)
        return 1.0 - below / x.size
    x = np.sort(x.astype(np.float64))
    below = np.searchsorted(x, grid, side="left")
    return 1.0 - below / x.size


def volume_at_intensity_fraction(grid: np.ndarray, nu: np.ndarray, fraction: float) -> float:
    """Volume at intensity fraction (IBSI ``BC2M``, ``ivh.V10`` / ``ivh.V90``).

    ``V_x = max { nu_i : gamma_i >= x }``: the largest fractional volume among intensities whose
    intensity fraction is at least ``x``.
    """
    span = grid[-1] - grid[0]
    gamma = (grid - grid[0]) / span if span > 0 else np.zeros_like(grid)
    sel = gamma >= fraction - 1e-12
    return float(nu[sel].max()) if sel.any() else 0.0


def intensity_at_volume_fraction(grid: np.ndarray, nu: np.ndarray, fraction: float) -> float:
    """Intensity at volume fraction (IBSI ``GBPN``, ``ivh.I10`` / ``ivh.I90``).

    ``I_x = min { i : nu_i <= x }``: the lowest intensity above which at most ``x`` of the volume lies.
    """
    sel = nu <= fraction + 1e-12
    return float(grid[sel].min()) if sel.any() else float(grid[-1])


def ivh_features(values: np.ndarray, grid: np.ndarray) -> dict[str, float]:
    """All intensity-volume histogram features.

    Parameters
    ----------
    values : ndarray
        ROI intensities in the IVH's representation (raw, or bin centres / bin numbers when
        discretised for the IVH).
    grid : ndarray
        The intensity set ``G``, sorted ascending (see module docstring).
    """
    grid = np.asarray(grid, dtype=np.float64)
    nu = fractional_volumes(values, grid)
    v10 = volume_at_intensity_fraction(grid, nu, 0.10)
    v90 = volume_at_intensity_fraction(grid, nu, 0.90)
    i10 = intensity_at_volume_fraction(grid, nu, 0.10)
    i90 = intensity_at_volume_fraction(grid, nu, 0.90)
    out = {"ivh.V10": v10, "ivh.V90": v90, "ivh.I10": i10, "ivh.I90": i90,
           "ivh.V10minusV90": v10 - v90, "ivh.I10minusI90": i10 - i90}
    return {column(k): v for k, v in out.items()}
