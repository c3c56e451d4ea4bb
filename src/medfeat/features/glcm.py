r"""Grey level co-occurrence matrix (GLCM) features (IBSI chapter 1, section 3.6).

A GLCM counts how often grey level :math:`i` neighbours grey level :math:`j` along one direction
at Chebyshev distance :math:`\delta` inside the ROI. medfeat's matrices are symmetric (each pair
counted in both directions) and unweighted, as in the IBSI reference configurations.
:math:`p_{ij} = M_{ij} / \sum M` is the joint probability; :math:`p_{i.}` and :math:`p_{.j}` the
marginals; :math:`p_{i-j,k} = \sum_{|i-j|=k} p_{ij}` and :math:`p_{i+j,k} = \sum_{i+j=k} p_{ij}`
the diagonal and cross-diagonal probabilities; :math:`N_g` the number of grey levels. Entropies
use :math:`\log_2`. The sums run over the true grey levels ``i, j`` (levels absent from the ROI
contribute nothing and are left out of the matrices for speed).

References
----------
.. [1] Zwanenburg A. et al. "The Image Biomarker Standardization Initiative." Radiology 295 (2020).
.. [2] Haralick R.M., Shanmugam K., Dinstein I. "Textural features for image classification."
       IEEE Trans. Syst. Man Cybern. 3 (1973).
"""
from __future__ import annotations

import numba
import numpy as np

from medfeat.features.base import (AGGREGATIONS_3D, FeatureDef, aggregate, check_aggregations, compress_levels,
                                   directions_2d, directions_3d, flatten)

FAMILY = "glcm"


@numba.njit(cache=True, nogil=True)
def _counts_2d(idx, offsets, n):  # pragma: no cover - compiled
    dirs = offsets.shape[0]
    nz, ny, nx = idx.shape
    out = np.zeros((dirs, nz, n, n), dtype=np.float64)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                a = idx[z, y, x]
                if a < 0:
                    continue
                for d in range(dirs):
                    yy = y + offsets[d, 1]
                    xx = x + offsets[d, 2]
                    if 0 <= yy < ny and 0 <= xx < nx:
                        b = idx[z, yy, xx]
                        if b >= 0:
                            out[d, z, a, b] += 1.0
                            out[d, z, b, a] += 1.0
    return out


@numba.njit(cache=True, nogil=True)
def _counts_3d(idx, offsets, n):  # pragma: no cover - compiled
    dirs = offsets.shape[0]
    nz, ny, nx = idx.shape
    out = np.zeros((dirs, n, n), dtype=np.float64)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                a = idx[z, y, x]
                if a < 0:
                    continue
                for d in range(dirs):
                    zz = z + offsets[d, 0]
                    yy = y + offsets[d, 1]
                    xx = x + offsets[d, 2]
                    if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                        b = idx[zz, yy, xx]
                        if b >= 0:
                            out[d, a, b] += 1.0
                            out[d, b, a] += 1.0
    return out


def cooccurrence_matrices(levels: np.ndarray, distance: int = 1, three_d: bool = False):
    """Symmetric co-occurrence counts over the grey levels present.

    Returns ``(matrices, grey_levels)``: matrices ``(4, slices, G, G)`` for the in-plane directions
    per slice, or ``(13, G, G)`` for the 3D directions over the volume; ``grey_levels`` the true level
    of each of the ``G`` rows.
    """
    idx, values = compress_levels(np.asarray(levels))
    return _matrices(np.ascontiguousarray(idx), values.size, distance, three_d), values


def _matrices(idx: np.ndarray, n: int, distance: int, three_d: bool) -> np.ndarray:
    offsets = (directions_3d() if three_d else directions_2d()) * int(distance)
    return (_counts_3d if three_d else _counts_2d)(idx, offsets, n)


