r"""Neighbourhood grey tone difference matrix (NGTDM) features (IBSI chapter 1, section 3.10).

For every voxel :math:`k` of the ROI (intensity mask) with grey level :math:`X_k`, the
neighbourhood is the voxels within Chebyshev distance :math:`\delta` (default 1: 8 voxels in 2D,
26 in 3D), the voxel itself excluded. Neighbours outside the ROI are not used (IBSI deviates here
from Amadasun and King, who demand complete neighbourhoods): with :math:`W_k` the number of
neighbours inside the ROI,

.. math:: \overline{X}_k = \frac{1}{W_k} \sum_{\mathbf{m} \neq \mathbf{0},\ \|\mathbf{m}\|_\infty \le \delta,\
          \ \mathbf{k}+\mathbf{m} \in \mathrm{ROI}} X_{\mathbf{k}+\mathbf{m}}

and a voxel with :math:`W_k = 0` (no neighbour in the ROI) has no valid neighbourhood and is left
out. The NGTDM holds, per grey level :math:`i`,

* :math:`n_i`, the number of voxels of level :math:`i` with a valid neighbourhood,
* :math:`s_i = \sum_{k:\ X_k = i,\ W_k > 0} |i - \overline{X}_k|`, the grey tone difference,

and with :math:`N_{v,c} = \sum_i n_i`, :math:`p_i = n_i / N_{v,c}`, :math:`N_{g,p}` the number of
levels with :math:`p_i > 0`. Sums over pairs :math:`(i_1, i_2)` run over ordered pairs of levels
with :math:`p_{i_1} \neq 0` and :math:`p_{i_2} \neq 0`. Grey levels are the true discretised
levels; levels absent from the ROI change no feature.

Aggregation (IBSI 3.10.1, :mod:`medfeat.features.aggregation`): "2D" builds one NGTDM per slice
(in-plane neighbourhoods, no averaging across slices) and averages the features over the slices;
"2.5D" merges the slices' NGTDMs (:math:`n_i` and :math:`s_i` summed, :math:`p_i` and
:math:`N_{v,c}` recomputed from the merged matrix); "3D" uses one NGTDM with volumetric
neighbourhoods. Any directional method stands for the undirected one of its dimension
(``"2D, averaged"`` -> ``"2D"``); column suffixes are ``_2d``, ``_25d``, ``_3d``.

Degenerate cases: a single grey level with valid neighbourhoods has :math:`s_i = 0`, so coarseness
is IBSI's cap :math:`10^6` and contrast, busyness, complexity and strength are 0 (IBSI sets
contrast and busyness to 0 when :math:`N_{g,p} = 1` and strength to 0 when
:math:`\sum_i s_i = 0`). Busyness is also 0 when its denominator vanishes with
:math:`N_{g,p} > 1` (two levels with equal :math:`i\,n_i`; PyRadiomics does the same). A matrix
without any valid neighbourhood (a single-voxel slice) is left out of the "2D" average; a method
without any gives NaN.

IBSI's manual spells the complexity tag ``ntg.complexity`` (a typo, code ``HDEZ``); medfeat uses
``ngt.complexity`` (column ``ngt_complexity_<aggregation>``) like the other four features.

Implementation
--------------
Neighbour sums and counts come from one separable box sum (window :math:`2\delta + 1` along
each axis, compiled running sums, zero outside the box) of the ROI's grey levels and its
indicator, packed in one integer array as ``level * K + inside`` (``K`` a power of two above the
neighbourhood size, so the two sums never mix); the centre voxel is subtracted. All sums are
of integers, so :math:`\overline{X}_k` is exact. The same compiled pass adds each voxel to its
slice's (or the volume's) :math:`n_i` and :math:`s_i`; a large ROI is summed in slabs along z
(:data:`SLAB_CELLS`), with :math:`\delta` slices of neighbours on each side in 3D. Features are numpy over the batch of
matrices; every pair sum except complexity's reduces to :math:`O(N_g)` moments (busyness's
:math:`\sum |i_1 n_{i_1} - i_2 n_{i_2}|` by sorting), complexity is an :math:`N_{g,p}^2` sum per
matrix in bounded chunks.

References
----------
.. [1] Zwanenburg A., Vallieres M., et al. "The Image Biomarker Standardization Initiative:
       standardized quantitative radiomics for high-throughput image-based phenotyping."
       Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145. Reference manual
       (arXiv:1612.07003), section 3.10 "Neighbourhood grey tone difference based features".
.. [2] Amadasun M., King R. "Textural features corresponding to textural properties." IEEE
       Trans. Syst. Man Cybern. 19(5):1264-1274 (1989). doi:10.1109/21.44046.
.. [3] Hatt M. et al. (busyness's denominator with absolute values), and van Griethuysen J.J.M.
       et al. "Computational radiomics system to decode the radiographic phenotype." Cancer
       Research 77(21):e104-e107 (2017) (PyRadiomics, ``radiomics/ngtdm.py``).
"""
from __future__ import annotations

