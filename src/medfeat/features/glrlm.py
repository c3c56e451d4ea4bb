r"""Grey level run length matrix (GLRLM) features (IBSI chapter 1, section 3.7).

A run is a maximal line of consecutive ROI voxels with the same grey level along one direction;
voxels outside the ROI end runs. :math:`r_{ij}` counts runs of grey level :math:`i` and length
:math:`j`; :math:`N_s = \sum r_{ij}` is the number of runs, :math:`r_{i.}` and :math:`r_{.j}` the
marginal sums, :math:`p_{ij} = r_{ij}/N_s`, and :math:`N_v` the number of ROI voxels the matrix
was built from (for merged matrices, the sum over the merged matrices, as IBSI prescribes).

References
----------
.. [1] Zwanenburg A. et al. "The Image Biomarker Standardization Initiative." Radiology 295 (2020).
.. [2] Galloway M.M. "Texture analysis using gray level run lengths." Comput. Graph. Image
       Process. 4 (1975).
"""
from __future__ import annotations

import numba
import numpy as np

from medfeat.features.base import (AGGREGATIONS_3D, FeatureDef, aggregate, check_aggregations, compress_levels,
                                   directions_2d, directions_3d, flatten)

FAMILY = "glrlm"


@numba.njit(cache=True, nogil=True)
def _runs(idx, offsets, per_slice, out):  # pragma: no cover - compiled
    """Count every run into ``out[direction, slice or 0, level index, length - 1]``.

    A voxel starts a run when the voxel before it along the direction is outside the box, outside
    the ROI, or of another level; the run's length is found by walking forward from it.
    """
    dirs = offsets.shape[0]
    nz, ny, nx = idx.shape
    cap = out.shape[3]
    for d in range(dirs):
        dz = offsets[d, 0]
        dy = offsets[d, 1]
        dx = offsets[d, 2]
        for z in range(nz):
            zs = z if per_slice else 0
            for y in range(ny):
                for x in range(nx):
                    a = idx[z, y, x]
                    if a < 0:
                        continue
                    pz = z - dz
                    py = y - dy
                    px = x - dx
                    if 0 <= pz < nz and 0 <= py < ny and 0 <= px < nx:
                        if idx[pz, py, px] == a:
                            continue
                    length = 1
                    qz = z + dz
                    qy = y + dy
                    qx = x + dx
                    while 0 <= qz < nz and 0 <= qy < ny and 0 <= qx < nx:
                        if idx[qz, qy, qx] != a:
                            break
                        length += 1
                        qz += dz
                        qy += dy
                        qx += dx
                    if length > cap:  # caller sized ``out`` too small: report the length needed
                        return length
                    out[d, zs, a, length - 1] += 1.0
    return 0


def run_length_matrices(levels: np.ndarray, three_d: bool = False):
    """Run length counts over the grey levels present.

    Returns ``(matrices, n_voxels, grey_levels)``: matrices ``(4, slices, G, L)`` per in-plane
    direction and slice (``n_voxels`` ``(4, slices)``), or ``(13, G, L)`` per 3D direction
    (``n_voxels`` ``(13,)``); ``L`` is the longest run found, column ``j`` holds runs of length ``j+1``.
    """
    idx, values = compress_levels(np.asarray(levels))
    return _run_matrices(np.ascontiguousarray(idx), values.size, three_d) + (values,)


def _run_matrices(idx: np.ndarray, g: int, three_d: bool):
    offsets = directions_2d() if not three_d else directions_3d()
    n_dirs = offsets.shape[0]
    slices = 1 if three_d else idx.shape[0]
    longest = max(idx.shape) if three_d else max(idx.shape[1:])
    # Most runs are short: start with a small length axis and grow it only if a longer run exists,
    # so per-slice matrices of a large volume stay small.
    cap = min(longest, 64)
    while True:
        m = np.zeros((n_dirs, slices, g, cap))
        need = _runs(idx, offsets, not three_d, m)
        if need == 0:
            break
        cap = min(longest, max(need, 2 * cap))
    used = np.flatnonzero(m.sum(axis=(0, 1, 2)))
    m = m[..., : (used[-1] + 1 if used.size else 1)]
    roi = idx >= 0
    if three_d:
        return m[:, 0], np.full(n_dirs, float(np.count_nonzero(roi)))
    nv = np.broadcast_to(roi.sum(axis=(1, 2)).astype(np.float64), (n_dirs, slices)).copy()
    return m, nv


