"""Image and ROI interpolation to a new voxel spacing, by the IBSI rules (IBSI chapter 2, 2.4).

The new grid is *centred* on the original grid: along an axis with ``n_a`` voxels of spacing
``s_a``, the new grid of spacing ``s_b`` has ``n_b = ceil(n_a s_a / s_b)`` voxels, and its first
voxel centre sits at ``x_b0 = x_a0 + (s_a (n_a - 1) - s_b (n_b - 1)) / 2``, so that both grids share
their centre. In the original grid's index coordinates, new voxel ``j`` lies at

    ``c_j = ((n_a - 1) - (n_b - 1) r) / 2 + j r``,  with ``r = s_b / s_a``.

Intensities are sampled at ``c_j`` with :func:`scipy.ndimage.map_coordinates`: nearest neighbour
(order 0), linear (order 1: bilinear in-plane, trilinear in 3D) or cubic spline (order 3, after the
spline prefilter: IBSI's "tricubic spline"), with values beyond the image borders extrapolated from
the nearest border voxel (``mode="nearest"``). The ROI mask is interpolated the same way as a 0/1
image (linear by default) and voxels whose interpolated value reaches the partial-volume threshold
(0.5 in every IBSI configuration) form the new ROI. An axis whose spacing does not change is left
as it is: slice-wise (2D) configurations interpolate in-plane only.

Only the part of the new grid that can hold ROI voxels is computed (:func:`interpolate_roi`), from
the part of the image around the ROI (with a margin: 1 voxel for nearest and linear, 20 for the
cubic spline, whose prefilter has an infinite but exponentially decaying support, here below
``1e-11`` of the intensity range); the values are those of the whole-image interpolation.

References
----------
Zwanenburg A., Leger S., Vallieres M., Loeck S., "Image biomarker standardisation initiative",
reference manual, arXiv:1612.07003, section 2.4 "Interpolation" (grid alignment, Figure 2.3), and
the CT phantom configurations B-E of chapter 5 (Table 5.1).
Zwanenburg A. et al., "The Image Biomarker Standardization Initiative", Radiology 295 (2020) 328-338.
Unser M., "Splines: a perfect fit for signal and image processing", IEEE Signal Processing Magazine
16 (1999) 22-38 (the cubic B-spline prefilter of :func:`scipy.ndimage.spline_filter`).

Examples
--------
>>> import numpy as np
>>> from medfeat.interpolation import interpolation_grid, resample
>>> interpolation_grid((3,), (1.0,), (2.0,))           # 3 mm of voxels -> 2 voxels of 2 mm
Grid(shape=(2,), spacing=(2.0,), start=(0.0,), step=(2.0,))
>>> resample(np.array([[0.0, 1.0], [2.0, 3.0]]), (1.0, 1.0), (0.5, 0.5), "linear")[0]
array([[0.  , 0.25, 0.75, 1.  ],
       [0.5 , 0.75, 1.25, 1.5 ],
       [1.5 , 1.75, 2.25, 2.5 ],
       [2.  , 2.25, 2.75, 3.  ]])
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["METHODS", "ROI_METHODS", "Grid", "interpolation_grid", "spline_order", "resample", "resample_mask",
           "interpolate_roi"]

#: Interpolation method names -> spline order. "bilinear"/"trilinear" and "bicubic"/"tricubic" are
#: the IBSI configuration names of "linear" and "cubic" in 2D and 3D.
METHODS = {"nearest": 0, "linear": 1, "bilinear": 1, "trilinear": 1, "cubic": 3, "bicubic": 3, "tricubic": 3}
#: Methods allowed for the ROI mask (a partial-volume fraction needs a convex combination).
ROI_METHODS = ("nearest", "linear", "bilinear", "trilinear")

_SPLINE_MARGIN = 20  # input voxels kept beyond the sampled region for the cubic spline's prefilter
_PV_EPS = 1e-6  # interpolated mask values are compared with the threshold at this precision

#: Most voxels of the new grid :func:`interpolate_roi` computes around a ROI (2 GiB per float64 array,
#: the scale of the readers' image limit): a tiny new spacing is refused before anything is allocated.
MAX_BOX_VOXELS = 1 << 28


class GridTooLarge(ValueError):
    """The interpolated box around a ROI would exceed :data:`MAX_BOX_VOXELS` (the message says why)."""


@dataclass(frozen=True)
class Grid:
    """A new grid, expressed in the original grid's index coordinates.

    Attributes
    ----------
    shape : tuple of int
        Voxels along each axis, ``ceil(n_a s_a / s_b)``.
    spacing : tuple of float
        New voxel spacing (mm).
    start : tuple of float
        Index coordinate, in the original grid, of the new grid's first voxel centre.
    step : tuple of float
        Original-grid index distance between neighbouring new voxels, ``s_b / s_a``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    start: tuple[float, ...]
    step: tuple[float, ...]

    def coordinates(self, axis: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Original-grid index coordinates of new voxels ``lo..hi-1`` along ``axis``."""
        hi = self.shape[axis] if hi is None else hi
        return self.start[axis] + np.arange(lo, hi, dtype=np.float64) * self.step[axis]

    def is_identity(self, axis: int) -> bool:
        """True when ``axis`` keeps its spacing (its voxels map onto the original ones)."""
        return self.step[axis] == 1.0 and self.start[axis] == 0.0

    def origin(self, origin: Sequence[float], spacing: Sequence[float]) -> tuple[float, ...]:
        """Position (mm) of the new first voxel centre, for an original grid at ``origin`` with
        ``spacing`` whose axes run along increasing coordinates."""
        return tuple(float(o + c * s) for o, c, s in zip(origin, self.start, spacing))


def interpolation_grid(shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]) -> Grid:
    """The IBSI grid of spacing ``new_spacing`` centred on an image of ``shape`` and ``spacing``.

    Parameters
    ----------
    shape : sequence of int
        Original number of voxels per axis.
    spacing : sequence of float
        Original voxel spacing (mm) per axis.
    new_spacing : sequence of float
        Wanted spacing per axis (same length).

    Returns
    -------
    Grid
        ``n_b = ceil(n_a s_a / s_b)`` voxels per axis, the first at index coordinate
        ``((n_a - 1) - (n_b - 1) s_b / s_a) / 2`` of the original grid. An axis whose spacing does
        not change maps onto itself.

    Examples
    --------
    >>> g = interpolation_grid((5,), (1.0,), (1.5,))      # 5 mm -> ceil(3.33) = 4 voxels of 1.5 mm
    >>> g.shape, g.start, g.step                         # centres at -0.25, 1.25, 2.75, 4.25: centre 2
    ((4,), (-0.25,), (1.5,))
    """
    if not len(shape) == len(spacing) == len(new_spacing):
        raise ValueError(f"shape {tuple(shape)}, spacing {tuple(spacing)} and new spacing "
                         f"{tuple(new_spacing)} differ in length")
    out_shape, start, step = [], [], []
    for n_a, s_a, s_b in zip(shape, spacing, new_spacing):
        n_a, s_a, s_b = int(n_a), float(s_a), float(s_b)
        if not (s_a > 0 and s_b > 0 and math.isfinite(s_a) and math.isfinite(s_b)):
            raise ValueError(f"spacings must be finite and positive, got {s_a} and {s_b}")
        if s_a == s_b:
            n_b, r, c0 = n_a, 1.0, 0.0
        else:
            r = s_b / s_a
            # a product like 204 * 0.977 / 2 may land a hair above an integer: ceil would add a voxel
            frac = n_a * s_a / s_b
            n_b = max(1, int(math.ceil(frac - 1e-9 * max(1.0, frac))))
            c0 = ((n_a - 1) - (n_b - 1) * r) / 2.0
        out_shape.append(n_b)
        start.append(c0)
        step.append(r)
    return Grid(tuple(out_shape), tuple(float(s) for s in new_spacing), tuple(start), tuple(step))


def spline_order(method: str) -> int:
    """Spline order of an interpolation method name (see :data:`METHODS`)."""
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown interpolation method {method!r}; use one of {', '.join(METHODS)}") from None


def _sample(array: np.ndarray, grid: Grid, order: int, box: Sequence[tuple[int, int]]) -> np.ndarray:
    """``array`` interpolated at the new-grid voxels of ``box`` (per axis ``(lo, hi)``), float64."""
    margin = 1 if order <= 1 else _SPLINE_MARGIN
    coords, crop = [], []
    for axis, (lo, hi) in enumerate(box):
        c = grid.coordinates(axis, lo, hi)
        n = array.shape[axis]
        if grid.is_identity(axis):
            crop.append(slice(lo, hi))
            coords.append(None)
            continue
        a = max(0, int(math.floor(c[0])) - margin)
        b = min(n, int(math.ceil(c[-1])) + margin + 1)
        if b <= a:  # the whole box lies beyond one border: keep the border voxel (nearest)
            a, b = (0, 1) if c[-1] < 0 else (n - 1, n)
        crop.append(slice(a, b))
        coords.append(c - a)
    from scipy import ndimage  # imported when used: settings read METHODS without scipy (~0.2 s)

    src = np.asarray(array[tuple(crop)], dtype=np.float64)
    changed = [axis for axis, c in enumerate(coords) if c is not None]
    out_shape = tuple(hi - lo for lo, hi in box)
    if not changed:
        return src.copy()
    if changed == list(range(1, src.ndim)):  # in-plane only (2D): slice by slice, axis 0 as it is
        plane = np.meshgrid(*[coords[a] for a in changed], indexing="ij")
        out = np.empty(out_shape, dtype=np.float64)
        for k in range(src.shape[0]):
            ndimage.map_coordinates(src[k], plane, output=out[k], order=order, mode="nearest",
                                    prefilter=order > 1)
        return out
    full = [coords[a] if coords[a] is not None else np.arange(src.shape[a], dtype=np.float64)
            for a in range(src.ndim)]
    mesh = np.meshgrid(*full, indexing="ij")
    return ndimage.map_coordinates(src, mesh, order=order, mode="nearest", prefilter=order > 1)


def resample(array: np.ndarray, spacing: Sequence[float], new_spacing: Sequence[float], method: str = "linear",
             *, box: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, Grid]:
    """Interpolate an image onto the IBSI grid of spacing ``new_spacing``.

    Parameters
    ----------
    array : ndarray
        The image (any number of axes; medfeat's are ``(z, y, x)``).
    spacing, new_spacing : sequence of float
        Original and wanted voxel spacing (mm) per axis.
    method : str
        ``"nearest"``, ``"linear"`` (``"bilinear"``, ``"trilinear"``) or ``"cubic"``
        (``"bicubic"``, ``"tricubic"``: cubic B-spline with its prefilter).
    box : sequence of (int, int), optional
        Compute only new-grid voxels ``lo..hi-1`` per axis (default: the whole new grid).

    Returns
    -------
    values : ndarray of float64
        The interpolated image (the box of it, when given). Positions beyond the original image
        take the nearest border value.
    grid : Grid
        The new grid (whole-image shape, start and step).
    """
    order = spline_order(method)
    array = np.asarray(array)
    grid = interpolation_grid(array.shape, spacing, new_spacing)
    if box is None:
        box = [(0, n) for n in grid.shape]
    return _sample(array, grid, order, box), grid


def resample_mask(mask: np.ndarray, spacing: Sequence[float], new_spacing: Sequence[float], method: str = "linear",
                  threshold: float = 0.5, *, box: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, Grid]:
    """Interpolate a binary ROI mask onto the IBSI grid of spacing ``new_spacing``.

    The mask is interpolated as a 0/1 image (``method`` ``"linear"`` or ``"nearest"``) and a new voxel
    belongs to the ROI when its value, its partial-volume fraction, is at least ``threshold``
    (compared at a precision of 1e-6, so that a fraction of exactly 0.5 computed as 0.4999999 still
    counts).

    Returns
    -------
    mask : ndarray of bool
    grid : Grid
    """
    if method not in ROI_METHODS:
        raise ValueError(f"ROI interpolation must be one of {', '.join(ROI_METHODS)}, not {method!r}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"partial-volume threshold must be in (0, 1], not {threshold}")
    values, grid = resample(np.asarray(mask, dtype=np.float64), spacing, new_spacing, method, box=box)
    return values >= threshold - _PV_EPS, grid


def _roi_box(mask: np.ndarray, grid: Grid, order: int) -> list[tuple[int, int]]:
    """New-grid voxels (per axis ``(lo, hi)``) whose interpolated mask can be non-zero."""
    from medfeat.processing import bounding_box

    support = 0.5 if order == 0 else 1.0
    box = []
    for axis, sl in enumerate(bounding_box(mask)):
        if grid.is_identity(axis):
            box.append((sl.start, sl.stop))
            continue
        # new voxel j touches the ROI when sl.start - support < c_j < sl.stop - 1 + support; one
        # voxel more each side absorbs rounding
        j_lo = math.floor((sl.start - support - grid.start[axis]) / grid.step[axis]) - 1
        j_hi = math.ceil((sl.stop - 1 + support - grid.start[axis]) / grid.step[axis]) + 2
        box.append((max(0, j_lo), min(grid.shape[axis], j_hi)))
    return box


def interpolate_roi(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float], new_spacing: Sequence[float],
                    method: str = "linear", roi_method: str = "linear", threshold: float = 0.5,
                    margin: Sequence[int] | int = 0) -> tuple[np.ndarray, np.ndarray, Grid, tuple[int, ...]]:
    """Interpolate an image and its ROI mask onto the IBSI grid, around the ROI only.

    The grid is that of the whole image (:func:`interpolation_grid`); only its voxels near the ROI
    are computed, from the image around the ROI, and the values are those of the whole-image
    interpolation.

    Parameters
    ----------
    image : ndarray
        Intensities (``(z, y, x)``), the whole image.
    mask : ndarray of bool
        ROI on the image grid (non-empty).
    spacing, new_spacing : sequence of float
        Original and wanted spacing (mm). Equal entries leave their axis as it is.
    method : str
        Intensity interpolation (see :func:`resample`).
    roi_method : str
        Mask interpolation, ``"linear"`` (IBSI) or ``"nearest"``.
    threshold : float
        Partial-volume threshold of the mask (IBSI: 0.5).
    margin : int or sequence of int
        New-grid voxels to add around the ROI's box per axis (within the grid), for features that
        look beyond the ROI (local intensity spheres).

    Returns
    -------
    image : ndarray of float64
        Interpolated intensities over the computed box of the new grid.
    mask : ndarray of bool
        Interpolated ROI over the same box (may be empty for a ROI thinner than the threshold keeps).
    grid : Grid
        The whole new grid.
    offset : tuple of int
        Index, in the whole new grid, of the box's first voxel.
    """
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} and mask shape {mask.shape} differ")
    order = spline_order(method)
    if roi_method not in ROI_METHODS:
        raise ValueError(f"ROI interpolation must be one of {', '.join(ROI_METHODS)}, not {roi_method!r}")
    grid = interpolation_grid(image.shape, spacing, new_spacing)
    box = _roi_box(mask, grid, spline_order(roi_method))
    margins = [int(margin)] * len(box) if np.ndim(margin) == 0 else [int(m) for m in margin]
    box = [(max(0, lo - m), min(n, hi + m)) for (lo, hi), m, n in zip(box, margins, grid.shape)]
    voxels = math.prod(hi - lo for lo, hi in box)
    if voxels > MAX_BOX_VOXELS:
        size = "x".join(str(hi - lo) for lo, hi in box)
        raise GridTooLarge(f"interpolating to {tuple(float(v) for v in new_spacing)} mm makes a {size} grid "
                           f"({voxels} voxels) around the region of interest, above the {MAX_BOX_VOXELS} "
                           "computed at once (medfeat.interpolation.MAX_BOX_VOXELS)")
    new_mask, _ = resample_mask(mask, spacing, new_spacing, roi_method, threshold, box=box)
    values = _sample(image, grid, order, box)
    return values, new_mask, grid, tuple(lo for lo, _ in box)
