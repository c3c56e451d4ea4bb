r"""2D shape of the ROI in each slice (family ``morph2d``): the counterpart of PyRadiomics' shape2D.

IBSI defines morphology in 3D only (:mod:`medfeat.features.morphology`, family ``morph``); for a
picture or a slice-wise study the shape of the ROI in the image plane is what users expect. These
features have no IBSI code. They are computed for each slice of the morphological mask that holds
ROI pixels, in mm, and averaged over those slices (a slice's NaN is left out of its feature's
mean):

* area :math:`A`: enclosed by the marching-squares contour of the zero-padded slice at level 0.5
  (the contour scikit-image's ``find_contours`` draws; holes subtract; diagonal pixels are not
  connected), and by pixel counting;
* perimeter :math:`P`: the contour's length, holes included; perimeter to area ratio :math:`P/A`;
* circularity :math:`4\pi A/P^2` (PyRadiomics' 2D "sphericity" is its square root);
* maximum 2D diameter: the largest distance between two contour vertices (over the convex hull);
* PCA of the pixel centres (sample covariance): major and minor axis lengths
  :math:`4\sqrt{\lambda}` and elongation :math:`\sqrt{\lambda_{minor}/\lambda_{major}}`;
* area densities: :math:`A` over the area of the contour's axis-aligned bounding rectangle and over
  its convex hull (solidity).

The contour is never traced: for a binary mask each 2x2 cell of pixel centres holds a fixed piece
of it (its vertices are the midpoints of the cell edges joining an inside and an outside pixel), so
area and perimeter are sums of per-configuration constants over the 16 cell configurations, and the
hull is that of the contour vertices which end a row.

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

import numba
import numpy as np

from medfeat.features.base import FeatureDef
from medfeat.features.morphology import max_diameter, ratio

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


# The 2x2 cell configurations (bits: top-left 1, top-right 2, bottom-right 4, bottom-left 8):
# the inside area (cell areas) and the contour length (in diagonal half-lengths h, horizontal
# lengths dx, vertical lengths dy) of the marching-squares piece in the cell.
_CELL_AREA = np.zeros(16)
_CELL_H = np.zeros(16)
_CELL_DX = np.zeros(16)
_CELL_DY = np.zeros(16)
for _code in range(16):
    _bits = [(_code >> k) & 1 for k in range(4)]
    _n = sum(_bits)
    if _n == 1:
        _CELL_AREA[_code], _CELL_H[_code] = 1 / 8, 1
    elif _n == 3:
        _CELL_AREA[_code], _CELL_H[_code] = 7 / 8, 1
    elif _n == 4:
        _CELL_AREA[_code] = 1.0
    elif _n == 2:
        if _code in (5, 10):  # diagonal: two corner pieces (inside pixels only edge-connected)
            _CELL_AREA[_code], _CELL_H[_code] = 2 / 8, 2
        else:
            _CELL_AREA[_code] = 1 / 2
            if _code in (3, 12):  # top or bottom pair: a horizontal piece
                _CELL_DX[_code] = 1
            else:
                _CELL_DY[_code] = 1


@numba.njit(cache=True, nogil=True)
def _slice_census(m):  # pragma: no cover - compiled
    """One pass over a slice's mask (uint8 0/1, padded with one layer of zeros): the count of each
    2x2 cell configuration, the contour vertices that end a row (half-pixel keys ``(2 y, 2 x + 1)``
    for horizontal inside/outside pairs, ``(2 y + 1, 2 x)`` for vertical ones), and per row the
    pixel count and the sum of the pixels' column indices."""
    py, px = m.shape
    counts = np.zeros(16, np.int64)
    ky = np.empty(4 * py, np.int64)
    kx = np.empty(4 * py, np.int64)
    row_n = np.zeros(py, np.int64)
    row_x = np.zeros(py, np.int64)
    k = 0
    for y in range(py):
        first_h = last_h = first_v = last_v = -1
        n_row = x_row = 0  # in registers, stored once per row
        for x in range(px):
            v = m[y, x]
            if v:
                n_row += 1
                x_row += x
            if x + 1 < px and v != m[y, x + 1]:
                if first_h < 0:
                    first_h = x
                last_h = x
            if y + 1 < py:
                if v != m[y + 1, x]:
                    if first_v < 0:
                        first_v = x
                    last_v = x
                if x + 1 < px:
                    counts[v | (m[y, x + 1] << 1) | (m[y + 1, x + 1] << 2) | (m[y + 1, x] << 3)] += 1
        row_n[y], row_x[y] = n_row, x_row
        for first, last, dy_, dx_ in ((first_h, last_h, 0, 1), (first_v, last_v, 1, 0)):
            if first >= 0:
                ky[k], kx[k] = 2 * y + dy_, 2 * first + dx_
                k += 1
                if last != first:
                    ky[k], kx[k] = 2 * y + dy_, 2 * last + dx_
                    k += 1
    return counts, ky[:k], kx[:k], row_n, row_x


