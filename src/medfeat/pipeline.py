"""One image (and its mask) -> one row of features: :func:`extract`.

Pipeline, following IBSI chapter 2: crop to the ROI's bounding box, optional interpolation of the
image and the ROI to a new spacing (:mod:`medfeat.interpolation`), optional rounding,
re-segmentation (range, then outliers), discretisation, then the requested feature families
(:mod:`medfeat.families`), on the original image and on every filtered one.

>>> import medfeat
>>> row = medfeat.extract("ct.nii.gz", mask="tumour.nii.gz", settings="default-3d")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from medfeat import processing
from medfeat.errors import InputError
from medfeat.families import FAMILIES, VOLUME_ONLY_FAMILIES, check_families, filtered_families
from medfeat.image import Image
from medfeat.roi import ROI
from medfeat.settings import Settings


def as_image(image: Image | str | os.PathLike | np.ndarray) -> Image:
    """``image`` as an :class:`Image`: an array as it is, a path read by :func:`medfeat.io.read_image`."""
    if isinstance(image, Image):
        return image
    if isinstance(image, np.ndarray):
        return Image(image, source="<array>")
    from medfeat.io import read_image

    return read_image(image)


def _voxel_to_world(img: Image) -> np.ndarray | None:
    """The 3x4 map from medfeat's (z, y, x, 1) voxel index to world coordinates: the file's affine
    where it has one (NIfTI), else the axis-aligned grid of origin and spacing."""
    affine = img.meta.get("affine") if isinstance(img.meta, dict) else None
    if affine is not None:
        a = np.asarray(affine, dtype=float)[:3]
        return a[:, [2, 1, 0, 3]]  # (x, y, z) index columns -> medfeat's (z, y, x)
    m = np.zeros((3, 4))
    m[:, :3] = np.diag(img.spacing)
    m[:, 3] = img.origin
    return m


def _geometry_difference(mask: Image, image: Image, tol: float) -> str | None:
    """Why ``mask``'s grid is not ``image``'s within ``tol`` voxels, or None. Masks of another file
    family (a DICOM image, a NIfTI mask) have other world conventions: only shape and spacing count."""
    if mask.array.shape[:3] != image.array.shape[:3]:
        return f"shape {tuple(mask.array.shape[:3])} differs from the image's {image.shape}"
    if not np.allclose(mask.spacing, image.spacing, rtol=tol, atol=1e-6):
        return f"spacing {mask.spacing} mm differs from the image's {image.spacing} mm"
    if ("affine" in (mask.meta or {})) != ("affine" in (image.meta or {})):
        return None
    a, b = _voxel_to_world(mask), _voxel_to_world(image)
    limit = tol * max(image.spacing)
    if np.abs(a[:, :3] - b[:, :3]).max() > limit:
        return "its axes point other ways than the image's (flipped or rotated voxel-to-world mapping)"
    shift = a[:, 3] - b[:, 3]
    if np.abs(shift).max() > limit:
        return f"its origin is {np.linalg.norm(shift):.3g} mm from the image's"
    return None


def _resample_mask(mask: Image, image: Image) -> np.ndarray:
    """The mask's values at the image's voxel centres (nearest neighbour in world coordinates),
    slice by slice so that memory stays bounded; voxels outside the mask's grid are 0."""
    src, dst = _voxel_to_world(mask), _voxel_to_world(image)
    full = np.vstack([src, [0, 0, 0, 1]])
    to_mask = np.linalg.inv(full)[:3] @ np.vstack([dst, [0, 0, 0, 1]])  # image index -> mask index
    arr = mask.array
    out = np.zeros(image.shape, dtype=arr.dtype)
    _, ny, nx = image.shape
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    for z in range(image.shape[0]):
        idx = np.stack([np.full(yy.shape, z), yy, xx, np.ones(yy.shape)]).reshape(4, -1)
        ijk = np.rint(to_mask @ idx).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(arr.shape[:3])[:, None]), axis=0)
        plane = np.zeros(ny * nx, dtype=arr.dtype)
        plane[inside] = arr[ijk[0, inside], ijk[1, inside], ijk[2, inside]]
        out[z] = plane.reshape(ny, nx)
    return out


