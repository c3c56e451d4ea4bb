r"""Grey level distance zone matrix (GLDZM) features (IBSI chapter 1, section 3.9).

Zones are those of the GLSZM (:mod:`medfeat.features.glszm`): connected groups of intensity-mask
voxels sharing one discretised grey level, 26-connected in 3D and 8-connected within a slice in 2D.
The *distance* of a voxel is its distance to the edge of the ROI's **morphological** mask (IBSI
3.9, "Morphological and intensity masks"), measured with 6-connectivity in 3D and in-plane
4-connectivity in 2D (the Manhattan norm): the number of voxel faces crossed to leave the mask, so
a voxel on the edge has distance 1 and the image border counts as the edge. This is IBSI's
iterative definition (erode with the cross-shaped structuring element; every surviving voxel
gains 1) in closed form. The distance of a zone is the smallest distance of its voxels.

The distance zone matrix :math:`d_{ij}` counts the zones of grey level :math:`i` at distance
:math:`j`. With :math:`N_g` grey levels and :math:`N_d` the largest zone distance,

* :math:`N_s = \sum_{i=1}^{N_g}\sum_{j=1}^{N_d} d_{ij}` is the number of zones,
* :math:`d_{i.} = \sum_j d_{ij}` and :math:`d_{.j} = \sum_i d_{ij}` are the marginal sums,
* :math:`p_{ij} = d_{ij} / N_s` is the joint probability,
* :math:`N_v` is the number of intensity-mask voxels the matrix was built from, summed over
  merged matrices.

Grey levels :math:`i` are the true discretised levels (absent levels contribute nothing),
logarithms are base 2.

Aggregation methods (IBSI 3.9, "Aggregating features"): "2D" averages the features of the slices'
matrices (zones and distances within each slice; slices without intensity-mask voxels left out);
"2.5D" computes the features of one matrix merging the slices' matrices; "3D" those of the matrix
of the volume's zones, with 3D distances. Columns carry the suffixes ``_2d``, ``_25d`` and ``_3d``;
the directional methods of settings map onto these as for the GLSZM. A ROI without voxels gives NaN.

Implementation: one compiled pass labels the zones (union-find) after a two-pass city-block
distance transform of the padded morphological mask; see :mod:`medfeat.features.zones`.

References
----------
.. [1] Zwanenburg A., Vallieres M., et al. "The Image Biomarker Standardization Initiative:
       standardized quantitative radiomics for high-throughput image-based phenotyping."
       Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145. Reference manual
       (arXiv:1612.07003), section 3.9 "Grey level distance zone based features".
.. [2] Thibault G., Angulo J., Meyer F. "Advanced statistical matrices for texture
       characterization: application to cell classification." IEEE Transactions on Biomedical
       Engineering 61(3):630-637 (2014). doi:10.1109/TBME.2013.2284600.
"""
from __future__ import annotations

import numpy as np

from medfeat.features import zones
from medfeat.features.base import AGGREGATIONS_3D, FeatureDef
from medfeat.features.zones import ZoneBatch

FAMILY = "gldzm"


def distance_zone_matrices(levels: np.ndarray, three_d: bool = False, morph_mask: np.ndarray | None = None):
    """Distance zone matrices of a discretised ROI, dense, over the grey levels present.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x) or (y, x)
        Grey levels ``>= 1`` inside the ROI (intensity mask), 0 outside.
    three_d : bool
        One matrix of the volume's zones (3D distances) instead of one per slice (in-plane distances).
    morph_mask : ndarray of bool, optional
        Morphological mask the distances are measured in (default: the intensity mask).

    Returns
    -------
    matrices : ndarray of float64
        ``(slices, G, Nd)`` per slice of the ROI's bounding box, or ``(1, G, Nd)`` for the volume:
        ``matrices[..., i, j - 1]`` counts the zones of the ``i``-th grey level present at distance ``j``.
    grey_levels : ndarray of float64
        ``(G,)`` the grey level of each row.
    """
    z = zones.zones(levels, three_d=three_d, morph_mask=morph_mask)
    if z["level"].size == 0:
        raise ValueError("empty ROI: no voxel has a grey level >= 1")
    grey, li = np.unique(z["level"], return_inverse=True)
    n = 1 if three_d else int(z["slice"].max()) + 1
    m = np.zeros((n, grey.size, int(z["distance"].max())))
    np.add.at(m, (0 if three_d else z["slice"], li, z["distance"] - 1), 1.0)
    return m, grey


def small_distance_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Small distance emphasis (SDE).

    IBSI code ``0GBI``, tag ``dzm.sde``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_d} \frac{d_{.j}}{j^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_j(b, -2.0)


def large_distance_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Large distance emphasis (LDE).

    IBSI code ``MB4I``, tag ``dzm.lde``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_d} j^2\, d_{.j}

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

    IBSI code ``S1RA``, tag ``dzm.lgze``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} \frac{d_{i.}}{i^2}

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

    IBSI code ``K26C``, tag ``dzm.hgze``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} i^2\, d_{i.}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_i(b, 2.0)


def small_distance_low_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Small distance low grey level emphasis (SDLGLE).

    IBSI code ``RUVG``, tag ``dzm.sdlge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_d} \frac{d_{ij}}{i^2 j^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_ij(b, -2.0, -2.0)


def small_distance_high_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Small distance high grey level emphasis (SDHGLE).

    IBSI code ``DKNJ``, tag ``dzm.sdhge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_d} \frac{i^2 d_{ij}}{j^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_ij(b, 2.0, -2.0)


def large_distance_low_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Large distance low grey level emphasis (LDLGLE).

    IBSI code ``A7WM``, tag ``dzm.ldlge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_d} \frac{j^2 d_{ij}}{i^2}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.emphasis_ij(b, -2.0, 2.0)


