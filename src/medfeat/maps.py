"""Voxel feature maps: features of the neighbourhood of every ROI voxel, one image per feature.

PyRadiomics' voxel-based mode (``RadiomicsFeatureExtractor.execute(..., voxelBased=True)``) in
medfeat: for every voxel of the region of interest, the features of a *kernel* around it -- a cube
of side ``2R+1`` (3D settings) or a square of side ``2R+1`` in the voxel's slice (2D settings) --
written at that voxel. Voxels outside the ROI are NaN.

>>> from medfeat.maps import feature_maps
>>> maps = feature_maps("ct.nii.gz", "tumour.nii.gz", "default-3d", ("stat", "glcm"), radius=1)  # doctest: +SKIP
>>> maps["cm_contrast_3d_avg"].shape == image_shape  # doctest: +SKIP

What a map value is
-------------------
The value at ROI voxel ``v`` is the family's value (:data:`medfeat.families.FAMILIES`, same columns
as :func:`medfeat.extract`) of the kernel's sub-volume, with

* the ROI restricted to the kernel (``masked_kernel=True``, PyRadiomics' ``maskedKernel``
  default): only ROI voxels inside the kernel count, and a GLCM pair counts when both its voxels
  are ROI voxels inside the kernel; with ``masked_kernel=False`` every voxel of the kernel that
  lies in the image (and passes the settings' re-segmentation) counts;
* the grey levels of the **whole** ROI: the settings' discretisation is done once, on the whole
  ROI (``masked_kernel=False``: on every voxel some kernel reaches), not per kernel, and the
  number of grey levels :math:`N_g` (normalised inverse differences, the intensity histogram's
  last level) is the whole ROI's. So is PyRadiomics' (``binImage`` on the ROI, ``Ng`` its top).

Re-segmentation (range, outliers) and rounding apply as in :func:`medfeat.extract`; the centres
are the voxels of the re-segmented ROI. Interpolation and image filters are not supported (the maps
are on the image's grid).

How it is computed
------------------
``stat``, ``ih`` and ``glcm`` (every aggregation method the settings ask for) are computed by the
compiled sliding-window sweep of :mod:`medfeat.features.sliding_window`: the kernel slides one voxel at
a time along each row of ROI voxels, and its intensity histogram, grey-level histogram and
co-occurrence counts are updated incrementally -- the plane of voxels leaving the kernel is taken
out and the plane entering it put in -- instead of being recounted; the features of each kernel
are computed from those counts over the levels present in the kernel only (about 5 us per voxel
for the 25 GLCM features, 13 directions, radius 1).

``ivh``, ``glrlm``, ``glszm``, ``gldzm``, ``ngtdm`` and ``ngldm`` fall back to the family's own
function on every kernel's sub-volume (the same definition; one Python call per ROI voxel: slow,
about a millisecond per voxel and family). The shape families (``morph``, ``morph2d``, ``li``,
``gift``) have no voxel maps.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from medfeat import processing
from medfeat.errors import InputError
from medfeat.image import Image

__all__ = ["feature_maps", "compute_maps", "write_maps", "VoxelMaps", "INCREMENTAL", "FALLBACK"]

#: families computed by the incremental sliding-window sweep
INCREMENTAL = ("stat", "ih", "glcm")
#: families computed per kernel by the family's own function (slow)
FALLBACK = ("ivh", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm")
_NO_MAPS = ("morph", "morph2d", "li", "gift")


@dataclass
class VoxelMaps:
    """Feature values of every centre voxel, and how to place them on the image's grid.

    Attributes
    ----------
    columns : list of str
        Feature columns (medfeat's names, e.g. ``cm_contrast_3d_avg``), in :func:`medfeat.extract`'s order.
    values : ndarray, shape (n_voxels, n_columns)
        The features of each centre voxel's kernel (float64).
    index : tuple of 3 ndarrays
        The centre voxels' (z, y, x) indices on the image grid.
    shape : tuple of int
        The image's (z, y, x) shape.
    image : Image
        The image (its grid: spacing, origin, ``meta["affine"]``).
    notes : list of str
        What the reader should know (settings chosen for a single-slice image, a resampled mask).
    """

    columns: list[str]
    values: np.ndarray
    index: tuple[np.ndarray, np.ndarray, np.ndarray]
    shape: tuple[int, int, int]
    image: Image
    notes: list[str] = field(default_factory=list)

    def array(self, column: str, dtype=np.float64) -> np.ndarray:
        """The map of ``column`` on the image grid: the feature at the ROI voxels, NaN elsewhere."""
        k = self.columns.index(column)
        out = np.full(self.shape, np.nan, dtype=dtype)
        out[self.index] = self.values[:, k]
        return out

    def affine(self) -> np.ndarray:
        """The NIfTI voxel-to-world matrix of the image grid, for arrays transposed to (x, y, z):
        the image's own (``meta["affine"]``, NIfTI) or the axis-aligned one of spacing and origin."""
        affine = self.image.meta.get("affine") if isinstance(self.image.meta, dict) else None
        if affine is None:
            affine = np.diag([*self.image.spacing[::-1], 1.0])
            affine[:3, 3] = self.image.origin[::-1]
        return np.asarray(affine, dtype=float)


def _family_list(families) -> tuple[str, ...]:
    from medfeat.families import FAMILIES

    if isinstance(families, str):
        families = [f.strip() for f in families.split(",") if f.strip()]
    fams = tuple(dict.fromkeys(families))
    if not fams:
        raise InputError("families", "name at least one family")
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise InputError("families", f"unknown feature families {unknown}; available: {', '.join(FAMILIES)}")
    shape = [f for f in fams if f in _NO_MAPS]
    if shape:
        raise InputError("families", f"{', '.join(shape)} describe the ROI's shape: no voxel maps; maps are "
                                     f"available for {', '.join(INCREMENTAL + FALLBACK)}")
    return fams


def _dilate(mask: np.ndarray, radii: tuple[int, int, int]) -> np.ndarray:
    """``mask`` grown by a box of half sizes ``radii`` (the voxels some kernel of a mask voxel reaches)."""
    out = mask
    for axis, r in enumerate(radii):
        if r == 0:
            continue
        grown = out.copy()
        for s in range(1, r + 1):
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis], hi[axis] = slice(s, None), slice(None, -s)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