def as_mask(mask, image: Image, label: int | None, roi: str | None = None,
             settings: "Settings | None" = None, notes: list[str] | None = None) -> np.ndarray:
    """The ROI of ``image`` as a boolean array on its grid, from ``mask`` as :func:`extract` takes it
    (label image, array, RTSTRUCT or SEG; None: the whole image). Refuses a mask on another grid
    (unless ``settings.resample_mask``) or an empty one; ``notes`` receives a line if resampled."""
    name = image.source or "<array>"
    if mask is None:
        if roi is not None:
            raise InputError(name, f"roi={roi!r} names an RTSTRUCT ROI, but no mask was given")
        return np.ones(image.shape, dtype=bool)
    from medfeat.io.rtstruct import RTStruct, find_rtstruct, rtstruct_mask
    from medfeat.io.seg import Segmentation, find_seg, seg_mask

    segmentation = mask if isinstance(mask, Segmentation) else None
    if segmentation is None and isinstance(mask, (str, os.PathLike)):
        segmentation = find_seg(mask)
    if segmentation is not None:  # a DICOM SEG: roi is a segment label, label a segment number
        return seg_mask(segmentation, image, roi, label)
    structures = mask if isinstance(mask, RTStruct) else None
    if structures is None and isinstance(mask, (str, os.PathLike)):
        structures = find_rtstruct(mask)
    if structures is not None:
        if label is not None:
            raise InputError(os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else structures.source,
                             "label selects a value of a label-image mask; choose an RTSTRUCT ROI with roi=NAME")
        return rtstruct_mask(structures, image, roi)
    if roi is not None:
        src = mask.source if isinstance(mask, Image) else (
            os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else "<mask array>")
        raise InputError(src, f"roi={roi!r} names an RTSTRUCT ROI or SEG segment, but the mask is neither")
    if isinstance(mask, np.ndarray):
        arr, src, spacing = (mask[np.newaxis] if mask.ndim == 2 else mask), "<mask array>", None
    else:
        m = mask if isinstance(mask, Image) else as_image(mask)
        if m.is_rgb:
            raise InputError(m.source, "mask is a colour image; masks must be single-channel label images")
        arr, src, spacing = m.array, m.source or "<mask>", m.spacing
        tol = settings.geometry_tolerance if settings is not None else 1e-3
        why = _geometry_difference(m, image, tol)
        if why is not None and settings is not None and settings.resample_mask:
            arr, spacing = _resample_mask(m, image), image.spacing
            if notes is not None:
                notes.append(f"mask resampled onto the image grid (nearest neighbour): {why}")
        elif why is not None and ("origin" in why or "axes" in why):
            raise InputError(src, f"mask geometry does not match the image {name}: {why} (tolerance "
                                  f"{tol:g} voxel); resample it onto the image grid with --resample-mask")
    if arr.shape != image.shape:
        raise InputError(src, f"mask shape {tuple(arr.shape)} does not match image shape {image.shape} of {name}")
    if spacing is not None and not np.allclose(spacing, image.spacing, rtol=1e-3, atol=1e-4):
        raise InputError(src, f"mask spacing {spacing} mm does not match image spacing {image.spacing} mm of {name}")
    if label is None:
        if arr.dtype == bool:
            out = arr
        elif arr.dtype.kind in "fc":  # a NaN (or infinite) mask value is no label: not in the ROI
            out = (arr != 0) & np.isfinite(arr)
        else:
            out = arr != 0
    else:
        out = arr == label
    if not out.any():
        what = "no non-zero voxel" if label is None else f"no voxel with label {label}"
        raise InputError(src, f"mask is empty ({what})")
    return out