def large_distance_high_grey_level_emphasis(b: ZoneBatch) -> np.ndarray:
    r"""Large distance high grey level emphasis (LDHGLE).

    IBSI code ``KLTH``, tag ``dzm.ldhge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_d} i^2 j^2\, d_{ij}

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

    IBSI code ``VFT7``, tag ``dzm.glnu``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} d_{i.}^2

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

    IBSI code ``7HP3``, tag ``dzm.glnu.norm``:

    .. math:: F = \frac{1}{N_s^2}\sum_{i=1}^{N_g} d_{i.}^2

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.non_uniformity_i(b, normalised=True)


def zone_distance_non_uniformity(b: ZoneBatch) -> np.ndarray:
    r"""Zone distance non-uniformity (ZDNU).

    IBSI code ``V294``, tag ``dzm.zdnu``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_d} d_{.j}^2

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.non_uniformity_j(b, normalised=False)


def normalised_zone_distance_non_uniformity(b: ZoneBatch) -> np.ndarray:
    r"""Normalised zone distance non-uniformity (NZDNU).

    IBSI code ``IATH``, tag ``dzm.zdnu.norm``:

    .. math:: F = \frac{1}{N_s^2}\sum_{j=1}^{N_d} d_{.j}^2

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

    IBSI code ``VIWW``, tag ``dzm.z.perc``:

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

    IBSI code ``QK93``, tag ``dzm.gl.var``:

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_d} (i - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_d} i\, p_{ij}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.variance_i(b)


def zone_distance_variance(b: ZoneBatch) -> np.ndarray:
    r"""Zone distance variance (ZDV).

    IBSI code ``7WT1``, tag ``dzm.zd.var``:

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_d} (j - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_d} j\, p_{ij}

    Parameters
    ----------
    b : ZoneBatch
        Zone matrices (occupied cells and marginals).

    Returns
    -------
    ndarray, shape (n,)
    """
    return zones.variance_j(b)


def zone_distance_entropy(b: ZoneBatch) -> np.ndarray:
    r"""Zone distance entropy (ZDE).

    IBSI code ``GBDU``, tag ``dzm.zd.entr``:

    .. math:: F = -\sum_{i=1}^{N_g}\sum_{j=1}^{N_d} p_{ij} \log_2 p_{ij}

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
    ("dzm.sde", "0GBI", "Small distance emphasis", small_distance_emphasis),
    ("dzm.lde", "MB4I", "Large distance emphasis", large_distance_emphasis),
    ("dzm.lgze", "S1RA", "Low grey level zone emphasis", low_grey_level_zone_emphasis),
    ("dzm.hgze", "K26C", "High grey level zone emphasis", high_grey_level_zone_emphasis),
    ("dzm.sdlge", "RUVG", "Small distance low grey level emphasis", small_distance_low_grey_level_emphasis),
    ("dzm.sdhge", "DKNJ", "Small distance high grey level emphasis", small_distance_high_grey_level_emphasis),
    ("dzm.ldlge", "A7WM", "Large distance low grey level emphasis", large_distance_low_grey_level_emphasis),
    ("dzm.ldhge", "KLTH", "Large distance high grey level emphasis", large_distance_high_grey_level_emphasis),
    ("dzm.glnu", "VFT7", "Grey level non-uniformity", grey_level_non_uniformity),
    ("dzm.glnu.norm", "7HP3", "Normalised grey level non-uniformity", normalised_grey_level_non_uniformity),
    ("dzm.zdnu", "V294", "Zone distance non-uniformity", zone_distance_non_uniformity),
    ("dzm.zdnu.norm", "IATH", "Normalised zone distance non-uniformity", normalised_zone_distance_non_uniformity),
    ("dzm.z.perc", "VIWW", "Zone percentage", zone_percentage),
    ("dzm.gl.var", "QK93", "Grey level variance", grey_level_variance),
    ("dzm.zd.var", "7WT1", "Zone distance variance", zone_distance_variance),
    ("dzm.zd.entr", "GBDU", "Zone distance entropy", zone_distance_entropy),
)

FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def gldzm_features(levels: np.ndarray, n_levels: int, aggregations=AGGREGATIONS_3D,
                   morph_mask: np.ndarray | None = None) -> dict[str, float]:
    """All GLDZM features of a discretised ROI in the requested IBSI aggregation methods.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``1..n_levels`` inside the ROI (the intensity mask), 0 outside. Axis 0 is the
        slice axis of the 2D / 2.5D methods.
    n_levels : int
        Number of grey levels :math:`N_g`. Kept for the uniform family interface: no GLDZM feature
        depends on levels absent from the ROI.
    aggregations : sequence of str
        IBSI aggregation methods: ``"2D"``, ``"2.5D"``, ``"3D"``, or the directional names of
        :data:`medfeat.features.base.AGGREGATIONS`, which stand for these.
    morph_mask : ndarray of bool, optional
        The ROI's morphological mask, same shape as ``levels``, for the distances (IBSI); default the
        intensity mask ``levels > 0``. Intensity-mask voxels outside it are taken as inside.

    Returns
    -------
    dict
        ``{column name: value}`` for every feature and method, e.g. ``dzm_sde_3d``; NaN when the
        ROI is empty.
    """
    return zones.zone_family_features(_TABLE, levels, aggregations, "distance", morph_mask)