import numba
import numpy as np

from medfeat.features.aggregation import aggregate
from medfeat.features.base import (FeatureDef, check_distance, check_levels, flatten, level_counts,
                                   undirected_aggregations)

FAMILY = "ngtdm"

__all__ = ["FAMILY", "FEATURES", "ngtdm_features", "ngtdm_matrices", "features_of_matrices"]

#: IBSI's cap on coarseness, used when :math:`\sum_i p_i s_i = 0`.
COARSENESS_MAX = 1e6

#: voxels per slab of the neighbourhood sums (see :func:`ngtdm_matrices`)
SLAB_CELLS = 1 << 22

# complexity's pair sums are evaluated over at most this many (i1, i2) cells at a time
_PAIR_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------
# Matrix construction
# --------------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _window_sums(a, distance, out):  # pragma: no cover - compiled
    """``out[o, k, i] = sum of a[o, k - distance : k + distance + 1, i]``, zero beyond the array:
    a running sum along the middle axis of 3-D integer arrays, the last axis innermost."""
    outer, n, inner = a.shape
    if inner == 1:  # along the last axis: the running sum stays in a register
        for o in range(outer):
            run = a.dtype.type(0)
            for k in range(min(distance + 1, n)):
                run += a[o, k, 0]
            out[o, 0, 0] = run
            for k in range(1, n):
                if k + distance < n:
                    run += a[o, k + distance, 0]
                if k - distance - 1 >= 0:
                    run -= a[o, k - distance - 1, 0]
                out[o, k, 0] = run
        return
    for o in range(outer):
        for i in range(inner):  # the window of position 0
            run = a.dtype.type(0)
            for k in range(min(distance + 1, n)):
                run += a[o, k, i]
            out[o, 0, i] = run
        for k in range(1, n):
            hi, lo = k + distance, k - distance - 1
            for i in range(inner):
                run = out[o, k - 1, i]
                if hi < n:
                    run += a[o, hi, i]
                if lo >= 0:
                    run -= a[o, lo, i]
                out[o, k, i] = run


@numba.njit(cache=True, nogil=True)
def _accumulate(levels, lut, g, distance, three_d, shift, buf, tmp, first, n_centre):  # pragma: no cover - compiled
    """``(n_i, s_i)`` per matrix. Each voxel's neighbourhood sum of ``level * 2**shift + inside`` (a
    separable box sum over a zero border, the centre subtracted) holds, exactly, the sum of its ROI
    neighbours' levels and their number; each ROI voxel (raster order) with a neighbour adds 1 and
    ``|level - their mean|`` to its level's column. ``buf`` and ``tmp`` are two work arrays of the
    shape of ``levels`` (an integer type that holds the sums).

    Only the voxels of slices ``first .. first + n_centre - 1`` are centres (the others are the
    neighbours a slab of a volume needs): one matrix per such slice, or one for all of them in 3D.
    """
    nz, ny, nx = levels.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                v = levels[z, y, x]
                buf[z, y, x] = (v << shift) | (1 if v > 0 else 0)
    _window_sums(buf.reshape(nz * ny, nx, 1), distance, tmp.reshape(nz * ny, nx, 1))  # along x
    _window_sums(tmp, distance, buf)  # along y
    total = buf
    if three_d:
        _window_sums(buf.reshape(1, nz, ny * nx), distance, tmp.reshape(1, nz, ny * nx))
        total = tmp
    low = (1 << shift) - 1
    out = np.zeros((1 if three_d else n_centre, 2, g))
    for z in range(first, first + n_centre):
        m = 0 if three_d else z - first
        for y in range(ny):
            for x in range(nx):
                level = levels[z, y, x]
                if level <= 0:
                    continue
                t = total[z, y, x] - ((level << shift) | 1)  # the centre is not its own neighbour
                count = t & low
                if count > 0:
                    k = lut[level]
                    out[m, 0, k] += 1.0
                    out[m, 1, k] += abs(level - (t >> shift) / count)
    return out


