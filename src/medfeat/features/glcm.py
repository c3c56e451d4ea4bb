r"""Grey level co-occurrence matrix (GLCM) features, IBSI chapter 1 section 3.6.

A grey level co-occurrence matrix :math:`\mathbf{M}_{\Delta}` counts how often a voxel of grey
level :math:`i` has a neighbour of grey level :math:`j` at the offset :math:`\Delta = \delta
\cdot \mathbf{d}` (Chebyshev distance :math:`\delta`, direction :math:`\mathbf{d}`), both voxels
inside the ROI intensity mask. medfeat's matrices are symmetric (every pair counted in both
directions, :math:`\mathbf{M} + \mathbf{M}^T`) and not distance weighted, as in the IBSI
reference configurations.

Notation (IBSI 3.6)
-------------------
* :math:`N_g` -- number of discretised grey levels (``n_levels``).
* :math:`p_{ij} = M_{ij} / \sum_{ij} M_{ij}` -- joint probability.
* :math:`p_{i.} = \sum_j p_{ij}`, :math:`p_{.j} = \sum_i p_{ij}` -- marginal probabilities.
* :math:`\mu_{i.} = \sum_i i\,p_{i.}`, :math:`\sigma_{i.}^2 = \sum_i (i-\mu_{i.})^2 p_{i.}` (idem
  :math:`\mu_{.j}`, :math:`\sigma_{.j}`); symmetric matrices have :math:`\mu_{i.} = \mu_{.j}`.
* :math:`p_{i-j,k} = \sum_{ij} p_{ij}\,[|i-j| = k]`, :math:`k = 0 \dots N_g-1` -- diagonal probabilities.
* :math:`p_{i+j,k} = \sum_{ij} p_{ij}\,[i+j = k]`, :math:`k = 2 \dots 2N_g` -- cross-diagonal probabilities.
* :math:`HXY = -\sum_{ij} p_{ij}\log_2 p_{ij}`, :math:`HX = -\sum_i p_{i.}\log_2 p_{i.}`,
  :math:`HY = -\sum_j p_{.j}\log_2 p_{.j}`,
  :math:`HXY_1 = -\sum_{ij} p_{ij}\log_2(p_{i.}p_{.j})`,
  :math:`HXY_2 = -\sum_{ij} p_{i.}p_{.j}\log_2(p_{i.}p_{.j})`.

Entropies use :math:`\log_2` and :math:`0 \log 0 = 0`. The sums run over the true grey levels
``i, j``: the matrices are built over the grey levels present in the ROI only (small matrices when
:math:`N_g` is large, as PyRadiomics does), absent levels contributing nothing to any sum.

Aggregation methods (IBSI 3.1.2; as in MIRP, the IBSI reference implementation): the six
directional methods of :mod:`medfeat.features.aggregation` (which matrices are merged, which
features averaged; matrices without any pair, e.g. of an empty slice, are left out, and a method
without any matrix gives NaN features). The matrices of every requested method go through the
feature code in one batch.

Degenerate matrices (a single grey level, hence :math:`\sigma = 0` and :math:`HX = 0`): correlation
is 1 (MIRP and PyRadiomics agree), information correlation 1 is 0 (PyRadiomics; both its numerator
:math:`HXY - HXY_1 = -I(X;Y)` and denominator are 0; MIRP reports 1 there) and information
correlation 2 is 0 (:math:`HXY_2 = HXY`; MIRP and PyRadiomics agree).

References
----------
.. [1] Zwanenburg A., Vallières M., Abdalah M.A. et al. "The Image Biomarker Standardization
       Initiative: standardized quantitative radiomics for high-throughput image-based
       phenotyping." Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145.
       Reference manual: arXiv:1612.07003, section 3.6 "Grey level co-occurrence based features".
.. [2] Haralick R.M., Shanmugam K., Dinstein I. "Textural features for image classification."
       IEEE Trans. Syst. Man Cybern. SMC-3(6):610-621 (1973).
.. [3] van Griethuysen J.J.M. et al. "Computational radiomics system to decode the radiographic
       phenotype." Cancer Research 77(21):e104-e107 (2017) (PyRadiomics, ``radiomics/glcm.py``).
"""
from __future__ import annotations

import numba
import numpy as np

from medfeat.features.aggregation import aggregate
from medfeat.features.base import (AGGREGATIONS_3D, FeatureDef, check_aggregations, check_distance, check_levels,
                                   directions_2d, directions_3d, flatten)

