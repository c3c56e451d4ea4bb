r"""Grey level size zone matrix (GLSZM) features (IBSI chapter 1, section 3.8).

A *zone* is a connected group of ROI voxels sharing one discretised grey level: voxels are linked
to their 26 neighbours in 3D and to their 8 in-plane neighbours in 2D (Chebyshev distance 1), and
voxels outside the ROI's intensity mask separate zones. The size zone matrix :math:`s_{ij}` counts
the zones of grey level :math:`i` and size (voxel count) :math:`j`. With :math:`N_g` grey levels
and :math:`N_z` the largest zone,

* :math:`N_s = \sum_{i=1}^{N_g}\sum_{j=1}^{N_z} s_{ij}` is the number of zones,
* :math:`s_{i.} = \sum_j s_{ij}` and :math:`s_{.j} = \sum_i s_{ij}` are the marginal sums,
* :math:`p_{ij} = s_{ij} / N_s` is the joint probability,
* :math:`N_v` is the number of ROI voxels the matrix was built from, summed over merged matrices.

Grey levels :math:`i` are the true discretised levels (absent levels contribute nothing),
logarithms are base 2.

Aggregation methods (IBSI 3.8, "Aggregating features"): "2D" averages the features of the
matrices of the slices (8-connected zones within each slice; slices without ROI voxels left out);
"2.5D" computes the features of one matrix merging the slices' matrices; "3D" those of the
matrix of the volume's 26-connected zones. Columns carry the suffixes ``_2d``, ``_25d`` and ``_3d``;
the directional methods of settings map onto these (:func:`medfeat.features.base.undirected_aggregations`:
"2D, averaged" and "2D, slice-merged" ask for "2D", both "2.5D" methods for "2.5D", both "3D" methods
for "3D"). A ROI without voxels gives NaN.

Implementation: zones are labelled by one compiled union-find pass and the matrices are held as
their occupied cells; see :mod:`medfeat.features.zones`.

References
----------
.. [1] Zwanenburg A., Vallieres M., et al. "The Image Biomarker Standardization Initiative:
       standardized quantitative radiomics for high-throughput image-based phenotyping."
       Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145. Reference manual
       (arXiv:1612.07003), section 3.8 "Grey level size zone based features".
.. [2] Thibault G., Fertil B., Navarro C., Pereira S., Cau P., Levy N., Sequeira J., Mari J.-L.
       "Shape and texture indexes application to cell nuclei classification." International
       Journal of Pattern Recognition and Artificial Intelligence 27(1):1357002 (2013).
       doi:10.1142/S0218001413570024.
.. [3] van Griethuysen J.J.M. et al. "Computational radiomics system to decode the radiographic
       phenotype." Cancer Research 77(21):e104-e107 (2017) (PyRadiomics, ``radiomics/glszm.py``).
"""
from __future__ import annotations

import numpy as np

from medfeat.features import zones
from medfeat.features.base import AGGREGATIONS_3D, FeatureDef
from medfeat.features.zones import ZoneBatch

FAMILY = "glszm"


def size_zone_matrices(levels: np.ndarray, three_d: bool = False):
    """Size zone matrices of a discretised ROI, dense, over the grey levels present.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x) or (y, x)
        Grey levels ``>= 1`` inside the ROI, 0 outside.
    three_d : bool
        One matrix of the volume's 26-connected zones instead of one per slice (8-connected).

    Returns
    -------
    matrices : ndarray of float64
        ``(slices, G, Nz)`` per slice of the ROI's bounding box, or ``(1, G, Nz)`` for the volume:
        ``matrices[..., i, j - 1]`` counts the zones of the ``i``-th grey level present with size ``j``.
    grey_levels : ndarray of float64
        ``(G,)`` the grey level of each row.
    """
    z = zones.zones(levels, three_d=three_d)
    if z["level"].size == 0:
        raise ValueError("empty ROI: no voxel has a grey level >= 1")
    grey, li = np.unique(z["level"], return_inverse=True)
    n = 1 if three_d else int(z["slice"].max()) + 1
    m = np.zeros((n, grey.size, int(z["size"].max())))
    np.add.at(m, (0 if three_d else z["slice"], li, z["size"] - 1), 1.0)
    return m, grey


def small_zone_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Small zone emphasis (SZE).

    IBSI code ``5QRC``, tag ``szm.sze``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_z} \frac{s_{.j}}{j^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_j(b, -2.0)


def large_zone_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Large zone emphasis (LZE).

    IBSI code ``48P8``, tag ``szm.lze``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_z} j^2\, s_{.j}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_j(b, 2.0)


def low_grey_level_zone_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Low grey level zone emphasis (LGLZE).

    IBSI code ``XMSY``, tag ``szm.lgze``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} \frac{s_{i.}}{i^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_i(b, -2.0)


def high_grey_level_zone_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""High grey level zone emphasis (HGLZE).

    IBSI code ``5GN9``, tag ``szm.hgze``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} i^2\, s_{i.}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_i(b, 2.0)


def small_zone_low_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Small zone low grey level emphasis (SZLGLE).

    IBSI code ``5RAI``, tag ``szm.szlge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_z} \frac{s_{ij}}{i^2 j^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_ij(b, -2.0, -2.0)


def small_zone_high_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Small zone high grey level emphasis (SZHGLE).

    IBSI code ``HW1V``, tag ``szm.szhge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_z} \frac{i^2 s_{ij}}{j^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_ij(b, 2.0, -2.0)


def large_zone_low_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Large zone low grey level emphasis (LZLGLE).

    IBSI code ``YH51``, tag ``szm.lzlge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_z} \frac{j^2 s_{ij}}{i^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_ij(b, -2.0, 2.0)


def large_zone_high_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Large zone high grey level emphasis (LZHGLE).

    IBSI code ``J17V``, tag ``szm.lzhge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_z} i^2 j^2\, s_{ij}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_ij(b, 2.0, 2.0)


