r"""Neighbouring grey level dependence matrix (NGLDM) features (IBSI chapter 1, section 3.11).

A neighbour of ROI voxel :math:`k` (grey level :math:`X_k`) lies within Chebyshev distance
:math:`\delta` (default 1: 8 voxels in 2D, 26 in 3D) and is *dependent* when it lies in the ROI and
:math:`|X_k - X_{k+m}| \le \alpha` (coarseness parameter, default 0: same grey level). The
dependence of :math:`k` counts the voxel itself too, so it starts at 1 (IBSI):

.. math:: j_k = 1 + \sum_{\mathbf{m} \neq \mathbf{0},\ \|\mathbf{m}\|_\infty \le \delta}
          \big[\mathbf{k}+\mathbf{m} \in \mathrm{ROI} \text{ and } |X_k - X_{\mathbf{k}+\mathbf{m}}| \le \alpha\big]

Every ROI voxel has a neighbourhood (IBSI keeps incomplete ones; neighbours outside the ROI just do
not count), so the NGLDM :math:`s_{ij}`, the number of voxels with grey level :math:`i` and
dependence :math:`j`, holds :math:`N_s = \sum_{ij} s_{ij} = N_v` neighbourhoods. With
:math:`N_g` grey levels and :math:`N_n` the largest dependence,

* :math:`s_{i.} = \sum_j s_{ij}` and :math:`s_{.j} = \sum_i s_{ij}` are the marginal sums,
* :math:`p_{ij} = s_{ij} / N_s` is the joint probability.

Grey levels :math:`i` are the true discretised levels (levels absent from the ROI contribute no row;
leaving them out changes no feature), dependences start at 1, logarithms are base 2. The feature
formulas follow the GLRLM's (:mod:`medfeat.features.glrlm`) with runs replaced by dependences.

Aggregation (IBSI 3.11.1, :mod:`medfeat.features.aggregation`): "2D" builds one NGLDM per slice
(in-plane neighbourhoods) and averages the features over the slices; "2.5D" sums the slices'
NGLDMs (:math:`N_s` and :math:`N_v` summed too) into one; "3D" uses one NGLDM with volumetric
neighbourhoods. Any directional method stands for the undirected one of its dimension
(``"2D, averaged"`` -> ``"2D"``); column suffixes are ``_2d``, ``_25d``, ``_3d``.

Implementation
--------------
The ROI's bounding box is padded by :math:`\delta` voxels of a sentinel level (:math:`-\alpha - 1`,
never dependent on a grey level :math:`\ge 1`; in 2D only in-plane) and flattened, so each
neighbour offset is a constant shift ``s`` of the flat array. For each of the half of the offsets
that is lexicographically positive, one vectorised comparison of ``v[:-s]`` with ``v[s:]`` yields
the dependent pairs, which are added to the counts of both voxels of the pair (dependence is
symmetric): 13 comparisons in 3D, 4 in 2D, no Python loop over voxels. One ``np.bincount`` keyed
by ``(slice, level, dependence)`` then gives every slice's matrix at once.

References
----------
.. [1] Zwanenburg A., Vallieres M., et al. "The Image Biomarker Standardization Initiative:
       standardized quantitative radiomics for high-throughput image-based phenotyping."
       Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145. Reference manual
       (arXiv:1612.07003), section 3.11 "Neighbouring grey level dependence based features".
.. [2] Sun C., Wee W.G. "Neighboring gray level dependence matrix for texture classification."
       Computer Vision, Graphics, and Image Processing 23(3):341-352 (1983).
       doi:10.1016/0734-189X(83)90032-4.
.. [3] van Griethuysen J.J.M. et al. "Computational radiomics system to decode the radiographic
       phenotype." Cancer Research 77(21):e104-e107 (2017) (PyRadiomics, ``radiomics/gldm.py``).
"""
from __future__ import annotations

import itertools

import numba
import numpy as np

from medfeat.features.aggregation import aggregate
from medfeat.features.base import (FeatureDef, check_distance, check_levels, flatten, level_counts,
                                   undirected_aggregations)

FAMILY = "ngldm"

__all__ = ["FAMILY", "FEATURES", "ngldm_features", "ngldm_matrices", "dependence_counts",
           "features_of_matrices"]


# --------------------------------------------------------------------------------------------------
# Matrix construction
# --------------------------------------------------------------------------------------------------

def _check_parameters(distance, alpha) -> tuple[int, int]:
    d = check_distance(distance)
    a = int(alpha)
    if a != alpha or a < 0:
        raise ValueError(f"coarseness alpha must be a non-negative integer, got {alpha!r}")
    return d, a