class _Batch:
    """Quantities of a batch of GLCMs shared by several features, computed once."""

    def __init__(self, counts: np.ndarray, g: np.ndarray, n_levels: int):
        n = counts.shape[0]
        self.p = counts / counts.reshape(n, -1).sum(axis=1)[:, None, None]
        self.g = g
        self.n_levels = n_levels
        self.i = g[:, None]
        self.j = g[None, :]
        self.px = self.p.sum(axis=2)  # p_i. (symmetric: equals p_.j)
        self.mu = self.px @ g         # mu_i = mu_j
        self.var_x = self.px @ g**2 - self.mu**2
        # diagonal and cross-diagonal probabilities via one weighted bincount per batch
        k_diff = np.abs(self.i - self.j).astype(np.int64).ravel()
        k_sum = (self.i + self.j).astype(np.int64).ravel()
        self.p_diff = _grouped_sum(self.p, k_diff)
        self.p_sum = _grouped_sum(self.p, k_sum)
        self.k_diff = np.arange(self.p_diff.shape[1], dtype=np.float64)
        self.k_sum = np.arange(self.p_sum.shape[1], dtype=np.float64)

    def entropy(self, p: np.ndarray, axes) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=axes)


def _grouped_sum(p: np.ndarray, keys: np.ndarray) -> np.ndarray:
    n = p.shape[0]
    width = int(keys.max()) + 1
    flat = (np.arange(n)[:, None] * width + keys[None, :]).ravel()
    return np.bincount(flat, weights=p.reshape(n, -1).ravel(), minlength=n * width).reshape(n, width)


def joint_maximum(b: _Batch) -> np.ndarray:
    r"""Joint maximum (IBSI ``GYBY``, ``cm.joint.max``): :math:`F = \max_{ij} p_{ij}`."""
    return b.p.max(axis=(1, 2))


def joint_average(b: _Batch) -> np.ndarray:
    r"""Joint average (IBSI ``60VM``, ``cm.joint.avg``): :math:`F = \sum_{ij} i\,p_{ij}`."""
    return b.mu


def joint_variance(b: _Batch) -> np.ndarray:
    r"""Joint variance (IBSI ``UR99``, ``cm.joint.var``): :math:`F = \sum_{ij} (i-\mu)^2 p_{ij}`, :math:`\mu` the joint average."""
    return b.var_x


def joint_entropy(b: _Batch) -> np.ndarray:
    r"""Joint entropy (IBSI ``TU9B``, ``cm.joint.entr``): :math:`F = -\sum_{ij} p_{ij}\log_2 p_{ij}`."""
    return b.entropy(b.p, (1, 2))


def difference_average(b: _Batch) -> np.ndarray:
    r"""Difference average (IBSI ``TF7R``, ``cm.diff.avg``): :math:`F = \sum_k k\,p_{i-j,k}`."""
    return b.p_diff @ b.k_diff


def difference_variance(b: _Batch) -> np.ndarray:
    r"""Difference variance (IBSI ``D3YU``, ``cm.diff.var``): :math:`F = \sum_k (k-\mu_{i-j})^2 p_{i-j,k}`."""
    mu = b.p_diff @ b.k_diff
    return b.p_diff @ b.k_diff**2 - mu**2


def difference_entropy(b: _Batch) -> np.ndarray:
    r"""Difference entropy (IBSI ``NTRS``, ``cm.diff.entr``): :math:`F = -\sum_k p_{i-j,k}\log_2 p_{i-j,k}`."""
    return b.entropy(b.p_diff, 1)


def sum_average(b: _Batch) -> np.ndarray:
    r"""Sum average (IBSI ``ZGXS``, ``cm.sum.avg``): :math:`F = \sum_k k\,p_{i+j,k}`."""
    return b.p_sum @ b.k_sum


def sum_variance(b: _Batch) -> np.ndarray:
    r"""Sum variance (IBSI ``OEEB``, ``cm.sum.var``): :math:`F = \sum_k (k-\mu_{i+j})^2 p_{i+j,k}`."""
    mu = b.p_sum @ b.k_sum
    return b.p_sum @ b.k_sum**2 - mu**2


def sum_entropy(b: _Batch) -> np.ndarray:
    r"""Sum entropy (IBSI ``P6QZ``, ``cm.sum.entr``): :math:`F = -\sum_k p_{i+j,k}\log_2 p_{i+j,k}`."""
    return b.entropy(b.p_sum, 1)