class _Batch:
    """Quantities shared by the features of a batch of run length matrices ``(n, G, L)``."""

    def __init__(self, r: np.ndarray, nv: np.ndarray, g: np.ndarray):
        self.r = r
        self.ns = r.sum(axis=(1, 2))
        self.nv = nv
        self.i = g                                   # grey level of each row
        self.j = np.arange(1, r.shape[2] + 1, dtype=np.float64)  # run length of each column
        self.ri = r.sum(axis=2)
        self.rj = r.sum(axis=1)
        self.p = r / self.ns[:, None, None]


def short_runs_emphasis(b: _Batch) -> np.ndarray:
    r"""Short runs emphasis (IBSI ``22OV``, ``rlm.sre``): :math:`F = \frac{1}{N_s}\sum_j r_{.j}/j^2`."""
    return b.rj @ (1.0 / b.j**2) / b.ns


def long_runs_emphasis(b: _Batch) -> np.ndarray:
    r"""Long runs emphasis (IBSI ``W4KF``, ``rlm.lre``): :math:`F = \frac{1}{N_s}\sum_j r_{.j}\,j^2`."""
    return b.rj @ b.j**2 / b.ns


def low_grey_level_run_emphasis(b: _Batch) -> np.ndarray:
    r"""Low grey level run emphasis (IBSI ``V3SW``, ``rlm.lgre``): :math:`F = \frac{1}{N_s}\sum_i r_{i.}/i^2`."""
    return b.ri @ (1.0 / b.i**2) / b.ns


def high_grey_level_run_emphasis(b: _Batch) -> np.ndarray:
    r"""High grey level run emphasis (IBSI ``G3QZ``, ``rlm.hgre``): :math:`F = \frac{1}{N_s}\sum_i r_{i.}\,i^2`."""
    return b.ri @ b.i**2 / b.ns


def _joint(b: _Batch, pi: float, pj: float) -> np.ndarray:
    w = (b.i[:, None] ** pi) * (b.j[None, :] ** pj)
    return np.sum(b.r * w, axis=(1, 2)) / b.ns


def short_run_low_grey_level_emphasis(b: _Batch) -> np.ndarray:
    r"""Short run low grey level emphasis (IBSI ``HTZT``, ``rlm.srlge``): :math:`F = \frac{1}{N_s}\sum_{ij} r_{ij}/(i^2 j^2)`."""
    return _joint(b, -2, -2)


def short_run_high_grey_level_emphasis(b: _Batch) -> np.ndarray:
    r"""Short run high grey level emphasis (IBSI ``GD3A``, ``rlm.srhge``): :math:`F = \frac{1}{N_s}\sum_{ij} r_{ij}\,i^2/j^2`."""
    return _joint(b, 2, -2)


def long_run_low_grey_level_emphasis(b: _Batch) -> np.ndarray:
    r"""Long run low grey level emphasis (IBSI ``IVPO``, ``rlm.lrlge``): :math:`F = \frac{1}{N_s}\sum_{ij} r_{ij}\,j^2/i^2`."""
    return _joint(b, -2, 2)


def long_run_high_grey_level_emphasis(b: _Batch) -> np.ndarray:
    r"""Long run high grey level emphasis (IBSI ``3KUM``, ``rlm.lrhge``): :math:`F = \frac{1}{N_s}\sum_{ij} r_{ij}\,i^2 j^2`."""
    return _joint(b, 2, 2)


def grey_level_non_uniformity(b: _Batch) -> np.ndarray:
    r"""Grey level non-uniformity (IBSI ``R5YN``, ``rlm.glnu``): :math:`F = \frac{1}{N_s}\sum_i r_{i.}^2`."""
    return np.sum(b.ri**2, axis=1) / b.ns


def normalised_grey_level_non_uniformity(b: _Batch) -> np.ndarray:
    r"""Normalised grey level non-uniformity (IBSI ``OVBL``, ``rlm.glnu.norm``): :math:`F = \frac{1}{N_s^2}\sum_i r_{i.}^2`."""
    return np.sum(b.ri**2, axis=1) / b.ns**2


def run_length_non_uniformity(b: _Batch) -> np.ndarray:
    r"""Run length non-uniformity (IBSI ``W92Y``, ``rlm.rlnu``): :math:`F = \frac{1}{N_s}\sum_j r_{.j}^2`."""
    return np.sum(b.rj**2, axis=1) / b.ns


def normalised_run_length_non_uniformity(b: _Batch) -> np.ndarray:
    r"""Normalised run length non-uniformity (IBSI ``IC23``, ``rlm.rlnu.norm``): :math:`F = \frac{1}{N_s^2}\sum_j r_{.j}^2`."""
    return np.sum(b.rj**2, axis=1) / b.ns**2