class _KernelROI:
    """A kernel's sub-volume as :class:`medfeat.roi.ROI` shows it to the families, with the
    whole ROI's grey levels (the fallback families)."""

    def __init__(self, settings, spacing, image, morph_mask, mask, levels, n_levels, ivh_rep, ivh_grid, source):
        self.settings = settings
        self.spacing = spacing
        self.source = source
        self.pixels = None
        self.image = image
        self.morph_mask = morph_mask
        self.mask = mask
        self.levels = np.where(mask, levels, 0).astype(np.int32)
        self.n_levels = n_levels
        self.level_values = (levels[mask], n_levels)
        self.values = image[mask].astype(np.float64, copy=False)
        self._ivh = None if ivh_rep is None else (ivh_rep[mask], ivh_grid)

    def ivh_representation(self):
        return self._ivh

    def release(self, still_needed) -> None:
        pass


def _stat_row(values: np.ndarray) -> dict[str, float]:
    """The intensity statistics of ``values``, feature by feature: a kernel of two distinct values
    has no value within [P10, P90], and its robust mean absolute deviation is NaN (not an error)."""
    from medfeat.features.base import column
    from medfeat.features.intensity_statistics import FEATURE_FUNCTIONS, Summary

    s = Summary(values)
    row = {}
    for tag, fn in FEATURE_FUNCTIONS:
        try:
            row[column(tag)] = fn(s)
        except ZeroDivisionError:
            row[column(tag)] = float("nan")
    return row