def _half_offsets(distance: int, three_d: bool) -> list[tuple[int, int, int]]:
    """The lexicographically positive half of the offsets within Chebyshev distance ``distance``."""
    r = range(-distance, distance + 1)
    zs = r if three_d else (0,)
    return [m for m in itertools.product(zs, r, r) if m > (0, 0, 0)]


def dependence_counts(levels: np.ndarray, distance: int = 1, alpha: int = 0,
                      three_d: bool = False) -> np.ndarray:
    """Dependence :math:`j_k` of every voxel (1 + its dependent ROI neighbours); 0 outside the ROI.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x) or (y, x)
        Grey levels ``>= 1`` inside the ROI, 0 outside.
    distance : int
        Chebyshev neighbourhood radius :math:`\\delta`.
    alpha : int
        Coarseness parameter :math:`\\alpha`: neighbours within :math:`\\alpha` grey levels depend.
    three_d : bool
        Volumetric neighbourhoods instead of in-plane ones.

    Returns
    -------
    ndarray of int, shape of ``levels`` (3-D)
    """
    levels = check_levels(levels)
    distance, alpha = _check_parameters(distance, alpha)
    padded, _ = _pad(levels, distance, alpha, three_d)
    counts = _counts(padded, distance, alpha, three_d)
    d = distance
    dz = d if three_d else 0
    nz, ny, nx = levels.shape
    out = counts.reshape(padded.shape)[dz:dz + nz, d:d + ny, d:d + nx].astype(np.int64)
    out[levels == 0] = 0
    return out


def _pad(levels: np.ndarray, distance: int, alpha: int, three_d: bool) -> tuple[np.ndarray, int]:
    """Levels in a box padded by ``distance`` (in z only for 3D) with the sentinel ``-alpha - 1``,
    also outside the ROI; the smallest integer dtype that holds them. Returns ``(padded, z_pad)``."""
    top = int(levels.max()) if levels.size else 0
    sentinel = -alpha - 1
    dtype = np.int16 if top - sentinel < 2**15 else np.int32 if top - sentinel < 2**31 else np.int64
    d = distance
    dz = d if three_d else 0
    nz, ny, nx = levels.shape
    padded = np.full((nz + 2 * dz, ny + 2 * d, nx + 2 * d), sentinel, dtype=dtype)
    inner = padded[dz:dz + nz, d:d + ny, d:d + nx]
    np.copyto(inner, levels, casting="unsafe")
    inner[levels == 0] = sentinel
    return padded, dz


def _counts(padded: np.ndarray, distance: int, alpha: int, three_d: bool) -> np.ndarray:
    """Flat dependence counts over the padded box (meaningful at ROI voxels only)."""
    _, py, px = padded.shape
    flat = padded.reshape(-1)
    n = flat.size
    size = (2 * distance + 1) ** (3 if three_d else 2)
    counts = np.ones(n, dtype=np.uint8 if size < 256 else np.uint16 if size < 65536 else np.uint32)
    dependent = np.empty(n, dtype=bool)
    diff = np.empty(n, dtype=np.int64) if alpha > 0 else None
    for dz, dy, dx in _half_offsets(distance, three_d):
        s = (dz * py + dy) * px + dx  # > 0; the padding keeps every ROI voxel's neighbour inside
        if s >= n:
            continue
        e = dependent[: n - s]
        if alpha == 0:
            np.equal(flat[: n - s], flat[s:], out=e)
        else:
            t = diff[: n - s]
            np.subtract(flat[: n - s], flat[s:], out=t, dtype=np.int64)
            np.abs(t, out=t)
            np.less_equal(t, alpha, out=e)
        counts[: n - s] += e
        counts[s:] += e
    return counts


@numba.njit(cache=True, nogil=True)
def _matrix(flat, counts, lut, g, n_mats, plane):  # pragma: no cover - compiled
    """``(n_mats, g, N_n)`` counts of (matrix, level index, dependence - 1) over the ROI voxels
    (``flat > 0``), a voxel's matrix being its flat position // ``plane``; ``N_n`` is the largest
    dependence."""
    n_dep = 1
    for p in range(flat.size):
        if flat[p] > 0 and counts[p] > n_dep:
            n_dep = counts[p]
    m = np.zeros((n_mats, g, n_dep))
    for k in range(n_mats):  # matrix k: the flat positions k * plane .. (k + 1) * plane - 1
        for p in range(k * plane, min((k + 1) * plane, flat.size)):
            v = flat[p]
            if v > 0:
                m[k, lut[v], counts[p] - 1] += 1.0
    return m