def angular_second_moment(b: _Batch) -> np.ndarray:
    r"""Angular second moment / energy (IBSI ``8ZQL``, ``cm.energy``): :math:`F = \sum_{ij} p_{ij}^2`."""
    return np.sum(b.p**2, axis=(1, 2))


def contrast(b: _Batch) -> np.ndarray:
    r"""Contrast (IBSI ``ACUI``, ``cm.contrast``): :math:`F = \sum_{ij} (i-j)^2 p_{ij}`."""
    return b.p_diff @ b.k_diff**2


def dissimilarity(b: _Batch) -> np.ndarray:
    r"""Dissimilarity (IBSI ``8S9J``, ``cm.dissimilarity``): :math:`F = \sum_{ij} |i-j|\,p_{ij}`."""
    return b.p_diff @ b.k_diff


def inverse_difference(b: _Batch) -> np.ndarray:
    r"""Inverse difference (IBSI ``IB1Z``, ``cm.inv.diff``): :math:`F = \sum_k p_{i-j,k} / (1+k)`."""
    return b.p_diff @ (1.0 / (1.0 + b.k_diff))


def normalised_inverse_difference(b: _Batch) -> np.ndarray:
    r"""Normalised inverse difference (IBSI ``NDRX``, ``cm.inv.diff.norm``): :math:`F = \sum_k p_{i-j,k} / (1+k/N_g)`."""
    return b.p_diff @ (1.0 / (1.0 + b.k_diff / b.n_levels))


def inverse_difference_moment(b: _Batch) -> np.ndarray:
    r"""Inverse difference moment (IBSI ``WF0Z``, ``cm.inv.diff.mom``): :math:`F = \sum_k p_{i-j,k} / (1+k^2)`."""
    return b.p_diff @ (1.0 / (1.0 + b.k_diff**2))


def normalised_inverse_difference_moment(b: _Batch) -> np.ndarray:
    r"""Normalised inverse difference moment (IBSI ``1QCO``, ``cm.inv.diff.mom.norm``): :math:`F = \sum_k p_{i-j,k} / (1+k^2/N_g^2)`."""
    return b.p_diff @ (1.0 / (1.0 + b.k_diff**2 / b.n_levels**2))


def inverse_variance(b: _Batch) -> np.ndarray:
    r"""Inverse variance (IBSI ``E8JP``, ``cm.inv.var``): :math:`F = \sum_{k\geq 1} p_{i-j,k} / k^2`."""
    w = np.zeros_like(b.k_diff)
    w[1:] = 1.0 / b.k_diff[1:] ** 2
    return b.p_diff @ w


def correlation(b: _Batch) -> np.ndarray:
    r"""Correlation (IBSI ``NI2N``, ``cm.corr``).

    :math:`F = \frac{1}{\sigma_{i.}\sigma_{.j}} \left(\sum_{ij} i\,j\,p_{ij} - \mu_{i.}\mu_{.j}\right)`, with the
    marginal means and standard deviations. A matrix with a single grey level has no variance; its
    correlation is reported as 1 (perfectly predictable neighbours), as PyRadiomics does.
    """
    cov = np.einsum("nij,i,j->n", b.p, b.g, b.g) - b.mu**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b.var_x > 1e-15, cov / b.var_x, 1.0)


def autocorrelation(b: _Batch) -> np.ndarray:
    r"""Autocorrelation (IBSI ``QWB0``, ``cm.auto.corr``): :math:`F = \sum_{ij} i\,j\,p_{ij}`."""
    return np.einsum("nij,i,j->n", b.p, b.g, b.g)


def _cluster(b: _Batch, power: int) -> np.ndarray:
    s = b.i + b.j  # (G, G)
    dev = s[None] - 2.0 * b.mu[:, None, None]
    return np.sum(dev**power * b.p, axis=(1, 2))


def cluster_tendency(b: _Batch) -> np.ndarray:
    r"""Cluster tendency (IBSI ``DG8W``, ``cm.clust.tend``): :math:`F = \sum_{ij} (i+j-\mu_{i.}-\mu_{.j})^2 p_{ij}`."""
    return _cluster(b, 2)