def ngtdm_matrices(levels: np.ndarray, distance: int = 1, three_d: bool = False):
    """NGTDMs of a discretised ROI over the grey levels present.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x) or (y, x)
        Grey levels ``>= 1`` inside the ROI, 0 outside. Axis 0 is the slice axis.
    distance : int
        Chebyshev neighbourhood radius :math:`\\delta`.
    three_d : bool
        Volumetric neighbourhoods and one matrix, instead of in-plane neighbourhoods and one
        matrix per slice.

    Returns
    -------
    matrices : ndarray of float64
        ``(slices, 2, G)`` per slice of ``levels``, or ``(2, G)`` for the volume: row 0 is
        :math:`n_i`, row 1 is :math:`s_i`, column ``g`` the ``g``-th grey level present.
    grey_levels : ndarray of float64, shape (G,)
        The true grey level of each column.
    """
    return _matrices(check_levels(levels), check_distance(distance), three_d)


def _matrices(levels: np.ndarray, distance: int, three_d: bool):
    """:func:`ngtdm_matrices` of checked ``levels`` (``(z, y, x)``) and ``distance``."""
    nz = levels.shape[0]
    top = int(levels.max()) if levels.size else 0
    hist = level_counts(levels, top)  # O(N), no sort
    hist[0] = 0
    present = np.flatnonzero(hist)
    grey = present.astype(np.float64)
    g = present.size
    if g == 0:
        return np.zeros((2, 0) if three_d else (nz, 2, 0)), grey
    lut = np.zeros(top + 1, dtype=np.intp)
    lut[present] = np.arange(g, dtype=np.intp)
    size = (2 * distance + 1) ** (3 if three_d else 2)
    shift = int(size).bit_length()  # 2**shift above the largest neighbour count
    dtype = np.int32 if ((top + 1) << shift) * size < 2**31 else np.int64
    levels = np.ascontiguousarray(levels, dtype=dtype)
    # slab by slab along z (with ``distance`` slices of neighbours on each side in 3D): the two
    # work arrays stay about SLAB_CELLS voxels, not two copies of a large ROI's box
    halo = distance if three_d else 0
    step = max(1, SLAB_CELLS // max(1, levels[0].size) - 2 * halo)
    work = np.empty((2, min(nz, step + 2 * halo)) + levels.shape[1:], dtype)
    parts = []
    for z0 in range(0, nz, step):
        z1 = min(z0 + step, nz)
        lo, hi = max(0, z0 - halo), min(nz, z1 + halo)
        parts.append(_accumulate(levels[lo:hi], lut, g, distance, three_d, shift, work[0, :hi - lo],
                                 work[1, :hi - lo], z0 - lo, z1 - z0))
    if three_d:
        return np.sum(parts, axis=0)[0], grey
    return np.concatenate(parts), grey


# --------------------------------------------------------------------------------------------------
# Features of a batch of matrices
# --------------------------------------------------------------------------------------------------

class NGTDMBatch:
    """A batch of ``n`` NGTDMs and what several features share.

    Attributes (``G`` grey levels): ``n_i``, ``s_i`` (n, G); ``present`` (n, G) bool
    :math:`p_i > 0`; ``n_vc`` (n,) :math:`N_{v,c}`; ``p`` (n, G); ``n_gp`` (n,) :math:`N_{g,p}`;
    ``ps`` (n,) :math:`\\sum_i p_i s_i`; ``s_sum`` (n,) :math:`\\sum_i s_i`; ``i`` (G,) grey levels.
    """

    __slots__ = ("n_i", "s_i", "present", "n_vc", "p", "n_gp", "ps", "s_sum", "i")

    def __init__(self, matrices: np.ndarray, grey_levels: np.ndarray):
        m = np.asarray(matrices, dtype=np.float64)
        self.n_i = m[:, 0]
        self.s_i = m[:, 1]
        self.i = np.asarray(grey_levels, dtype=np.float64)
        self.present = self.n_i > 0
        self.n_vc = self.n_i.sum(axis=1)
        self.p = self.n_i / self.n_vc[:, None]
        self.n_gp = self.present.sum(axis=1)
        self.ps = np.einsum("ni,ni->n", self.p, self.s_i)
        self.s_sum = self.s_i.sum(axis=1)


def coarseness(b: NGTDMBatch) -> np.ndarray:
    r"""Coarseness.

    IBSI code ``QCDE``, tag ``ngt.coarseness``.

    .. math:: F = \frac{1}{\sum_{i=1}^{N_g} p_i\, s_i}

    capped at :math:`10^6` (:data:`COARSENESS_MAX`, IBSI), which is also its value when the sum
    is 0 (a single grey level).
    """
    with np.errstate(divide="ignore"):
        return np.minimum(1.0 / b.ps, COARSENESS_MAX)


def contrast(b: NGTDMBatch) -> np.ndarray:
    r"""Contrast.

    IBSI code ``65HE``, tag ``ngt.contrast``.

    .. math:: F = \left(\frac{1}{N_{g,p}(N_{g,p}-1)} \sum_{i_1}\sum_{i_2} p_{i_1} p_{i_2}\,(i_1-i_2)^2\right)
              \left(\frac{1}{N_{v,c}} \sum_{i=1}^{N_g} s_i\right)

    0 when :math:`N_{g,p} = 1`. The pair sum equals :math:`2\sum_i p_i (i - \mu)^2`,
    :math:`\mu = \sum_i i\,p_i`.
    """
    mu = b.p @ b.i
    var = np.einsum("ni,ni->n", b.p, (b.i[None, :] - mu[:, None]) ** 2)
    k = b.n_gp.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = 2.0 * var / (k * (k - 1.0)) * (b.s_sum / b.n_vc)
    return np.where(b.n_gp > 1, f, 0.0)


def _sum_abs_pair_differences(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """:math:`\\sum_{a,b} |x_a - x_b|` over ordered pairs of present entries, per row: with the
    ``m`` present values sorted, :math:`2\\sum_k x_{(k)} (2k - m - 1)`."""
    m = present.sum(axis=1)
    xs = np.sort(np.where(present, x, np.inf), axis=1)
    k = np.arange(1, x.shape[1] + 1, dtype=np.float64)
    w = 2.0 * k[None, :] - m[:, None] - 1.0
    used = k[None, :] <= m[:, None]
    return 2.0 * np.sum(np.where(used, xs * w, 0.0), axis=1)


def busyness(b: NGTDMBatch) -> np.ndarray:
    r"""Busyness.

    IBSI code ``NQ30``, tag ``ngt.busyness``.

    .. math:: F = \frac{\sum_{i=1}^{N_g} p_i\, s_i}{\sum_{i_1}\sum_{i_2} \left|i_1 p_{i_1} - i_2 p_{i_2}\right|}

    (Hatt's absolute values; Amadasun and King's denominator is always 0). 0 when
    :math:`N_{g,p} = 1` or the denominator is 0. The denominator is evaluated from the integer
    :math:`i\,n_i` (exact) and divided by :math:`N_{v,c}`.
    """
    den = _sum_abs_pair_differences(b.i[None, :] * b.n_i, b.present) / b.n_vc
    ok = (b.n_gp > 1) & (den > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, b.ps / den, 0.0)


def complexity(b: NGTDMBatch) -> np.ndarray:
    r"""Complexity.

    IBSI code ``HDEZ``, tag ``ngt.complexity`` (IBSI's manual: ``ntg.complexity``).

    .. math:: F = \frac{1}{N_{v,c}} \sum_{i_1}\sum_{i_2} |i_1 - i_2|\,
              \frac{p_{i_1} s_{i_1} + p_{i_2} s_{i_2}}{p_{i_1} + p_{i_2}}
    """
    out = np.empty(b.n_vc.shape[0])
    for r in range(out.shape[0]):
        cols = np.flatnonzero(b.present[r])
        i, p = b.i[cols], b.p[r, cols]
        ps = p * b.s_i[r, cols]
        total = 0.0
        step = max(1, _PAIR_CHUNK // max(cols.size, 1))
        for lo in range(0, cols.size, step):
            sl = slice(lo, lo + step)
            total += np.sum(np.abs(i[sl, None] - i[None, :]) * (ps[sl, None] + ps[None, :])
                            / (p[sl, None] + p[None, :]))
        out[r] = total / b.n_vc[r]
    return out


def strength(b: NGTDMBatch) -> np.ndarray:
    r"""Strength.

    IBSI code ``1X9X``, tag ``ngt.strength``.

    .. math:: F = \frac{\sum_{i_1}\sum_{i_2} (p_{i_1} + p_{i_2})(i_1 - i_2)^2}{\sum_{i=1}^{N_g} s_i}

    0 when :math:`\sum_i s_i = 0`. With :math:`c` the mean of the present levels, the numerator is
    :math:`2\sum_{i_1} p_{i_1}\left(N_{g,p}(i_1 - c)^2 + \sum_{i_2}(i_2 - c)^2\right)`.
    """
    k = b.n_gp.astype(np.float64)
    c = np.where(b.present, b.i[None, :], 0.0).sum(axis=1) / k
    dev2 = (b.i[None, :] - c[:, None]) ** 2
    spread = np.where(b.present, dev2, 0.0).sum(axis=1)
    num = 2.0 * (k * np.einsum("ni,ni->n", b.p, dev2) + spread)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b.s_sum > 0, num / b.s_sum, 0.0)


_TABLE = (
    ("ngt.coarseness", "QCDE", "Coarseness", coarseness),
    ("ngt.contrast", "65HE", "Contrast", contrast),
    ("ngt.busyness", "NQ30", "Busyness", busyness),
    ("ngt.complexity", "HDEZ", "Complexity", complexity),
    ("ngt.strength", "1X9X", "Strength", strength),
)
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def features_of_matrices(matrices: np.ndarray, grey_levels: np.ndarray) -> dict[str, np.ndarray]:
    """Every NGTDM feature of a batch of non-empty matrices ``(n, 2, G)`` -> ``{tag: (n,)}``."""
    b = NGTDMBatch(matrices, grey_levels)
    return {tag: fn(b) for tag, _, _, fn in _TABLE}


def ngtdm_features(levels: np.ndarray, aggregations=("3D",), distance: int = 1) -> dict[str, float]:
    """All NGTDM features of a discretised ROI in the requested IBSI aggregation methods.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``>= 1`` inside the ROI (the intensity mask), 0 outside. Axis 0 is the slice
        axis of the 2D / 2.5D methods.
    aggregations : sequence of str
        ``"2D"``, ``"2.5D"``, ``"3D"``, or directional IBSI methods standing for them
        (:func:`medfeat.features.base.undirected_aggregations`).
    distance : int
        Chebyshev neighbourhood radius :math:`\\delta` (IBSI default 1).

    Returns
    -------
    dict
        ``{column name: value}`` for every feature and method, e.g. ``ngt_coarseness_3d``; NaN
        where no voxel has a neighbour in the ROI.
    """
    methods = undirected_aggregations(aggregations)
    levels = check_levels(levels)
    distance = check_distance(distance)
    grey_box: dict[str, np.ndarray] = {}

    def build(three_d):  # a stack of one direction
        m, grey = _matrices(levels, distance, three_d)
        grey_box["grey"] = grey
        return m[np.newaxis]

    def features(batch):
        return features_of_matrices(batch, grey_box["grey"])

    res = aggregate(methods, features, lambda: build(False), lambda: build(True))
    return flatten(res, FEATURES, methods)