def grey_level_non_uniformity(b: ZoneBatch) -> np.ndarray:
    r"""Grey level non-uniformity (GLNU).

    IBSI code ``JNSA``, tag ``szm.glnu``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} s_{i.}^2

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.non_uniformity_i(b, normalised=False)


def normalised_grey_level_non_uniformity(b: ZoneBatch) -> np.ndarray:
    r"""Normalised grey level non-uniformity (NGLNU).

    IBSI code ``Y1RO``, tag ``szm.glnu.norm``:

    .. math:: F = \frac{1}{N_s^2}\sum_{i=1}^{N_g} s_{i.}^2

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.non_uniformity_i(b, normalised=True)


def zone_size_non_uniformity(b: ZoneBatch) -> np.ndarray:
    r"""Zone size non-uniformity (ZSNU).

    IBSI code ``4JP3``, tag ``szm.zsnu``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_z} s_{.j}^2

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.non_uniformity_j(b, normalised=False)


def normalised_zone_size_non_uniformity(b: ZoneBatch) -> np.ndarray:
    r"""Normalised zone size non-uniformity (NZSNU).

    IBSI code ``VB3A``, tag ``szm.zsnu.norm``:

    .. math:: F = \frac{1}{N_s^2}\sum_{j=1}^{N_z} s_{.j}^2

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.non_uniformity_j(b, normalised=True)


def zone_percentage(b: ZoneBatch) -> np.ndarray:
    r"""Zone percentage (ZP).

    IBSI code ``P30P``, tag ``szm.z.perc``:

    .. math:: F = \frac{N_s}{N_v}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.percentage(b)


def grey_level_variance(b: ZoneBatch) -> np.ndarray:
    r"""Grey level variance (GLV).

    IBSI code ``BYLV``, tag ``szm.gl.var``:

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_z} (i - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_z} i\, p_{ij}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.variance_i(b)


def zone_size_variance(b: ZoneBatch) -> np.ndarray:
    r"""Zone size variance (ZSV).

    IBSI code ``3NSA``, tag ``szm.zs.var``:

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_z} (j - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_z} j\, p_{ij}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.variance_j(b)


def zone_size_entropy(b: ZoneBatch) -> np.ndarray:
    r"""Zone size entropy (ZSE).

    IBSI code ``GU8N``, tag ``szm.zs.entr``:

    .. math:: F = -\sum_{i=1}^{N_g}\sum_{j=1}^{N_z} p_{ij} \log_2 p_{ij}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.entropy(b)


_TABLE = (
    ("szm.sze", "5QRC", "Small zone emphasis", small_zone_emphasis),
    ("szm.lze", "48P8", "Large zone emphasis", large_zone_emphasis),
    ("szm.lgze", "XMSY", "Low grey level zone emphasis", low_grey_level_zone_emphasis),
    ("szm.hgze", "5GN9", "High grey level zone emphasis", high_grey_level_zone_emphasis),
    ("szm.szlge", "5RAI", "Small zone low grey level emphasis", small_zone_low_grey_level_emphasis),
    ("szm.szhge", "HW1V", "Small zone high grey level emphasis", small_zone_high_grey_level_emphasis),
    ("szm.lzlge", "YH51", "Large zone low grey level emphasis", large_zone_low_grey_level_emphasis),
    ("szm.lzhge", "J17V", "Large zone high grey level emphasis", large_zone_high_grey_level_emphasis),
    ("szm.glnu", "JNSA", "Grey level non-uniformity", grey_level_non_uniformity),
    ("szm.glnu.norm", "Y1RO", "Normalised grey level non-uniformity", normalised_grey_level_non_uniformity),
    ("szm.zsnu", "4JP3", "Zone size non-uniformity", zone_size_non_uniformity),
    ("szm.zsnu.norm", "VB3A", "Normalised zone size non-uniformity", normalised_zone_size_non_uniformity),
    ("szm.z.perc", "P30P", "Zone percentage", zone_percentage),
    ("szm.gl.var", "BYLV", "Grey level variance", grey_level_variance),
    ("szm.zs.var", "3NSA", "Zone size variance", zone_size_variance),
    ("szm.zs.entr", "GU8N", "Zone size entropy", zone_size_entropy),
)

FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def glszm_features(levels: np.ndarray, n_levels: int, aggregations=AGGREGATIONS_3D) -> dict[str, float]:
    """All GLSZM features of a discretised ROI in the requested IBSI aggregation methods.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``1..n_levels`` inside the ROI (the intensity mask), 0 outside. Axis 0 is the
        slice axis of the 2D / 2.5D methods.
    n_levels : int
        Number of grey levels :math:`N_g`. Kept for the uniform family interface: no GLSZM feature
        depends on levels absent from the ROI.
    aggregations : sequence of str
        IBSI aggregation methods: ``"2D"``, ``"2.5D"``, ``"3D"``, or the directional names of
        :data:`medfeat.features.base.AGGREGATIONS`, which stand for these.

    Returns
    -------
    dict
        ``{column name: value}`` for every feature and method, e.g. ``szm_sze_3d``; NaN when the
        ROI is empty.
    """
    return zones.zone_family_features(_TABLE, levels, aggregations, "size")