def ngldm_matrices(levels: np.ndarray, distance: int = 1, alpha: int = 0, three_d: bool = False):
    """NGLDMs of a discretised ROI over the grey levels present.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x) or (y, x)
        Grey levels ``>= 1`` inside the ROI, 0 outside. Axis 0 is the slice axis.
    distance : int
        Chebyshev neighbourhood radius :math:`\\delta`.
    alpha : int
        Coarseness parameter :math:`\\alpha`.
    three_d : bool
        Volumetric neighbourhoods and one matrix, instead of in-plane neighbourhoods and one
        matrix per slice.

    Returns
    -------
    matrices : ndarray of float64
        ``(slices, G, N_n)`` per slice of ``levels``, or ``(G, N_n)`` for the volume;
        ``matrices[..., g, j - 1]`` counts the voxels of the ``g``-th grey level present with
        dependence ``j``; ``N_n`` is the largest dependence.
    grey_levels : ndarray of float64, shape (G,)
        The true grey level of each row.
    """
    return _matrices(check_levels(levels), *_check_parameters(distance, alpha), three_d)


def _matrices(levels: np.ndarray, distance: int, alpha: int, three_d: bool):
    """:func:`ngldm_matrices` of checked ``levels`` (``(z, y, x)``), ``distance`` and ``alpha``."""
    nz = levels.shape[0]
    top = int(levels.max()) if levels.size else 0
    hist = level_counts(levels, top)  # O(N), no sort
    hist[0] = 0
    present = np.flatnonzero(hist)
    g = present.size
    if g == 0:
        return np.zeros((0, 0) if three_d else (nz, 0, 0)), present.astype(np.float64)
    padded, _ = _pad(levels, distance, alpha, three_d)
    counts = _counts(padded, distance, alpha, three_d)
    flat = padded.reshape(-1)
    lut = np.zeros(top + 1, dtype=np.intp)
    lut[present] = np.arange(g, dtype=np.intp)
    # no z padding in 2D: a voxel's slice is its flat position's plane
    plane = flat.size if three_d else padded.shape[1] * padded.shape[2]
    m = _matrix(flat, counts, lut, g, 1 if three_d else nz, plane)
    return (m[0] if three_d else m), present.astype(np.float64)


# --------------------------------------------------------------------------------------------------
# Features of a batch of matrices
# --------------------------------------------------------------------------------------------------

class NGLDMBatch:
    """A batch of ``n`` NGLDMs and the quantities every feature shares.

    Attributes: ``s`` (n, G, N_n) counts :math:`s_{ij}`; ``s_i`` (n, G) :math:`s_{i.}`; ``s_j``
    (n, N_n) :math:`s_{.j}`; ``n_s`` (n,) :math:`N_s`; ``n_v`` (n,) :math:`N_v` (equal to
    :math:`N_s` under IBSI's definition); ``i`` (G,) grey levels; ``j`` (N_n,) dependences ``1..N_n``.
    """

    __slots__ = ("s", "s_i", "s_j", "n_s", "n_v", "i", "j")

    def __init__(self, matrices: np.ndarray, grey_levels: np.ndarray, n_voxels: np.ndarray | None = None):
        self.s = np.asarray(matrices, dtype=np.float64)
        self.s_i = self.s.sum(axis=2)
        self.s_j = self.s.sum(axis=1)
        self.n_s = self.s_i.sum(axis=1)
        self.n_v = self.n_s if n_voxels is None else np.asarray(n_voxels, dtype=np.float64)
        self.i = np.asarray(grey_levels, dtype=np.float64)
        self.j = np.arange(1.0, self.s.shape[2] + 1.0)


def _joint(b: NGLDMBatch, wi: np.ndarray, wj: np.ndarray) -> np.ndarray:
    """:math:`\\frac{1}{N_s}\\sum_{ij} s_{ij}\\,w_i\\,w_j` for every matrix of the batch."""
    return (b.s @ wj) @ wi / b.n_s


def low_dependence_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""Low dependence emphasis.

    IBSI code ``SODN``, tag ``ngl.lde``.

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_n} \frac{s_{.j}}{j^2}
    """
    return b.s_j @ (1.0 / b.j**2) / b.n_s


def high_dependence_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""High dependence emphasis.

    IBSI code ``IMOQ``, tag ``ngl.hde``.

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_n} j^2\, s_{.j}
    """
    return b.s_j @ b.j**2 / b.n_s