def compute_maps(image, mask, settings=None, families: Iterable[str] | str = ("stat", "glcm"), radius: int = 1,
                 masked_kernel: bool = True, *, label: int | None = None, roi: str | None = None,
                 incremental: bool = True) -> VoxelMaps:
    """Voxel feature maps as a :class:`VoxelMaps` (the values of the ROI voxels only; see
    :func:`feature_maps` for the parameters). ``incremental=False`` computes every family by the
    per-kernel fallback (a slow reference)."""
    from medfeat.columns import family_columns
    from medfeat.families import FAMILIES
    from medfeat.pipeline import as_image, as_mask, settings_for
    from medfeat.roi import ROI
    from medfeat.settings import Settings

    s = Settings.resolve(settings)
    fams = _family_list(families)
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)) or radius < 1:
        raise InputError("radius", f"must be an integer >= 1, not {radius!r}")
    radius = int(radius)
    img = as_image(image)
    name = img.source or "<array>"
    notes: list[str] = []
    s, fams = settings_for(img, s, fams, notes)
    if s.interpolation_spacing is not None:
        raise InputError(s.name, "voxel maps are on the image grid: interpolation_spacing is not supported")
    if s.filters:
        raise InputError(s.name, "voxel maps of filtered images are not supported: leave `filters` out")
    morph_full = as_mask(mask, img, label, roi, s, notes)
    rz = radius if s.dimension == "3d" else 0
    radii = (rz, radius, radius)
    box = processing.bounding_box(morph_full)
    ext = tuple(slice(max(0, b.start - r), min(n, b.stop + r)) for b, r, n in zip(box, radii, img.shape))
    raw = img.intensity()[ext] if img.is_rgb else img.array[ext]
    values = raw.astype(np.float64)
    if s.round_intensities:
        values = np.round(values)
    morph = morph_full[ext]
    n_roi = int(np.count_nonzero(morph))
    bad = n_roi - int(np.count_nonzero(np.isfinite(values) & morph))
    if bad:
        raise InputError(name, f"image has {bad} NaN/inf voxel(s) inside the region of interest")
    # the re-segmented ROI (the centres), as extract's ROI makes it
    whole = ROI(values, morph, s, img.spacing, name)
    inner = tuple(slice(b.start - e.start, b.stop - e.start) for b, e in zip(box, ext))
    centres = np.zeros(morph.shape, dtype=bool)
    centres[inner] = whole.mask
    if not centres.any():
        raise InputError(name, "the region of interest is empty after re-segmentation")
    if masked_kernel:
        usable, disc = centres, whole
    else:  # every voxel a kernel reaches, within the re-segmentation bounds
        usable = _dilate(centres, radii) & np.isfinite(values)
        if s.resegment_min is not None:
            usable &= values >= s.resegment_min
        if s.resegment_max is not None:
            usable &= values <= s.resegment_max
        if s.outlier_sigma is not None:
            keep = processing.resegment_range(values, morph, s.resegment_min, s.resegment_max)
            v = values[keep]
            mu, sd = v.mean(), v.std()
            usable &= (values >= mu - s.outlier_sigma * sd) & (values <= mu + s.outlier_sigma * sd)
        disc = ROI(values, usable, s, img.spacing, name, intensity_mask=usable)
    # the discretisation, once, over every usable voxel
    cols = family_columns(s, fams)
    columns = [c.name for c in cols]
    need_levels = any(f != "stat" for f in fams)
    dbox = disc.box  # where disc's arrays lie in the kernels' box
    levels = np.zeros(values.shape, np.int32)
    n_levels = 0
    if need_levels:
        levels[dbox] = disc.levels
        n_levels = int(disc.n_levels)
    rows = np.full(values.shape, -1, np.int64)
    index_ext = np.nonzero(centres)
    rows[index_ext] = np.arange(index_ext[0].size)
    out = np.full((index_ext[0].size, len(columns)), np.nan)
    at = {c: k for k, c in enumerate(columns)}

    fast = [f for f in fams if f in INCREMENTAL] if incremental else []
    if fast:
        _sweep(values, usable, levels, n_levels, centres, rows, radii, s, fast, at, out)
    slow = [f for f in fams if f not in fast]
    if slow:
        ivh_rep = ivh_grid = None
        if "ivh" in slow:
            rep, ivh_grid = disc.ivh_representation()
            ivh_rep = np.zeros(values.shape, dtype=np.asarray(rep).dtype)
            sub = np.zeros(values.shape, dtype=bool)
            sub[dbox] = disc.mask
            ivh_rep[sub] = rep
        kmorph = morph if masked_kernel else np.ones(values.shape, dtype=bool)
        for k in range(index_ext[0].size):
            z, y, x = (int(a[k]) for a in index_ext)
            win = tuple(slice(max(0, c - r), c + r + 1) for c, r in zip((z, y, x), radii))
            kroi = _KernelROI(s, img.spacing, values[win], kmorph[win], usable[win], levels[win], n_levels,
                              None if ivh_rep is None else ivh_rep[win], ivh_grid, name)
            n = int(np.count_nonzero(kroi.mask))
            for f in slow:
                fam = FAMILIES[f]
                if n < fam.min_voxels:
                    continue
                for c, v in (_stat_row(kroi.values) if f == "stat" else fam.compute(kroi)).items():
                    out[k, at[c]] = v
    index = tuple(a + e.start for a, e in zip(index_ext, ext))
    return VoxelMaps(columns, out, index, img.shape, img, notes)


