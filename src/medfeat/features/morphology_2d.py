r"""2D shape of the ROI in each slice (family ``morph2d``): the counterpart of PyRadiomics' shape2D.

IBSI defines morphology in 3D only (:mod:`medfeat.features.morphology`, family ``morph``); for a
picture or a slice-wise study the shape of the ROI in the image plane is what users expect. These
features have no IBSI code. They are computed for each slice of the morphological mask that holds
ROI pixels, in mm, and averaged over those slices (a slice's NaN is left out of its feature's
mean):

* area :math:`A`: enclosed by the marching-squares contour (scikit-image ``find_contours`` on the
  zero-padded slice at level 0.5; holes subtract), and by pixel counting;
* perimeter :math:`P`: the contour's length, holes included; perimeter to area ratio :math:`P/A`;
* circularity :math:`4\pi A/P^2` (PyRadiomics' 2D "sphericity" is its square root);
* maximum 2D diameter: the largest distance between two contour vertices (over the convex hull);
* PCA of the pixel centres (sample covariance): major and minor axis lengths
  :math:`4\sqrt{\lambda}` and elongation :math:`\sqrt{\lambda_{minor}/\lambda_{major}}`;
* area densities: :math:`A` over the area of the contour's axis-aligned bounding rectangle and over
  its convex hull (solidity).

References
----------
.. [1] Lorensen W.E., Cline H.E. "Marching cubes: a high resolution 3D surface construction
       algorithm." SIGGRAPH Computer Graphics 21(4):163-169 (1987) (marching squares is its 2D
       case).
.. [2] van Griethuysen J.J.M. et al. "Computational radiomics system to decode the radiographic
       phenotype." Cancer Research 77(21):e104-e107 (2017) (PyRadiomics, shape2D).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from medfeat.features.base import FeatureDef
from medfeat.features.morphology import _ratio, max_diameter

FAMILY = "morph2d"

FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("morph.2d.area", "", "area (marching-squares contour), mean over slices (mm^2)"),
    FeatureDef("morph.2d.approx.area", "", "area (pixel counting), mean over slices (mm^2)"),
    FeatureDef("morph.2d.perimeter", "", "perimeter (contour length), mean over slices (mm)"),
    FeatureDef("morph.2d.pa", "", "perimeter to area ratio, mean over slices (1/mm)"),
    FeatureDef("morph.2d.circularity", "", "circularity 4 pi A / P^2, mean over slices"),
    FeatureDef("morph.2d.diam", "", "maximum 2D diameter, mean over slices (mm)"),
    FeatureDef("morph.2d.pca.major", "", "2D major axis length 4 sqrt(lambda_major), mean over slices (mm)"),
    FeatureDef("morph.2d.pca.minor", "", "2D minor axis length 4 sqrt(lambda_minor), mean over slices (mm)"),
    FeatureDef("morph.2d.pca.elongation", "", "2D elongation sqrt(lambda_minor / lambda_major), mean over slices"),
    FeatureDef("morph.2d.a.dens.aabb", "", "area density (axis-aligned bounding rectangle), mean over slices"),
    FeatureDef("morph.2d.a.dens.conv.hull", "", "area density (convex hull, solidity), mean over slices"),
)


def _polygon_area(contour: np.ndarray) -> float:
    y, x = contour[:, 0], contour[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def slice_features(mask2d: np.ndarray, spacing2d) -> dict[str, float]:
    """The 2D shape features of one slice (``mask2d`` (y, x), ``spacing2d`` (dy, dx) in mm)."""
    from skimage.measure import find_contours

    sp = np.asarray(spacing2d, dtype=np.float64)
    contours = [c * sp for c in find_contours(np.pad(mask2d.astype(np.float32), 1), 0.5)]
    contours = [c for c in contours if len(c) > 1]
    area = abs(sum(_polygon_area(c) for c in contours))
    perimeter = float(sum(np.linalg.norm(np.diff(c, axis=0), axis=1).sum() for c in contours))
    pts = np.concatenate(contours) if contours else np.zeros((1, 2))
    try:
        hull = ConvexHull(pts)
        hull_pts, hull_area = pts[hull.vertices], float(hull.volume)  # 2D: volume is the area
    except (QhullError, ValueError):
        hull_pts, hull_area = pts, float("nan")
    ext = pts.max(axis=0) - pts.min(axis=0)
    count, cov = _pixel_moments(mask2d, sp)
    lam = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))[::-1] if count > 1 else np.zeros(2)
    return {
        "morph.2d.area": area,
        "morph.2d.approx.area": float(count * np.prod(sp)),
        "morph.2d.perimeter": perimeter,
        "morph.2d.pa": _ratio(perimeter, area),
        "morph.2d.circularity": _ratio(4.0 * math.pi * area, perimeter ** 2),
        "morph.2d.diam": max_diameter(hull_pts),
        "morph.2d.pca.major": 4.0 * math.sqrt(lam[0]),
        "morph.2d.pca.minor": 4.0 * math.sqrt(lam[1]),
        "morph.2d.pca.elongation": math.sqrt(lam[1] / lam[0]) if lam[0] > 0 else float("nan"),
        "morph.2d.a.dens.aabb": _ratio(area, float(np.prod(ext))),
        "morph.2d.a.dens.conv.hull": _ratio(area, hull_area),
    }


def _pixel_moments(mask2d: np.ndarray, sp: np.ndarray) -> tuple[int, np.ndarray]:
    """Pixel count and sample covariance (mm^2) of the pixel centres, from the row and column
    projections (no coordinate array)."""
    m = np.asarray(mask2d, dtype=np.float64)
    y = np.arange(m.shape[0]) * sp[0]
    x = np.arange(m.shape[1]) * sp[1]
    rows, cols = m.sum(axis=1), m.sum(axis=0)
    n = float(rows.sum())
    if n < 2:
        return int(n), np.zeros((2, 2))
    my, mx = rows @ y / n, cols @ x / n
    yc, xc = y - my, x - mx
    syy, sxx, sxy = rows @ yc ** 2, cols @ xc ** 2, yc @ m @ xc
    return int(n), np.array([[syy, sxy], [sxy, sxx]]) / (n - 1)


def morphology_2d_features(morph_mask: np.ndarray, spacing) -> dict[str, float]:
    """:data:`FEATURES` of a ``(z, y, x)`` mask with ``(z, y, x)`` spacing: :func:`slice_features`
    averaged over the slices holding ROI pixels (a slice's NaN left out of its feature's mean)."""
    rows = [slice_features(s, spacing[1:]) for s in np.asarray(morph_mask, dtype=bool) if s.any()]
    out = {}
    for f in FEATURES:
        v = np.array([r[f.tag] for r in rows], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[f.tag] = float(v.mean()) if v.size else float("nan")
    return out