def low_grey_level_count_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""Low grey level count emphasis.

    IBSI code ``TL9H``, tag ``ngl.lgce``.

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} \frac{s_{i.}}{i^2}
    """
    return b.s_i @ (1.0 / b.i**2) / b.n_s


def high_grey_level_count_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""High grey level count emphasis.

    IBSI code ``OAE7``, tag ``ngl.hgce``.

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} i^2\, s_{i.}
    """
    return b.s_i @ b.i**2 / b.n_s


def low_dependence_low_grey_level_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""Low dependence low grey level emphasis.

    IBSI code ``EQ3F``, tag ``ngl.ldlge``.

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_n} \frac{s_{ij}}{i^2 j^2}
    """
    return _joint(b, 1.0 / b.i**2, 1.0 / b.j**2)


def low_dependence_high_grey_level_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""Low dependence high grey level emphasis.

    IBSI code ``JA6D``, tag ``ngl.ldhge``.

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_n} \frac{i^2 s_{ij}}{j^2}
    """
    return _joint(b, b.i**2, 1.0 / b.j**2)


def high_dependence_low_grey_level_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""High dependence low grey level emphasis.

    IBSI code ``NBZI``, tag ``ngl.hdlge``.

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_n} \frac{j^2 s_{ij}}{i^2}
    """
    return _joint(b, 1.0 / b.i**2, b.j**2)


def high_dependence_high_grey_level_emphasis(b: NGLDMBatch) -> np.ndarray:
    r"""High dependence high grey level emphasis.

    IBSI code ``9QMG``, tag ``ngl.hdhge``.

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_n} i^2 j^2\, s_{ij}
    """
    return _joint(b, b.i**2, b.j**2)


def grey_level_non_uniformity(b: NGLDMBatch) -> np.ndarray:
    r"""Grey level non-uniformity.

    IBSI code ``FP8K``, tag ``ngl.glnu``.

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} s_{i.}^2
    """
    return np.einsum("ni,ni->n", b.s_i, b.s_i) / b.n_s


def normalised_grey_level_non_uniformity(b: NGLDMBatch) -> np.ndarray:
    r"""Normalised grey level non-uniformity.

    IBSI code ``5SPA``, tag ``ngl.glnu.norm``.

    .. math:: F = \frac{1}{N_s^2}\sum_{i=1}^{N_g} s_{i.}^2

    (for the 3D matrix: the intensity histogram's uniformity).
    """
    return np.einsum("ni,ni->n", b.s_i, b.s_i) / b.n_s**2


def dependence_count_non_uniformity(b: NGLDMBatch) -> np.ndarray:
    r"""Dependence count non-uniformity.

    IBSI code ``Z87G``, tag ``ngl.dcnu``.

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_n} s_{.j}^2
    """
    return np.einsum("nj,nj->n", b.s_j, b.s_j) / b.n_s


def normalised_dependence_count_non_uniformity(b: NGLDMBatch) -> np.ndarray:
    r"""Normalised dependence count non-uniformity.

    IBSI code ``OKJI``, tag ``ngl.dcnu.norm``.

    .. math:: F = \frac{1}{N_s^2}\sum_{j=1}^{N_n} s_{.j}^2
    """
    return np.einsum("nj,nj->n", b.s_j, b.s_j) / b.n_s**2


def dependence_count_percentage(b: NGLDMBatch) -> np.ndarray:
    r"""Dependence count percentage.

    IBSI code ``6XV8``, tag ``ngl.dc.perc``.

    .. math:: F = \frac{N_s}{N_v}

    Always 1 under IBSI's definition (every ROI voxel has a neighbourhood).
    """
    return b.n_s / b.n_v


def grey_level_variance(b: NGLDMBatch) -> np.ndarray:
    r"""Grey level variance.

    IBSI code ``1PFV``, tag ``ngl.gl.var``.

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_n} (i - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_n} i\, p_{ij}
    """
    p_i = b.s_i / b.n_s[:, None]
    mu = p_i @ b.i
    return np.einsum("ni,ni->n", p_i, (b.i[None, :] - mu[:, None]) ** 2)


def dependence_count_variance(b: NGLDMBatch) -> np.ndarray:
    r"""Dependence count variance.

    IBSI code ``DNX2``, tag ``ngl.dc.var``.

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_n} (j - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_n} j\, p_{ij}
    """
    p_j = b.s_j / b.n_s[:, None]
    mu = p_j @ b.j
    return np.einsum("nj,nj->n", p_j, (b.j[None, :] - mu[:, None]) ** 2)


def dependence_count_entropy(b: NGLDMBatch) -> np.ndarray:
    r"""Dependence count entropy.

    IBSI code ``FCBV``, tag ``ngl.dc.entr``.

    .. math:: F = -\sum_{i=1}^{N_g}\sum_{j=1}^{N_n} p_{ij} \log_2 p_{ij}

    (terms with :math:`p_{ij} = 0` contribute 0).
    """
    n = b.s.shape[0]
    flat = b.s.reshape(n, -1)
    k = np.flatnonzero(flat)
    matrix = k // flat.shape[1]
    p = flat.ravel()[k] / b.n_s[matrix]
    return 0.0 - np.bincount(matrix, weights=p * np.log2(p), minlength=n)  # 0.0 - x: never -0.0


def dependence_count_energy(b: NGLDMBatch) -> np.ndarray:
    r"""Dependence count energy.

    IBSI code ``CAS9``, tag ``ngl.dc.energy``.

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_n} p_{ij}^2
    """
    n = b.s.shape[0]
    flat = b.s.reshape(n, -1)
    return np.einsum("nk,nk->n", flat, flat) / b.n_s**2


_TABLE = (
    ("ngl.lde", "SODN", "Low dependence emphasis", low_dependence_emphasis),
    ("ngl.hde", "IMOQ", "High dependence emphasis", high_dependence_emphasis),
    ("ngl.lgce", "TL9H", "Low grey level count emphasis", low_grey_level_count_emphasis),
    ("ngl.hgce", "OAE7", "High grey level count emphasis", high_grey_level_count_emphasis),
    ("ngl.ldlge", "EQ3F", "Low dependence low grey level emphasis", low_dependence_low_grey_level_emphasis),
    ("ngl.ldhge", "JA6D", "Low dependence high grey level emphasis", low_dependence_high_grey_level_emphasis),
    ("ngl.hdlge", "NBZI", "High dependence low grey level emphasis", high_dependence_low_grey_level_emphasis),
    ("ngl.hdhge", "9QMG", "High dependence high grey level emphasis", high_dependence_high_grey_level_emphasis),
    ("ngl.glnu", "FP8K", "Grey level non-uniformity", grey_level_non_uniformity),
    ("ngl.glnu.norm", "5SPA", "Normalised grey level non-uniformity", normalised_grey_level_non_uniformity),
    ("ngl.dcnu", "Z87G", "Dependence count non-uniformity", dependence_count_non_uniformity),
    ("ngl.dcnu.norm", "OKJI", "Normalised dependence count non-uniformity",
     normalised_dependence_count_non_uniformity),
    ("ngl.dc.perc", "6XV8", "Dependence count percentage", dependence_count_percentage),
    ("ngl.gl.var", "1PFV", "Grey level variance", grey_level_variance),
    ("ngl.dc.var", "DNX2", "Dependence count variance", dependence_count_variance),
    ("ngl.dc.entr", "FCBV", "Dependence count entropy", dependence_count_entropy),
    ("ngl.dc.energy", "CAS9", "Dependence count energy", dependence_count_energy),
)
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def features_of_matrices(matrices: np.ndarray, grey_levels: np.ndarray) -> dict[str, np.ndarray]:
    """Every NGLDM feature of a batch of non-empty matrices ``(n, G, N_n)`` -> ``{tag: (n,)}``."""
    b = NGLDMBatch(matrices, grey_levels)
    return {tag: fn(b) for tag, _, _, fn in _TABLE}


def ngldm_features(levels: np.ndarray, aggregations=("3D",), distance: int = 1, alpha: int = 0) -> dict[str, float]:
    """All NGLDM features of a discretised ROI in the requested IBSI aggregation methods.

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
    alpha : int
        Coarseness parameter :math:`\\alpha` (IBSI default 0).

    Returns
    -------
    dict
        ``{column name: value}`` for every feature and method, e.g. ``ngl_lde_3d``; NaN when the
        ROI is empty.
    """
    methods = undirected_aggregations(aggregations)
    levels = check_levels(levels)
    distance, alpha = _check_parameters(distance, alpha)
    grey_box: dict[str, np.ndarray] = {}

    def build(three_d):  # a stack of one direction
        m, grey = _matrices(levels, distance, alpha, three_d)
        grey_box["grey"] = grey
        return m[np.newaxis]

    def features(batch):
        return features_of_matrices(batch, grey_box["grey"])

    res = aggregate(methods, features, lambda: build(False), lambda: build(True))
    return flatten(res, FEATURES, methods)