def cluster_shade(b: _Batch) -> np.ndarray:
    r"""Cluster shade (IBSI ``7NFM``, ``cm.clust.shade``): :math:`F = \sum_{ij} (i+j-\mu_{i.}-\mu_{.j})^3 p_{ij}`."""
    return _cluster(b, 3)


def cluster_prominence(b: _Batch) -> np.ndarray:
    r"""Cluster prominence (IBSI ``AE86``, ``cm.clust.prom``): :math:`F = \sum_{ij} (i+j-\mu_{i.}-\mu_{.j})^4 p_{ij}`."""
    return _cluster(b, 4)


def _hxy_terms(b: _Batch):
    hx = b.entropy(b.px, 1)
    hxy = b.entropy(b.p, (1, 2))
    pxpy = b.px[:, :, None] * b.px[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        logpp = np.where(pxpy > 0, np.log2(np.where(pxpy > 0, pxpy, 1.0)), 0.0)
    hxy1 = -np.sum(b.p * logpp, axis=(1, 2))
    hxy2 = -np.sum(pxpy * logpp, axis=(1, 2))
    return hx, hxy, hxy1, hxy2


def information_correlation_1(b: _Batch) -> np.ndarray:
    r"""Information correlation 1 (IBSI ``R8DG``, ``cm.info.corr.1``): :math:`F = (HXY - HXY_1) / HX`.

    :math:`HXY` is the joint entropy, :math:`HX = -\sum_i p_{i.}\log_2 p_{i.}` and
    :math:`HXY_1 = -\sum_{ij} p_{ij}\log_2(p_{i.}p_{.j})`. 0 when :math:`HX = 0`.
    """
    hx, hxy, hxy1, _ = _hxy_terms(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hx > 0, (hxy - hxy1) / np.where(hx > 0, hx, 1.0), 0.0)


def information_correlation_2(b: _Batch) -> np.ndarray:
    r"""Information correlation 2 (IBSI ``JN9H``, ``cm.info.corr.2``): :math:`F = \sqrt{1 - e^{-2(HXY_2 - HXY)}}`.

    :math:`HXY_2 = -\sum_{ij} p_{i.}p_{.j}\log_2(p_{i.}p_{.j})`.
    """
    _, hxy, _, hxy2 = _hxy_terms(b)
    return np.sqrt(np.clip(1.0 - np.exp(-2.0 * (hxy2 - hxy)), 0.0, None))


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
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def features_of_matrices(counts: np.ndarray, grey_levels: np.ndarray, n_levels: int) -> dict[str, np.ndarray]:
    """Every GLCM feature of a batch of count matrices ``(n, G, G)`` -> ``{tag: values (n,)}``."""
    b = _Batch(counts, grey_levels, n_levels)
    return {tag: fn(b) for tag, _, _, fn in _TABLE}


def glcm_features(levels: np.ndarray, n_levels: int, aggregations=AGGREGATIONS_3D, distance: int = 1) -> dict[str, float]:
    """All GLCM features of a discretised ROI in the requested IBSI aggregation methods.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``1..n_levels`` inside the ROI, 0 outside.
    n_levels : int
        Number of grey levels :math:`N_g` (used by the normalised inverse differences).
    aggregations : sequence of str
        IBSI aggregation methods (see :data:`medfeat.features.base.AGGREGATIONS`).
    distance : int
        Chebyshev neighbour distance :math:`\\delta`.

    Returns
    -------
    dict
        ``{column name: value}``, e.g. ``cm_joint_max_2d_avg``; NaN where the ROI has no pairs.
    """
    aggregations = check_aggregations(aggregations)
    idx, grey = compress_levels(np.asarray(levels))
    idx = np.ascontiguousarray(idx)
    compute = lambda m, nv: features_of_matrices(m, grey, n_levels)  # noqa: E731

    def build2d():
        m = _matrices(idx, grey.size, distance, False)
        return m, np.zeros(m.shape[:2])

    def build3d():
        m = _matrices(idx, grey.size, distance, True)
        return m, np.zeros(m.shape[0])

    return flatten(aggregate(compute, aggregations, build2d, build3d), FEATURES, aggregations)