def slice_features(mask2d: np.ndarray, spacing2d) -> dict[str, float]:
    """The 2D shape features of one slice (``mask2d`` (y, x), ``spacing2d`` (dy, dx) in mm)."""
    from medfeat.features.morphology import hull_2d_indices

    sp = np.asarray(spacing2d, dtype=np.float64)
    dy, dx = float(sp[0]), float(sp[1])
    counts, ky, kx, row_n, row_x = _slice_census(np.pad(np.asarray(mask2d, dtype=bool), 1).view(np.uint8))
    counts = counts.astype(np.float64)
    area = float(counts @ _CELL_AREA) * dy * dx
    perimeter = float(counts @ (_CELL_H * 0.5 * math.hypot(dx, dy) + _CELL_DX * dx + _CELL_DY * dy))
    ky, kx = ky.astype(np.float64), kx.astype(np.float64)
    pts = np.stack([(ky - 2) * (dy / 2), (kx - 2) * (dx / 2)], axis=1)  # mm, pixel centres at 0, d, ...
    hull_pts = pts[hull_2d_indices(kx, ky)]
    hull_area = _polygon_area(hull_pts) if len(hull_pts) > 2 else 0.0
    ext = pts.max(axis=0) - pts.min(axis=0)
    count, cov = _pixel_moments(mask2d, sp, row_n[1:-1], row_x[1:-1] - row_n[1:-1])
    lam = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))[::-1] if count > 1 else np.zeros(2)
    return {
        "morph.2d.area": area,
        "morph.2d.approx.area": float(count * dy * dx),
        "morph.2d.perimeter": perimeter,
        "morph.2d.pa": ratio(perimeter, area),
        "morph.2d.circularity": ratio(4.0 * math.pi * area, perimeter ** 2),
        "morph.2d.diam": max_diameter(hull_pts),
        "morph.2d.pca.major": 4.0 * math.sqrt(lam[0]),
        "morph.2d.pca.minor": 4.0 * math.sqrt(lam[1]),
        "morph.2d.pca.elongation": math.sqrt(lam[1] / lam[0]) if lam[0] > 0 else float("nan"),
        "morph.2d.a.dens.aabb": ratio(area, float(np.prod(ext))),
        "morph.2d.a.dens.conv.hull": ratio(area, hull_area),
    }


def _polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon (vertices in order, either orientation)."""
    y, x = poly[:, 0], poly[:, 1]
    return abs(0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _pixel_moments(mask2d: np.ndarray, sp: np.ndarray, row_n: np.ndarray, row_x: np.ndarray
                   ) -> tuple[int, np.ndarray]:
    """Pixel count and sample covariance (mm^2) of the pixel centres, from each row's pixel count
    ``row_n`` and sum of column indices ``row_x`` (the column sums come from the mask)."""
    n = float(row_n.sum())
    if n < 2:
        return int(n), np.zeros((2, 2))
    y = np.arange(row_n.size) * sp[0]
    x = np.arange(mask2d.shape[1]) * sp[1]
    rows = row_n.astype(np.float64)
    cols = np.count_nonzero(mask2d, axis=0).astype(np.float64)
    my, mx = rows @ y / n, cols @ x / n
    yc, xc = y - my, x - mx
    # sum over pixels of (y - my)(x - mx) = sum_y yc_y (sum of x in the row - mx * pixels in the row)
    syy, sxx, sxy = rows @ yc ** 2, cols @ xc ** 2, yc @ (row_x * sp[1] - mx * rows)
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