def run_percentage(b: _Batch) -> np.ndarray:
    r"""Run percentage (IBSI ``9ZK5``, ``rlm.r.perc``): :math:`F = N_s / N_v`."""
    return b.ns / b.nv


def grey_level_variance(b: _Batch) -> np.ndarray:
    r"""Grey level variance (IBSI ``8CE5``, ``rlm.gl.var``): :math:`F = \sum_{ij}(i-\mu)^2 p_{ij}`, :math:`\mu = \sum_{ij} i\,p_{ij}`."""
    pi = b.p.sum(axis=2)
    mu = pi @ b.i
    return pi @ b.i**2 - mu**2


def run_length_variance(b: _Batch) -> np.ndarray:
    r"""Run length variance (IBSI ``SXLW``, ``rlm.rl.var``): :math:`F = \sum_{ij}(j-\mu)^2 p_{ij}`, :math:`\mu = \sum_{ij} j\,p_{ij}`."""
    pj = b.p.sum(axis=1)
    mu = pj @ b.j
    return pj @ b.j**2 - mu**2


def run_entropy(b: _Batch) -> np.ndarray:
    r"""Run entropy (IBSI ``HJ9O``, ``rlm.rl.entr``): :math:`F = -\sum_{ij} p_{ij}\log_2 p_{ij}`."""
    p = b.p
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=(1, 2))


_TABLE = (
    ("rlm.sre", "22OV", "Short runs emphasis", short_runs_emphasis),
    ("rlm.lre", "W4KF", "Long runs emphasis", long_runs_emphasis),
    ("rlm.lgre", "V3SW", "Low grey level run emphasis", low_grey_level_run_emphasis),
    ("rlm.hgre", "G3QZ", "High grey level run emphasis", high_grey_level_run_emphasis),
    ("rlm.srlge", "HTZT", "Short run low grey level emphasis", short_run_low_grey_level_emphasis),
    ("rlm.srhge", "GD3A", "Short run high grey level emphasis", short_run_high_grey_level_emphasis),
    ("rlm.lrlge", "IVPO", "Long run low grey level emphasis", long_run_low_grey_level_emphasis),
    ("rlm.lrhge", "3KUM", "Long run high grey level emphasis", long_run_high_grey_level_emphasis),
    ("rlm.glnu", "R5YN", "Grey level non-uniformity", grey_level_non_uniformity),
    ("rlm.glnu.norm", "OVBL", "Normalised grey level non-uniformity", normalised_grey_level_non_uniformity),
    ("rlm.rlnu", "W92Y", "Run length non-uniformity", run_length_non_uniformity),
    ("rlm.rlnu.norm", "IC23", "Normalised run length non-uniformity", normalised_run_length_non_uniformity),
    ("rlm.r.perc", "9ZK5", "Run percentage", run_percentage),
    ("rlm.gl.var", "8CE5", "Grey level variance", grey_level_variance),
    ("rlm.rl.var", "SXLW", "Run length variance", run_length_variance),
    ("rlm.rl.entr", "HJ9O", "Run entropy", run_entropy),
)
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def features_of_matrices(runs: np.ndarray, n_voxels: np.ndarray, grey_levels: np.ndarray) -> dict[str, np.ndarray]:
    """Every GLRLM feature of a batch of run length matrices ``(n, G, L)`` -> ``{tag: values (n,)}``."""
    b = _Batch(runs, n_voxels, grey_levels)
    return {tag: fn(b) for tag, _, _, fn in _TABLE}


def glrlm_features(levels: np.ndarray, n_levels: int, aggregations=AGGREGATIONS_3D) -> dict[str, float]:
    """All GLRLM features of a discretised ROI in the requested IBSI aggregation methods.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``1..n_levels`` inside the ROI, 0 outside.
    n_levels : int
        Number of grey levels (kept for a uniform family interface; GLRLM features do not use it).
    aggregations : sequence of str
        IBSI aggregation methods.

    Returns
    -------
    dict
        ``{column name: value}``, e.g. ``rlm_sre_3d_avg``.
    """
    aggregations = check_aggregations(aggregations)
    idx, grey = compress_levels(np.asarray(levels))
    idx = np.ascontiguousarray(idx)
    compute = lambda m, nv: features_of_matrices(m, nv, grey)  # noqa: E731
    return flatten(aggregate(compute, aggregations, lambda: _run_matrices(idx, grey.size, False),
                             lambda: _run_matrices(idx, grey.size, True)), FEATURES, aggregations)