FAMILY = "glcm"

__all__ = ["FAMILY", "FEATURES", "glcm_features", "cooccurrence_matrices", "features_of_matrices"]


# --------------------------------------------------------------------------------------------------
# Matrix construction
# --------------------------------------------------------------------------------------------------

def _encode(levels: np.ndarray, distance: int, pad_z: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels -> compact indices ``0..G-1`` of the levels present, in a padded volume.

    Voxels outside the ROI and a border of ``distance`` voxels on every side (in z only with
    ``pad_z``: the in-plane directions never leave their slice) get the *sink* index ``G``. Every
    neighbour of a ROI voxel then lies inside the padded array, so a neighbour offset is a constant
    shift of the flattened array (no wrap-around between rows or slices), and pairs touching the
    sink are simply dropped from the ``(G+1) x (G+1)`` count afterwards: no masking.

    Returns the padded ``int32`` array ``(z+2d, y+2d, x+2d)`` (``z`` slices without ``pad_z``) and
    the true grey level of each index. ``levels`` are checked by
    :func:`medfeat.features.base.check_levels` (``(z, y, x)``, integers ``0 .. 2**31-1``).
    """
    dz = distance if pad_z else 0
    if levels.size == 0:
        nz, ny, nx = levels.shape
        return np.zeros((nz + 2 * dz, ny + 2 * distance, nx + 2 * distance), np.int32), np.zeros(0)
    # one dtype and layout: a single compiled (and cached) specialisation serves every caller
    padded, grey, _ = _encode_levels(np.ascontiguousarray(levels, dtype=np.int32), distance, dz)
    return padded, grey


@numba.njit(cache=True, nogil=True)
def _encode_levels(levels, d, dz):  # pragma: no cover - compiled
    """:func:`_encode`'s work: ``(padded, grey, lowest level)`` (a negative lowest level is an error)."""
    nz, ny, nx = levels.shape
    flat = levels.ravel()
    top = 0
    lowest = 0
    for i in range(flat.size):
        top = max(top, flat[i])
        lowest = min(lowest, flat[i])
    if lowest < 0:
        return np.zeros((1, 1, 1), np.int32), np.zeros(0), lowest
    present = np.zeros(top + 1, np.bool_)
    for i in range(flat.size):
        present[flat[i]] = True
    present[0] = False
    g = 0
    lut = np.empty(top + 1, np.int32)
    for v in range(top + 1):
        lut[v] = g
        if present[v]:
            g += 1
    grey = np.empty(g)
    for v in range(1, top + 1):
        if present[v]:
            grey[lut[v]] = v
        else:
            lut[v] = g
    lut[0] = g
    padded = np.full((nz + 2 * dz, ny + 2 * d, nx + 2 * d), g, np.int32)
    dense = g == top  # every level 1..top present: index = level - 1 (no table look-up)
    g32 = np.int32(g)
    for z in range(nz):
        for y in range(ny):
            row = levels[z, y]
            out = padded[z + dz, y + d, d:d + nx]
            if dense:
                for x in range(nx):
                    v = row[x]
                    out[x] = v - 1 if v > 0 else g32
            else:
                for x in range(nx):
                    out[x] = lut[row[x]]
    return padded, grey, lowest


@numba.njit(cache=True, nogil=True)
def _pair_counts(padded, shifts, g, d, z0, z1, per_slice, code):  # pragma: no cover - compiled
    """Co-occurrence counts ``(directions, slices, (g+1)**2)`` int32 of the pairs ``(v[p], v[p+s])``.

    ``p`` runs over the ROI voxels (index ``< g``) of the slices ``z0 .. z1-1`` of :func:`_encode`'s
    padded array (border ``d`` in y and x), ``s`` over the flat ``shifts`` (all > 0, reaching at
    most ``d`` voxels along each axis); one matrix per slice when ``per_slice``, else one over all.
    ``code`` (directions, chunk + 40) int32 or int64 is scratch for the cell indices.

    A slice is taken a chunk at a time: the cell index of every position and direction is computed
    elementwise (SIMD), then the cells of the ROI voxels are incremented with the directions
    innermost, so that consecutive increments never wait on each other.
    """
    pz, py, px = padded.shape
    plane = py * px
    nd = shifts.size
    gp = g + 1
    g2 = gp * gp
    ns = z1 - z0 if per_slice else 1
    cnt = np.zeros(nd * ns * g2, np.int32)
    flat = padded.ravel()
    chunk = code.shape[1] - 40
    gp32 = np.int32(gp)
    # the voxels (y, x) from (d, d) to (py-1-d, px-1-d) are contiguous in the flattened slice, and
    # their neighbours stay inside the array (the border columns between rows hold the sink)
    span = (py - 2 * d - 1) * px + px - 2 * d
    for z in range(z0, z1):
        zo = (z - z0) * g2 if per_slice else 0
        start = z * plane + d * px + d
        first = start  # only from the slice's first ROI voxel to its last
        while first < start + span and flat[first] == g:
            first += 1
        last = start + span
        while last > first and flat[last - 1] == g:
            last -= 1
        for k0 in range(first, last, chunk):
            k1 = min(k0 + chunk, last)
            fa = flat[k0:k1]
            for k in range(nd):
                base = code.dtype.type(k * ns * g2 + zo)
                fb = flat[k0 + shifts[k]:k1 + shifts[k]]
                cd = code[k]
                for i in range(k1 - k0):
                    cd[i] = base + fa[i] * gp32 + fb[i]
            for i in range(k1 - k0):
                if fa[i] != g:
                    for k in range(nd):
                        cnt[code[k, i]] += 1
    return cnt.reshape(nd, ns, g2)


def _glcm_counts(padded: np.ndarray, g: int, distance: int, three_d: bool, out: np.ndarray | None = None,
                 z_border: int | None = None) -> np.ndarray:
    """Symmetric co-occurrence counts from :func:`_encode`'s padded index volume.

    Parameters
    ----------
    padded : ndarray of int32, shape (z+2d, y+2d, x+2d), or (z, y+2d, x+2d)
        Compact grey level indices, ``g`` outside the ROI and in the border. 3D needs the z border;
        2D takes the slices inside any z border.
    g : int
        Number of grey levels present (matrix size).
    distance : int
        Chebyshev distance :math:`\\delta`; the offsets are ``distance * direction``.
    three_d : bool
        13 volumetric directions over the whole volume, or the 4 in-plane directions per slice.
    out : ndarray of float64, optional
        Where to write the result (its shape), e.g. a slice of a larger feature batch.
    z_border : int, optional
        Thickness of ``padded``'s z border (default ``distance``; 0 when padded without ``pad_z``).

    Returns
    -------
    ndarray of float64
        ``(13, g, g)`` for 3D, ``(4, slices, g, g)`` for 2D (directions in the order of
        :func:`~medfeat.features.base.directions_3d` / :func:`~medfeat.features.base.directions_2d`).

    Notes
    -----
    With the volume flattened, a direction is a constant shift ``s > 0`` and its pairs are
    ``(v[t], v[t + s])``, counted by the compiled :func:`_pair_counts` (slice index in the cell
    index for 2D, so one sweep gives every slice's matrices); the sink row and column are cut off
    and ``M + M.T`` taken.
    """
    d = distance
    z_border = d if z_border is None else z_border
    nz = padded.shape[0] - 2 * z_border
    nyp, nxp = padded.shape[1], padded.shape[2]
    dirs = directions_3d() if three_d else directions_2d()
    n_slices = 1 if three_d else nz
    shifts = (dirs * d) @ np.array([nyp * nxp, nxp, 1], dtype=np.int64)  # all > 0
    res = np.empty((len(dirs), n_slices, g, g)) if out is None else out.reshape((len(dirs), n_slices, g, g))
    cells = len(dirs) * n_slices * (g + 1) ** 2
    code = np.empty((len(dirs), _CHUNK + 40), np.int32 if cells < 2**31 else np.int64)
    counts = _pair_counts(padded, shifts, g, d, z_border, z_border + nz, not three_d, code)
    c = counts.reshape(len(dirs), n_slices, g + 1, g + 1)[:, :, :g, :g]
    np.add(c, c.swapaxes(2, 3), out=res)
    return res[:, 0] if three_d else res


#: Positions per chunk of a slice in :func:`_pair_counts` (its scratch: directions x chunk cell indices).
_CHUNK = 2048


def cooccurrence_matrices(levels: np.ndarray, distance: int = 1, three_d: bool = False):
    """Symmetric co-occurrence count matrices over the grey levels present in the ROI.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``1..N_g`` inside the ROI, 0 outside.
    distance : int
        Chebyshev neighbour distance.
    three_d : bool
        Volumetric (13 directions) instead of in-plane (4 directions per slice).

    Returns
    -------
    matrices : ndarray of float64
        ``(4, slices, G, G)`` for the in-plane directions per slice, or ``(13, G, G)`` for the 3D
        directions over the volume.
    grey_levels : ndarray of float64, shape (G,)
        The true grey level of each row/column.
    """
    distance = check_distance(distance)
    padded, grey = _encode(check_levels(levels), distance, pad_z=three_d)
    return _glcm_counts(padded, grey.size, distance, three_d, z_border=distance if three_d else 0), grey


# --------------------------------------------------------------------------------------------------
# Quantities shared by several features
# --------------------------------------------------------------------------------------------------

class _Quantities:
    """Marginals, diagonal/cross-diagonal probabilities and entropies of a batch, computed once.

    Attributes (``n`` matrices, ``G`` grey levels present): ``g`` (G,) true grey levels;
    ``px``, ``py`` (n, G) marginals :math:`p_{i.}`, :math:`p_{.j}`; ``mu_x``, ``mu_y``, ``sd_x``,
    ``sd_y`` (n,); ``p_diff`` (n, K) :math:`p_{i-j,k}` with ``k_diff`` (K,) the values of ``k``;
    ``p_sum`` (n, K') :math:`p_{i+j,k}` with ``k_sum``; ``hxy``, ``hx``, ``hy``, ``hxy1``,
    ``hxy2`` (n,); ``n_levels`` :math:`N_g`.
    """

    __slots__ = ("g", "n_levels", "px", "py", "mu_x", "mu_y", "sd_x", "sd_y", "p_diff", "k_diff",
                 "p_sum", "k_sum", "hxy", "hx", "hy", "hxy1", "hxy2")


_TINY = np.finfo(np.float64).tiny


def _entropy(p: np.ndarray) -> np.ndarray:
    """:math:`-\\sum p \\log_2 p` along the last axis of ``p`` (n, K), with :math:`0 \\log 0 = 0`."""
    # log2(max(p, tiny)) is finite (>= -1022), so a zero p contributes exactly 0 * finite = 0; ~3x
    # faster than a masked log2 (np.log2(..., where=p > 0)). One temporary, reused in place.
    logp = np.maximum(p, _TINY)
    np.log2(logp, out=logp)
    return -np.einsum("nk,nk->n", p, logp)


def _grouped_sum(p: np.ndarray, keys: np.ndarray, width: int) -> np.ndarray:
    """``out[n, k] = sum of p[n].ravel()[keys == k]``: one weighted bincount for the whole batch."""
    n = p.shape[0]
    flat = (np.arange(n, dtype=np.intp)[:, None] * width + keys[None, :]).ravel()
    return np.bincount(flat, weights=p.reshape(-1), minlength=n * width).reshape(n, width)


def _quantities(p: np.ndarray, grey_levels: np.ndarray, n_levels: int, symmetric: bool = False) -> _Quantities:
    """Everything several features share, for a batch of probability matrices ``p`` (n, G, G).

    ``symmetric=True`` (medfeat's own matrices) takes :math:`p_{.j} = p_{i.}` without summing again.
    """
    q = _Quantities()
    g = np.asarray(grey_levels, dtype=np.float64)
    q.g = g
    q.n_levels = float(n_levels)
    q.px = p.sum(axis=2)
    q.mu_x = q.px @ g
    q.sd_x = np.sqrt(np.einsum("ni,ni->n", q.px, np.square(g[None, :] - q.mu_x[:, None])))
    if symmetric:
        q.py, q.mu_y, q.sd_y = q.px, q.mu_x, q.sd_x
    else:
        q.py = p.sum(axis=1)
        q.mu_y = q.py @ g
        q.sd_y = np.sqrt(np.einsum("nj,nj->n", q.py, np.square(g[None, :] - q.mu_y[:, None])))
    # p_{i-j,k} and p_{i+j,k}: the true levels are integers, so |i-j| and i+j index the bins
    gi = np.rint(g).astype(np.intp)
    lo = int(gi[0]) if gi.size else 0
    span = int(gi[-1] - gi[0]) + 1 if gi.size else 1
    k_diff = np.abs(gi[:, None] - gi[None, :]).ravel()
    k_sum = (gi[:, None] + gi[None, :] - 2 * lo).ravel()
    q.p_diff = _grouped_sum(p, k_diff, span)
    q.k_diff = np.arange(span, dtype=np.float64)
    q.p_sum = _grouped_sum(p, k_sum, 2 * span - 1)
    q.k_sum = np.arange(2 * span - 1, dtype=np.float64) + 2 * lo
    q.hxy = _entropy(p.reshape(p.shape[0], -1))
    q.hx = _entropy(q.px)
    q.hy = q.hx if symmetric else _entropy(q.py)
    # HXY1 = -sum_ij p_ij (log2 p_i. + log2 p_.j) = HX + HY, and HXY2 = -sum_ij p_i. p_.j (log2 p_i. +
    # log2 p_.j) = HX + HY as well: both identities are exact (p_ij > 0 implies p_i., p_.j > 0), so
    # neither needs the (n, G, G) outer product p_i. p_.j. Checked against the definitions in tests.
    q.hxy1 = q.hx + q.hy
    q.hxy2 = q.hx + q.hy
    return q


# --------------------------------------------------------------------------------------------------
# The 25 features, each on a batch: p (n, G, G) probabilities and q the shared quantities -> (n,)
# --------------------------------------------------------------------------------------------------

def joint_maximum(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Joint maximum.

    IBSI code ``GYBY``, tag ``cm.joint.max``.

    .. math:: F = \max_{i,j} p_{ij}
    """
    return p.max(axis=(1, 2))


def joint_average(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Joint average.

    IBSI code ``60VM``, tag ``cm.joint.avg``.

    .. math:: F = \sum_{i,j} i\,p_{ij} = \mu_{i.}
    """
    return q.mu_x


def joint_variance(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Joint variance.

    IBSI code ``UR99``, tag ``cm.joint.var``.

    .. math:: F = \sum_{i,j} (i-\mu)^2 p_{ij} = \sum_i (i - \mu)^2 p_{i.}, \quad \mu = \sum_{i,j} i\,p_{ij}
    """
    return q.sd_x**2


def joint_entropy(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Joint entropy.

    IBSI code ``TU9B``, tag ``cm.joint.entr``.

    .. math:: F = -\sum_{i,j} p_{ij} \log_2 p_{ij}
    """
    return q.hxy


def difference_average(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Difference average.

    IBSI code ``TF7R``, tag ``cm.diff.avg``.

    .. math:: F = \sum_{k=0}^{N_g-1} k\,p_{i-j,k}
    """
    return q.p_diff @ q.k_diff


def difference_variance(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Difference variance.

    IBSI code ``D3YU``, tag ``cm.diff.var``.

    .. math:: F = \sum_{k=0}^{N_g-1} (k-\mu)^2 p_{i-j,k}, \quad \mu = \sum_k k\,p_{i-j,k}
    """
    mu = q.p_diff @ q.k_diff
    return np.einsum("nk,nk->n", q.p_diff, (q.k_diff[None, :] - mu[:, None]) ** 2)


def difference_entropy(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Difference entropy.

    IBSI code ``NTRS``, tag ``cm.diff.entr``.

    .. math:: F = -\sum_{k=0}^{N_g-1} p_{i-j,k} \log_2 p_{i-j,k}
    """
    return _entropy(q.p_diff)


def sum_average(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Sum average.

    IBSI code ``ZGXS``, tag ``cm.sum.avg``.

    .. math:: F = \sum_{k=2}^{2N_g} k\,p_{i+j,k}
    """
    return q.p_sum @ q.k_sum


def sum_variance(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Sum variance.

    IBSI code ``OEEB``, tag ``cm.sum.var``.

    .. math:: F = \sum_{k=2}^{2N_g} (k-\mu)^2 p_{i+j,k}, \quad \mu = \sum_k k\,p_{i+j,k}
    """
    mu = q.p_sum @ q.k_sum
    return np.einsum("nk,nk->n", q.p_sum, (q.k_sum[None, :] - mu[:, None]) ** 2)


def sum_entropy(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Sum entropy.

    IBSI code ``P6QZ``, tag ``cm.sum.entr``.

    .. math:: F = -\sum_{k=2}^{2N_g} p_{i+j,k} \log_2 p_{i+j,k}
    """
    return _entropy(q.p_sum)


def angular_second_moment(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Angular second moment (energy).

    IBSI code ``8ZQL``, tag ``cm.energy``.

    .. math:: F = \sum_{i,j} p_{ij}^2
    """
    return np.einsum("nij,nij->n", p, p)


def contrast(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Contrast.

    IBSI code ``ACUI``, tag ``cm.contrast``.

    .. math:: F = \sum_{i,j} (i-j)^2 p_{ij} = \sum_k k^2 p_{i-j,k}
    """
    return q.p_diff @ q.k_diff**2


def dissimilarity(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Dissimilarity.

    IBSI code ``8S9J``, tag ``cm.dissimilarity``.

    .. math:: F = \sum_{i,j} |i-j|\,p_{ij} = \sum_k k\,p_{i-j,k}
    """
    return q.p_diff @ q.k_diff


def inverse_difference(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Inverse difference.

    IBSI code ``IB1Z``, tag ``cm.inv.diff``.

    .. math:: F = \sum_{i,j} \frac{p_{ij}}{1+|i-j|} = \sum_k \frac{p_{i-j,k}}{1+k}
    """
    return q.p_diff @ (1.0 / (1.0 + q.k_diff))


def normalised_inverse_difference(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Normalised inverse difference.

    IBSI code ``NDRX``, tag ``cm.inv.diff.norm``.

    .. math:: F = \sum_{i,j} \frac{p_{ij}}{1+|i-j|/N_g} = \sum_k \frac{p_{i-j,k}}{1+k/N_g}
    """
    return q.p_diff @ (1.0 / (1.0 + q.k_diff / q.n_levels))


def inverse_difference_moment(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Inverse difference moment.

    IBSI code ``WF0Z``, tag ``cm.inv.diff.mom``.

    .. math:: F = \sum_{i,j} \frac{p_{ij}}{1+(i-j)^2} = \sum_k \frac{p_{i-j,k}}{1+k^2}
    """
    return q.p_diff @ (1.0 / (1.0 + q.k_diff**2))


def normalised_inverse_difference_moment(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Normalised inverse difference moment.

    IBSI code ``1QCO``, tag ``cm.inv.diff.mom.norm``.

    .. math:: F = \sum_{i,j} \frac{p_{ij}}{1+(i-j)^2/N_g^2} = \sum_k \frac{p_{i-j,k}}{1+k^2/N_g^2}
    """
    return q.p_diff @ (1.0 / (1.0 + q.k_diff**2 / q.n_levels**2))


def inverse_variance(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Inverse variance.

    IBSI code ``E8JP``, tag ``cm.inv.var``.

    .. math:: F = 2 \sum_{i>j} \frac{p_{ij}}{(i-j)^2} = \sum_{k=1}^{N_g-1} \frac{p_{i-j,k}}{k^2}
    """
    w = np.zeros_like(q.k_diff)
    w[1:] = 1.0 / q.k_diff[1:] ** 2
    return q.p_diff @ w


def correlation(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Correlation.

    IBSI code ``NI2N``, tag ``cm.corr``.

    .. math:: F = \frac{1}{\sigma_{i.}\sigma_{.j}} \left(-\mu_{i.}\mu_{.j} + \sum_{i,j} i\,j\,p_{ij}\right)

    A matrix with a single grey level has :math:`\sigma_{i.} = \sigma_{.j} = 0`; its correlation
    is 1 (neighbours perfectly predictable), as in MIRP and PyRadiomics.
    """
    cov = (p @ q.g) @ q.g - q.mu_x * q.mu_y
    den = q.sd_x * q.sd_y
    ok = den > 1e-12 * (1.0 + q.mu_x * q.mu_y)
    return np.where(ok, cov / np.where(ok, den, 1.0), 1.0)


def autocorrelation(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Autocorrelation.

    IBSI code ``QWB0``, tag ``cm.auto.corr``.

    .. math:: F = \sum_{i,j} i\,j\,p_{ij}
    """
    return (p @ q.g) @ q.g


def _cluster_moment(q: _Quantities, power: int) -> np.ndarray:
    # sum_ij (i + j - mu_i. - mu_.j)^power p_ij, gathered on the cross-diagonals i + j = k
    dev = q.k_sum[None, :] - (q.mu_x + q.mu_y)[:, None]
    w = q.p_sum * dev
    for _ in range(power - 1):  # repeated products: float ** int goes through slow pow()
        w *= dev
    return w.sum(axis=1)


def cluster_tendency(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Cluster tendency.

    IBSI code ``DG8W``, tag ``cm.clust.tend``.

    .. math:: F = \sum_{i,j} (i+j-\mu_{i.}-\mu_{.j})^2 p_{ij}
    """
    return _cluster_moment(q, 2)


def cluster_shade(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Cluster shade.

    IBSI code ``7NFM``, tag ``cm.clust.shade``.

    .. math:: F = \sum_{i,j} (i+j-\mu_{i.}-\mu_{.j})^3 p_{ij}
    """
    return _cluster_moment(q, 3)


def cluster_prominence(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Cluster prominence.

    IBSI code ``AE86``, tag ``cm.clust.prom``.

    .. math:: F = \sum_{i,j} (i+j-\mu_{i.}-\mu_{.j})^4 p_{ij}
    """
    return _cluster_moment(q, 4)


def information_correlation_1(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Information correlation 1.

    IBSI code ``R8DG``, tag ``cm.info.corr.1``.

    .. math:: F = \frac{HXY - HXY_1}{\max(HX, HY)}

    0 when :math:`\max(HX, HY) = 0` (a single grey level: the numerator is 0 too), as PyRadiomics.
    """
    den = np.maximum(q.hx, q.hy)
    ok = den > 0
    return np.where(ok, (q.hxy - q.hxy1) / np.where(ok, den, 1.0), 0.0)


def information_correlation_2(p: np.ndarray, q: _Quantities) -> np.ndarray:
    r"""Information correlation 2.

    IBSI code ``JN9H``, tag ``cm.info.corr.2``.

    .. math:: F = \sqrt{1 - \exp\left(-2\,(HXY_2 - HXY)\right)}

    :math:`HXY_2 - HXY \geq 0` mathematically; rounding below 0 is clipped (value 0).
    """
    return np.sqrt(np.clip(1.0 - np.exp(-2.0 * (q.hxy2 - q.hxy)), 0.0, None))


_TABLE = (
    ("cm.joint.max", "GYBY", "Joint maximum", joint_maximum),
    ("cm.joint.avg", "60VM", "Joint average", joint_average),
    ("cm.joint.var", "UR99", "Joint variance", joint_variance),
    ("cm.joint.entr", "TU9B", "Joint entropy", joint_entropy),
    ("cm.diff.avg", "TF7R", "Difference average", difference_average),
    ("cm.diff.var", "D3YU", "Difference variance", difference_variance),
    ("cm.diff.entr", "NTRS", "Difference entropy", difference_entropy),
    ("cm.sum.avg", "ZGXS", "Sum average", sum_average),
    ("cm.sum.var", "OEEB", "Sum variance", sum_variance),
    ("cm.sum.entr", "P6QZ", "Sum entropy", sum_entropy),
    ("cm.energy", "8ZQL", "Angular second moment", angular_second_moment),
    ("cm.contrast", "ACUI", "Contrast", contrast),
    ("cm.dissimilarity", "8S9J", "Dissimilarity", dissimilarity),
    ("cm.inv.diff", "IB1Z", "Inverse difference", inverse_difference),
    ("cm.inv.diff.norm", "NDRX", "Normalised inverse difference", normalised_inverse_difference),
    ("cm.inv.diff.mom", "WF0Z", "Inverse difference moment", inverse_difference_moment),
    ("cm.inv.diff.mom.norm", "1QCO", "Normalised inverse difference moment", normalised_inverse_difference_moment),
    ("cm.inv.var", "E8JP", "Inverse variance", inverse_variance),
    ("cm.corr", "NI2N", "Correlation", correlation),
    ("cm.auto.corr", "QWB0", "Autocorrelation", autocorrelation),
    ("cm.clust.tend", "DG8W", "Cluster tendency", cluster_tendency),
    ("cm.clust.shade", "7NFM", "Cluster shade", cluster_shade),
    ("cm.clust.prom", "AE86", "Cluster prominence", cluster_prominence),
    ("cm.info.corr.1", "R8DG", "Information correlation 1", information_correlation_1),
    ("cm.info.corr.2", "JN9H", "Information correlation 2", information_correlation_2),
)

#: The 25 IBSI GLCM features, in IBSI order.
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


_BATCH_ELEMENTS = 1 << 17  # matrix elements per feature batch


def _feature_array(counts, totals: np.ndarray, grey_levels: np.ndarray, n_levels: int,
                   symmetric: bool) -> np.ndarray:
    """Features of non-empty count matrices ``(n, G, G)`` with sums ``totals`` -> array ``(25, n)``.

    ``counts`` is one array, or a list of arrays standing for their concatenation (never made:
    only a chunk straddling two of them is copied)."""
    pieces = counts if isinstance(counts, list) else [counts]
    starts = np.cumsum([0] + [c.shape[0] for c in pieces]).tolist()
    n, g = starts[-1], pieces[0].shape[1]
    out = np.empty((len(_TABLE), n))
    step = max(1, _BATCH_ELEMENTS // max(1, g * g))  # chunks keep the temporaries small and cache-resident
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        rows = [c[max(lo - s, 0):hi - s] for c, s in zip(pieces, starts) if s < hi and s + c.shape[0] > lo]
        scale = (1.0 / totals[lo:hi])[:, None, None]
        if len(rows) == 1:
            p = rows[0] * scale
        else:  # the chunk straddles arrays: each part scaled straight into it
            p = np.empty((hi - lo, g, g))
            at = 0
            for r in rows:
                np.multiply(r, scale[at:at + r.shape[0]], out=p[at:at + r.shape[0]])
                at += r.shape[0]
        q = _quantities(p, grey_levels, n_levels, symmetric)
        for k, (_, _, _, fn) in enumerate(_TABLE):
            out[k, lo:hi] = fn(p, q)
    return out


def features_of_matrices(counts: np.ndarray, grey_levels: np.ndarray, n_levels: int) -> dict[str, np.ndarray]:
    """Every GLCM feature of a batch of co-occurrence count matrices.

    Parameters
    ----------
    counts : ndarray, shape (n, G, G)
        Co-occurrence counts (any positive scale); each matrix must hold at least one pair.
    grey_levels : ndarray, shape (G,)
        True grey level of each row/column.
    n_levels : int
        Number of discretised grey levels :math:`N_g`.

    Returns
    -------
    dict
        ``{tag: values (n,)}``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    symmetric = bool(np.array_equal(counts, counts.swapaxes(1, 2)))
    totals = counts.reshape(counts.shape[0], -1).sum(axis=1)
    values = _feature_array(counts, totals, grey_levels, n_levels, symmetric)
    return {f.tag: values[k] for k, f in enumerate(FEATURES)}


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------

def glcm_features(levels: np.ndarray, n_levels: int, aggregations=AGGREGATIONS_3D,
                  distance: int = 1) -> dict[str, float]:
    """All 25 IBSI GLCM features of a discretised ROI, in the requested aggregation methods.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``1..n_levels`` inside the ROI intensity mask, 0 outside. Axis 0 is the slice
        axis of the 2D / 2.5D methods.
    n_levels : int
        Number of discretised grey levels :math:`N_g` (normalised inverse difference / moment).
    aggregations : sequence of str
        IBSI aggregation methods, keys of :data:`medfeat.features.base.AGGREGATIONS`.
    distance : int
        Chebyshev neighbour distance :math:`\\delta` (offsets ``distance * direction``).

    Returns
    -------
    dict
        ``{column(tag, aggregation): value}`` for every feature and aggregation, e.g.
        ``cm_joint_max_2d_avg``; NaN for an aggregation without any neighbour pair.
    """
    aggregations = check_aggregations(aggregations)
    distance = check_distance(distance)
    levels = check_levels(levels, n_levels)
    dz = distance if any(a in AGGREGATIONS_3D for a in aggregations) else 0  # 2D only: no z border
    padded, grey = _encode(levels, distance, pad_z=dz > 0)
    if grey.size == 0:
        return flatten({}, FEATURES, aggregations)

    def features(batches):  # every method's matrices at once: one pass through the feature code
        totals = np.concatenate([c.reshape(c.shape[0], -1).sum(axis=1) for c in batches])
        values = _feature_array(batches, totals, grey, n_levels, symmetric=True)  # (25, matrices)
        return {f.tag: values[k] for k, f in enumerate(FEATURES)}

    def build(three_d):  # (4, slices, g, g) in-plane, or (13, g, g)
        return _glcm_counts(padded, grey.size, distance, three_d, z_border=distance if three_d else dz)

    results = aggregate(aggregations, features, lambda: build(False), lambda: build(True), joint=True)
    return flatten(results, FEATURES, aggregations)