def _widen_for_spheres(img: Image, box: tuple[slice, ...], morph: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intensities of the ROI box widened by the local-intensity sphere's reach (within the
    image), and the ROI mask (``morph``, on the box) placed in that wider box."""
    from medfeat.features.local_intensity import sphere_margin

    wide = tuple(slice(max(0, b.start - h), min(n, b.stop + h))
                 for b, h, n in zip(box, sphere_margin(img.spacing), img.shape))
    arr = img.array[wide] if not img.is_rgb else img.array[wide + (slice(None),)]
    mask = np.zeros(arr.shape[:3], dtype=bool)
    mask[tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, wide))] = morph
    return (arr if arr.dtype.kind in "iu" and not img.is_rgb else Image(arr, spacing=img.spacing).intensity()), mask


def interpolate_around_roi(img: Image, morph: np.ndarray, s: Settings, name: str, around: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Image and ROI on the IBSI grid of ``s.interpolation_spacing`` (around the ROI only; with
    ``around``, as far beyond it as the local-intensity spheres reach)."""
    from medfeat.interpolation import GridTooLarge, interpolate_roi

    new_spacing = tuple(s.interpolation_spacing)
    if len(new_spacing) == 2:  # in-plane only: slices stay as they are
        new_spacing = (img.spacing[0],) + new_spacing
    margin = 0
    if around:
        from medfeat.features.local_intensity import sphere_margin

        margin = sphere_margin(new_spacing)
    # the interpolation crops (with a margin) and converts only the part around the ROI
    source = img.intensity() if img.is_rgb else img.array
    try:
        values, new_mask, grid, _ = interpolate_roi(source, morph, img.spacing, new_spacing, s.interpolation,
                                                    s.roi_interpolation, s.roi_partial_volume, margin)
    except GridTooLarge as exc:
        raise InputError(name, str(exc)) from None
    if not new_mask.any():
        raise InputError(name, f"the region of interest vanishes when interpolated to {new_spacing} mm "
                               f"(partial-volume threshold {s.roi_partial_volume})")
    bad = np.count_nonzero(~np.isfinite(values[new_mask]))
    if bad:
        raise InputError(name, f"image has {bad} NaN/inf voxel(s) inside the interpolated region of interest")
    return values, new_mask, tuple(float(v) for v in grid.spacing)


def settings_for(img: Image, s: Settings, fams: tuple[str, ...], notes: list[str]
                  ) -> tuple[Settings, tuple[str, ...]]:
    """The settings and families this image runs with, and the notes its row gets about them."""
    gaps = img.meta.get("irregular_slice_spacing") if isinstance(img.meta, dict) else None
    if gaps:
        notes.append(f"irregular slice spacing: gaps of {min(gaps):g} to {max(gaps):g} mm between slices, "
                     f"features computed with the median {img.spacing[0]:g} mm")
    if img.shape[0] != 1:
        return s, fams
    alt = s.single_slice_settings(fams)
    if alt is not None:
        left = [f for f in fams if f not in alt[1]]
        notes.append(f"{alt[0].name} settings (single-slice image)" + (f"; {', '.join(left)} left out" if left else ""))
        return alt
    if s.dimension == "3d" and any(FAMILIES[f].textured or f in VOLUME_ONLY_FAMILIES for f in fams):
        notes.append("3D settings on a single-slice image: 3D texture, morph and li treat it as a volume one "
                     "voxel thick (default-2d, or no --settings, computes slice features)")
    return s, fams