def _sweep(values, usable, levels, n_levels, centres, rows, radii, s, fams, at, out) -> None:
    """The incremental families, by the compiled sweep of :mod:`medfeat.features.sliding_window`."""
    from medfeat.features import sliding_window as sw
    from medfeat.features.base import column, directions_3d
    from medfeat.features.glcm import FEATURES as GLCM
    from medfeat.features.intensity_histogram import FEATURES as IH
    from medfeat.features.intensity_statistics import FEATURES as STAT

    # compact grey level indices of the usable voxels
    glev_int = np.unique(levels[usable]) if n_levels else np.zeros(0, np.int64)
    gidx = np.full(values.shape, -1, np.int64)
    if glev_int.size:
        gidx[usable] = np.searchsorted(glev_int, levels[usable])
    top = max(n_levels, int(glev_int[-1]) if glev_int.size else 1)
    lvl2idx = np.full(top + 2, -1, np.int64)
    lvl2idx[glev_int] = np.arange(glev_int.size)
    want_stat = "stat" in fams
    uidx = np.full(values.shape if want_stat else (1, 1, 1), -1, np.int64)
    uvals = np.zeros(0)
    if want_stat:
        uvals, inv = np.unique(values[usable], return_inverse=True)
        uidx[usable] = inv.reshape(-1)
    # where each family's columns are in `out`: stat and ih contiguous, glcm per aggregation
    def first(tag, agg=None):
        return at.get(column(tag, agg), -1)

    off_stat = first(STAT[0].tag) if want_stat else -1
    off_ih = first(IH[0].tag) if "ih" in fams else -1
    offs_agg = np.full(6, -1, np.int64)
    if "glcm" in fams:
        for k, a in enumerate(sw.AGG_ORDER):
            offs_agg[k] = first(GLCM[0].tag, a)
    # the compiled sweep writes blocks of contiguous columns: check the layout it assumes
    blocks = ([(off_stat, STAT, None)] if want_stat else []) + ([(off_ih, IH, None)] if "ih" in fams else []) + \
        [(offs_agg[k], GLCM, a) for k, a in enumerate(sw.AGG_ORDER) if offs_agg[k] >= 0]
    for off, feats, agg in blocks:
        assert [at[column(f.tag, agg)] for f in feats] == list(range(off, off + len(feats)))
    cz, cy, cx = np.nonzero(centres)
    box = np.array([[cz.min(), cz.max()], [cy.min(), cy.max()], [cx.min(), cx.max()]], np.int64)
    # each row's first and last centre (x), -1 for rows without any
    sub = centres[box[0, 0]:box[0, 1] + 1, box[1, 0]:box[1, 1] + 1]
    has = sub.any(axis=2)
    row_lo = np.where(has, sub.argmax(axis=2), -1).astype(np.int64)
    row_hi = np.where(has, sub.shape[2] - 1 - sub[:, :, ::-1].argmax(axis=2), -1).astype(np.int64)
    offs, odir, opos, inpl = sw.offsets(directions_3d())
    agg_ptr, group_ptr, members = sw.aggregation_groups(inpl, 2 * radii[0] + 1)
    # log2 of every count a merged matrix can hold (each voxel pairs with at most 26 others, counted twice)
    kvox = (2 * radii[0] + 1) * (2 * radii[1] + 1) * (2 * radii[2] + 1)
    lg = np.log2(np.maximum(np.arange(26 * kvox + 2, dtype=np.float64), 1.0))
    wd = sw.difference_weights(n_levels, top)
    sw.sweep(np.ascontiguousarray(usable), gidx, uidx, rows, box, row_lo, row_hi, np.array(radii, np.int64),
             int(s.distance), offs, odir, opos, inpl, glev_int.astype(np.float64), uvals, int(n_levels), lvl2idx,
             want_stat, "ih" in fams, int(off_stat), int(off_ih), offs_agg, agg_ptr, group_ptr, members, lg, wd,
             sw.STAT_QUANTILES, sw.IH_QUANTILES, out)


def feature_maps(image, mask, settings=None, families: Iterable[str] | str = ("stat", "glcm"), radius: int = 1,
                 masked_kernel: bool = True, *, label: int | None = None, roi: str | None = None,
                 dtype=np.float64) -> dict[str, np.ndarray]:
    """Voxel feature maps: every feature of ``families`` computed in the neighbourhood of every ROI voxel.

    Parameters
    ----------
    image : Image, path or ndarray
        The image (as :func:`medfeat.extract` takes it).
    mask : Image, path, ndarray
        The region of interest (label image, RTSTRUCT or SEG, as :func:`medfeat.extract`).
    settings : Settings, preset name, settings file or None
        Processing settings (default ``auto``): discretisation, re-segmentation, GLCM distance and
        aggregation methods; ``dimension = "2d"`` makes the kernel a square in the voxel's slice.
    families : iterable of str, or "stat,glcm"
        Families to map: ``stat``, ``ih``, ``glcm`` (incremental); ``ivh``, ``glrlm``, ``glszm``,
        ``gldzm``, ``ngtdm``, ``ngldm`` (per-kernel fallback, slow).
    radius : int
        Kernel half size ``R``: a cube (square) of side ``2R+1`` voxels centred on the voxel,
        clipped at the image's border (PyRadiomics' ``kernelRadius``).
    masked_kernel : bool
        Only ROI voxels of the kernel count (PyRadiomics' ``maskedKernel``, default); False: every
        image voxel of the kernel within the re-segmentation range.
    label, roi : optional
        Mask label, RTSTRUCT ROI / SEG segment name (as :func:`medfeat.extract`).
    dtype : numpy dtype
        The maps' type (float64; float32 halves their memory).

    Returns
    -------
    dict
        ``{column: array (z, y, x) on the image grid}``, NaN outside the (re-segmented) ROI; the
        columns are :func:`medfeat.extract`'s for these settings and families.
    """
    maps = compute_maps(image, mask, settings, families, radius, masked_kernel, label=label, roi=roi)
    return {c: maps.array(c, dtype) for c in maps.columns}


def write_maps(maps: VoxelMaps, folder: str | os.PathLike) -> list[Path]:
    """Write every map as ``folder/<column>.nii.gz`` (float32, the image's grid and affine)."""
    import nibabel as nib

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(str(folder), "exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(str(folder), f"cannot create the folder: {exc.strerror or exc}") from None
    affine = maps.affine()
    written = []
    for c in maps.columns:
        arr = maps.array(c, np.float32)
        path = folder / f"{c}.nii.gz"
        nib.save(nib.Nifti1Image(np.ascontiguousarray(arr.transpose(2, 1, 0)), affine), path)
        written.append(path)
    return written