def extract(image: Image | str | os.PathLike | np.ndarray,
            mask: Image | str | os.PathLike | np.ndarray | None = None,
            settings: Settings | str | os.PathLike | None = None,
            *, families: Iterable[str] | None = None, label: int | None = None,
            roi: str | None = None, notes: list[str] | None = None, pack_gift: bool = False) -> dict[str, float]:
    """Extract features from one image.

    Parameters
    ----------
    image : Image, path or ndarray
        The image; a path is read with :func:`medfeat.io.read_image`. RGB images are converted to
        BT.601 luma for the radiomics families; the ``gift`` family uses the colours.
    mask : Image, path, ndarray or None
        Region of interest on the image grid; non-zero voxels (or voxels equal to ``label``).
        A DICOM SEG file gives segment ``roi`` (its label) or ``label`` (its number).
        A DICOM RTSTRUCT file (or a folder holding only that file) gives the contours of ROI
        ``roi`` (:mod:`medfeat.io.rtstruct`). None means the whole image.
    settings : Settings, preset name, TOML path or None
        Processing settings; default ``auto`` (``default-3d``; ``default-2d`` for a single slice).
    families : iterable of str, optional
        Families to compute (default: ``settings.families``).
    label : int, optional
        Mask label to use.
    roi : str, optional
        ROIName of an RTSTRUCT mask, or SegmentLabel of a SEG; may be omitted when the file
        holds one ROI (segment).
    notes : list, optional
        Receives one line per thing the row's reader should know: the preset a single-slice image
        got (``single_slice`` settings) or 3D settings on a single slice, a mask resampled onto the
        image grid, irregular slice spacing in a DICOM series.
    pack_gift : bool, optional
        The gift family's 3,412 block and Gabor codes as one ``gift_codes`` value (3,412 bytes,
        see :func:`medfeat.tables.pack_gift_codes`) instead of 3,412 columns: what production jobs
        store, ~0.4 ms per image cheaper.

    Returns
    -------
    dict
        ``{column name: value}`` in the stable order of :func:`medfeat.feature_columns`.

    Raises
    ------
    InputError
        Unreadable image or mask, mismatched mask, empty ROI, non-finite voxels, bad settings.
    """
    s = Settings.resolve(settings)
    fams = check_families(families, s)
    img = as_image(image)
    notes = [] if notes is None else notes
    s, fams = settings_for(img, s, fams, notes)
    morph = as_mask(mask, img, label, roi, s, notes)
    name = img.source or "<array>"
    whole_mask = morph
    # crop before converting: a tumour ROI is a small part of a CT volume
    box = processing.bounding_box(morph)
    pixels = Image(img.array[box] if not img.is_rgb else img.array[box + (slice(None),)],
                   spacing=img.spacing, source=name, meta=img.meta)  # as read, colour kept (gift)
    # No grey values read: only colour families (gift reads roi.pixels), and no filter,
    # re-segmentation or interpolation. A colour image's luma is then not computed (0.47 ms of a
    # 256 x 256 RGB picture's ~8 ms of gift); the ROI crops a stand-in of zeros that nothing reads.
    grey_unread = (pixels.is_rgb and not s.filters and s.interpolation_spacing is None
                   and s.resegment_min is None and s.resegment_max is None and s.outlier_sigma is None
                   and not any(FAMILIES[f].reads_grey for f in fams))
    # integer intensities stay as read (a view, no float64 copy of the box: a 65 M-voxel CT box
    # would take 520 MB); the ROI's values are converted when taken (ROI.values)
    if grey_unread:
        intensities = np.zeros(pixels.array.shape[:-1], np.uint8)
    else:
        intensities = pixels.array if pixels.array.dtype.kind in "iu" and not pixels.is_rgb else pixels.intensity()
    n_roi = int(np.count_nonzero(morph[box]))
    if pixels.array.dtype.kind == "f":  # integer images hold no NaN/inf
        finite = np.isfinite(pixels.array).all(axis=-1) if grey_unread else np.isfinite(intensities)
        bad = n_roi - int(np.count_nonzero(finite & morph[box]))
        if bad:
            raise InputError(name, f"image has {bad} NaN/inf voxel(s) inside the region of interest")
    spacing = img.spacing
    if s.interpolation_spacing is None:
        morph = morph[box]
        if "li" in fams:  # local intensity spheres reach outside the ROI (IBSI 3.2)
            intensities, morph = _widen_for_spheres(img, box, morph)
    else:  # IBSI 2.4: interpolate image and ROI before re-segmentation (and before rounding)
        intensities, morph, spacing = interpolate_around_roi(img, morph, s, name, around="li" in fams)
        n_roi = int(np.count_nonzero(morph))
    roi = ROI(intensities, morph, s, spacing, name, pixels=pixels, pack_gift=pack_gift)
    n = int(np.count_nonzero(roi.mask))
    need = max((FAMILIES[f].min_voxels for f in fams), default=1)
    if n < need:
        what = "after re-segmentation " if n < n_roi else ""
        fam = next(f for f in fams if FAMILIES[f].min_voxels == need)
        src = mask.source if isinstance(mask, Image) else (os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else name)
        raise InputError(src, f"mask leaves {n} voxel(s) {what}but {fam} needs at least {need}")
    out: dict[str, float] = {}
    if s.original or not s.filters:
        for k, f in enumerate(fams):
            out.update(FAMILIES[f].compute(roi))
            roi.release(u for later in fams[k + 1:] for u in FAMILIES[later].uses)
    if s.filters:
        del roi
        out.update(_filtered_features(img, whole_mask, s, fams, name))
    return out


def _filtered_features(img: Image, whole_mask: np.ndarray, s: Settings, fams: tuple[str, ...],
                       name: str) -> dict[str, float]:
    """Features of every filtered image (IBSI 2): the filter runs on the whole image (interpolated
    first when the settings interpolate, and rounded when they round), the ROI and its
    re-segmentation come from the original intensities, the families from the response."""
    from medfeat.filters import registry

    spacing = tuple(float(v) for v in img.spacing)
    if s.interpolation_spacing is not None:
        spacing = tuple(s.interpolation_spacing)
        if len(spacing) == 2:
            spacing = (float(img.spacing[0]),) + spacing
    # Each filter runs on the ROI's box and as much around it as it reaches: the ROI's responses are
    # those of filtering the whole image (the box stops at the image's edge, where the padding is
    # the same), at a fraction of the cost on a CT. Filters that see the whole image get it all, and
    # so does a periodic filter whose box would wrap at the image's edge. Filters with the same box
    # share one copy of it (and PyRadiomics' wavelet sub-bands one decomposition).
    reaches = [registry.reach(spec, spacing) for spec in s.filters]
    ffams = filtered_families(fams)
    plain = s.replace(resegment_min=None, resegment_max=None, outlier_sigma=None, round_intensities=False, filters=())
    if s.interpolation_spacing is not None:
        from medfeat.interpolation import GridTooLarge, interpolate_roi

        margin = None if any(r is None for r in reaches) else tuple(max(r[a] for r in reaches) for a in range(3))
        if any(registry.wraps(spec) for spec in s.filters):
            margin = None  # the interpolated grid's edge is not the image's: a periodic filter gets it all
        source = img.intensity() if img.is_rgb else img.array
        try:
            source, mask, grid, _ = interpolate_roi(source, whole_mask, img.spacing, spacing, s.interpolation,
                                                    s.roi_interpolation, s.roi_partial_volume,
                                                    margin=1 << 30 if margin is None else margin)
        except GridTooLarge as exc:
            raise InputError(name, str(exc)) from None
        spacing = tuple(float(v) for v in grid.spacing)
        groups = [(source, mask, list(s.filters))]
    else:
        full = img.intensity() if img.is_rgb else img.array
        roi_box = processing.bounding_box(whole_mask)
        by_box: dict[tuple, list] = {}
        for spec, r in zip(s.filters, reaches):
            if r is not None and registry.wraps(spec) and any(
                    b.start - m < 0 or b.stop + m > n for b, m, n in zip(roi_box, r, whole_mask.shape)):
                r = None
            box = tuple(slice(0, n) for n in whole_mask.shape) if r is None else tuple(
                slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(roi_box, r, whole_mask.shape))
            by_box.setdefault(tuple((b.start, b.stop) for b in box), []).append(spec)
        groups = [(full[tuple(slice(*b) for b in key)].astype(np.float64), whole_mask[tuple(slice(*b) for b in key)],
                   specs) for key, specs in by_box.items()]
    need = max((FAMILIES[f].min_voxels for f in ffams), default=1)
    per_filter: dict[str, dict[str, float]] = {}
    for source, mask, specs in groups:
        if s.round_intensities:
            source = np.round(source)
        keep = mask
        if s.resegment_min is not None or s.resegment_max is not None:
            keep = processing.resegment_range(source, keep, s.resegment_min, s.resegment_max)
        if s.outlier_sigma is not None:
            keep = processing.resegment_outliers(source, keep, s.outlier_sigma)
        cache: dict = {}
        for spec in specs:
            try:
                response = registry.apply(spec, source, spacing, cache)
            except InputError as exc:  # a filter refusing these settings on this image: say which image
                raise InputError(name, exc.reason if exc.path == "filters" else str(exc)) from None
            roi = ROI(response, mask, plain, spacing, name, intensity_mask=keep)
            n = int(np.count_nonzero(roi.mask))
            if n < need:
                raise InputError(name, f"the ROI leaves {n} voxel(s) after re-segmentation but {need} are needed")
            prefix = registry.label(spec) + "__"
            values: dict[str, float] = {}
            for k, f in enumerate(ffams):
                values.update({prefix + c: v for c, v in FAMILIES[f].compute(roi).items()})
                roi.release(u for later in ffams[k + 1:] for u in FAMILIES[later].uses)
            per_filter[prefix] = values
        del source, mask, keep, cache
    out: dict[str, float] = {}
    for spec in s.filters:  # in the settings' order
        out.update(per_filter[registry.label(spec) + "__"])
    return out
