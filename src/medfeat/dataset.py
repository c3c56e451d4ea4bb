"""Deterministic production datasets made from real medical images that ship inside Python packages.

A 2009 medical image retrieval production ran 89 jobs of 250 RGB PPM images each (256 x 256,
196,623 bytes a file). :func:`make_dataset` writes datasets of that shape so that medfeat can replay
such productions without shipping or downloading image data:

- the **sources** are the DICOM images in the installed ``pydicom`` wheel (``pydicom/data/test_files``)
  and, when installed, the ``pydicom-data`` wheel (``data_store/data``): CT, MR, CR, NM and ultrasound,
  including real colour ultrasound (RGB, YBR and palette colour). The package folders are listed
  directly; pydicom's ``get_testdata_file`` helpers are never called because they download missing
  files. Sources that cannot be decoded here (a JPEG 2000 file without ``pylibjpeg-openjpeg``, say)
  are skipped and listed in ``dataset.json``; pydicom's own uncompressed files always suffice.
- every **output image** is one source frame put through a seeded chain of variations: crop, shift,
  scale, rotation and flip (one affine resampling straight to the output size), a display window
  (CT presets in HU, percentiles otherwise), gamma, Gaussian noise and a JPEG round trip at a random
  quality. Greyscale results are replicated to three channels; about 30 % of the images are colour,
  from real colour sources first and pseudo-coloured greyscale (a colormap, recorded) for the rest.
- every file's **sha256** is checked against all earlier ones; a collision re-draws the noise with
  another sub-seed and is recorded. Given ``(jobs, images_per_job, size, seed)`` and the same
  installed packages, two runs write byte-identical files.

Layout::

    OUT/dataset.json                 summary: parameters, colour share, modalities, sources
    OUT/job-00000/img-00000.ppm      binary P6, maxval 255, exactly 15 + size*size*3 bytes for size 256
    OUT/job-00000/manifest.csv       one row per image: source, frame, every parameter, sha256

>>> from medfeat.dataset import make_dataset
>>> info = make_dataset("data", jobs=2, images_per_job=5)   # doctest: +SKIP
>>> info.n_images, round(info.colour_fraction, 2)             # doctest: +SKIP
(10, 0.3)
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from medfeat.errors import InputError

__all__ = ["DatasetInfo", "SourceInfo", "make_dataset", "list_sources", "MANIFEST_FIELDS"]

FORMAT_VERSION = 1

# Where real images ship: (distribution name for pip, importable top-level package, folder inside it).
# pydicom-data's import name is the generic ``data_store``; the distribution name is what we record.
PACKAGE_FOLDERS: tuple[tuple[str, str, str], ...] = (
    ("pydicom", "pydicom", "data/test_files"),
    ("pydicom-data", "data_store", "data"),
)

# Image modalities only: RTSTRUCT/RTDOSE/RTPLAN/SEG/SR/ECG/KO/PR carry no picture of a patient, and
# pydicom's OT secondary captures are colour bars and test patterns rather than medical images.
IMAGE_MODALITIES = frozenset({"CT", "MR", "US", "CR", "DX", "XA", "RF", "MG", "NM", "PT", "IO", "PX",
                              "OP", "XC", "ES", "GM", "SM", "IVUS", "OCT", "BI", "DG", "TG"})
MIN_SIDE = 64            # 16x16 DICOMDIR thumbnails and 3x3 odd-size tests are not images worth sampling
MAX_FRAMES = 16          # evenly spaced frames per multi-frame source: variety without decoding 120-frame cines
COLOUR_TARGET = 0.30     # share of colour slots; kept >= 0.2 by a low-discrepancy allocation, see _colour_slot
PSEUDO_SHARE = 0.20      # of the colour slots, this share pseudo-colours a greyscale frame (real colour first)
COLOUR_MIN_PIXELS = 0.002  # a colour image needs >= 0.2 % pixels whose channels differ by > COLOUR_SPREAD
COLOUR_SPREAD = 24
COLOUR_REDRAWS = 4       # crops of a colour source redrawn before falling back to pseudo-colour
MAX_COLLISION_RETRIES = 16

# Image Type values of derived parametric maps, which are windowed by percentiles, not CT presets.
PARAMETRIC_MAPS = frozenset({"PERFUSION", "RCBF", "RCBV", "MTT", "TTP", "TMAX", "IODINE", "EFFECTIVE_Z"})

# CT display windows (centre, width) in HU, as radiologists use them.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "soft_tissue": (50.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
}

# Colormaps as piecewise-linear RGB anchors (position 0..1, r, g, b); small tables instead of a
# matplotlib dependency. "hot" and "pet" are nuclear-medicine classics, "jet" the old default.
COLORMAPS: dict[str, tuple[tuple[float, int, int, int], ...]] = {
    "hot": ((0.0, 0, 0, 0), (0.375, 255, 0, 0), (0.75, 255, 255, 0), (1.0, 255, 255, 255)),
    "jet": ((0.0, 0, 0, 128), (0.125, 0, 0, 255), (0.375, 0, 255, 255), (0.625, 255, 255, 0),
            (0.875, 255, 0, 0), (1.0, 128, 0, 0)),
    "pet": ((0.0, 0, 0, 0), (0.25, 0, 0, 160), (0.45, 120, 0, 180), (0.65, 255, 60, 0),
            (0.85, 255, 200, 0), (1.0, 255, 255, 255)),
    "viridis": ((0.0, 68, 1, 84), (0.25, 59, 82, 139), (0.5, 33, 145, 140), (0.75, 94, 201, 98),
                (1.0, 253, 231, 37)),
    "copper": ((0.0, 0, 0, 0), (0.8, 255, 159, 101), (1.0, 255, 199, 127)),
}

MANIFEST_FIELDS = (
    "file", "sha256", "bytes", "width", "height", "modality",
    "source_package", "source_version", "source_path", "source_photometric", "frame", "source_frames",
    "colour", "colour_mode", "colour_pixels", "colormap",
    "window", "window_low", "window_high", "gamma",
    "flip", "rotation_deg", "resample", "crop_cx", "crop_cy", "crop_side", "scale", "shift_x", "shift_y",
    "noise_sigma", "noise_offset", "noise_seed", "jpeg_quality", "jpeg_subsampling",
    "param_redraws", "collision_retries",
)


# --------------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class SourceInfo:
    """One usable source image: a DICOM file inside an installed package.

    Attributes
    ----------
    package, version : str
        Distribution name (as for ``pip install``) and its installed version.
    path : str
        Path of the file inside site-packages, e.g. ``pydicom/data/test_files/CT_small.dcm``.
    modality, photometric : str
        DICOM Modality and PhotometricInterpretation.
    colour : bool
        True for RGB / YBR / palette-colour sources.
    n_frames : int
        Frames in the file; ``frames`` are the ones used (at most ``MAX_FRAMES``, duplicates dropped).
    frames : tuple of int
    """

    package: str
    version: str
    path: str
    modality: str
    photometric: str
    colour: bool
    n_frames: int
    frames: tuple[int, ...]


@dataclass
class _Source:
    """A decoded source kept in memory: frames as float32 (greyscale, rescaled) or uint8 RGB."""

    info: SourceInfo
    arrays: list[np.ndarray]
    hu: bool              # CT in Hounsfield units: window with CT presets
    monochrome1: bool     # high values display dark: invert after windowing


@dataclass
class _Catalogue:
    sources: list[_Source]
    skipped: list[dict]


_CATALOGUE: dict[tuple, _Catalogue] = {}


def _package_roots() -> list[tuple[str, str, Path, str]]:
    """``(distribution, version, site-packages dir, folder)`` for each installed source package."""
    roots = []
    for dist, module, sub in PACKAGE_FOLDERS:
        try:
            spec = importlib.util.find_spec(module)   # locates without importing (no side effects)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        pkg_dir = Path(next(iter(spec.submodule_search_locations)))
        folder = pkg_dir / sub
        if not folder.is_dir():
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue  # a same-named module that is not the wheel we mean
        roots.append((dist, version, pkg_dir.parent, str(folder)))
    return roots


def _rank(header) -> tuple:
    """Sort key among the encodings of one SOP instance: exact and cheap to decode first, then the
    largest matrix, then the fewest frames (pydicom's ``*_2frame`` files are constructed copies)."""
    ts = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
    compressed = bool(ts is not None and getattr(ts, "is_compressed", False))
    lossy = str(header.get("LossyImageCompression", "00")) == "01" or (
        ts is not None and str(ts) in {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                                        "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.81"})
    frames = int(header.get("NumberOfFrames", 1) or 1)
    return (lossy, compressed, -int(header.Rows) * int(header.Columns), frames)


def _richness(header) -> tuple:
    """Sort key across pictures: multi-frame and large ones first, so that when two files hold the
    same picture (a cine and its 30-frame excerpt, a full and a downsized copy) the richer is kept,
    and a never-lossy copy before one that went through lossy compression (NEMA's *_UNCI files),
    then an uncompressed copy (fast to decode) before a compressed one."""
    return (-int(header.get("NumberOfFrames", 1) or 1), -int(header.Rows) * int(header.Columns),
            *_rank(header)[:2])


def _decode(path: Path, frames: list[int]) -> tuple[object, list[np.ndarray]]:
    """Decode the chosen frames of a DICOM file (pydicom >= 3 decodes one frame at a time)."""
    import pydicom

    ds = pydicom.dcmread(path)
    try:
        from pydicom.pixels import pixel_array
    except ImportError:  # pydicom 2.x: whole-file decode
        arr = ds.pixel_array
        n = int(ds.get("NumberOfFrames", 1) or 1)
        return ds, [arr[i] if n > 1 else arr for i in frames]
    return ds, [pixel_array(ds, index=i) for i in frames]


def _to_canonical(ds, arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """Colour frames to uint8 RGB, greyscale frames to float32 with the modality rescale applied."""
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if pi == "PALETTE COLOR":
        try:
            from pydicom.pixels import apply_color_lut
        except ImportError:  # pydicom 2.x
            from pydicom.pixel_data_handlers.util import apply_color_lut
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = np.asarray(arr)
        if arr.dtype != np.uint8:
            # 16-bit palettes and >8-bit RGB: scale to 8 bits by the actual range of the type
            top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else float(arr.max() or 1)
            if arr.dtype.kind in "ui" and arr.max() <= 255:
                top = 255.0
            arr = np.clip(arr.astype(np.float64) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr), True
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    if "RescaleSlope" not in ds:
        # enhanced multi-frame objects keep the rescale in the shared functional groups
        try:
            pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
            slope, intercept = float(pvt.RescaleSlope), float(pvt.RescaleIntercept)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            pass
    out = arr.astype(np.float32)
    if slope != 1.0 or intercept != 0.0:
        out = out * np.float32(slope) + np.float32(intercept)
    return np.ascontiguousarray(out), False


def _fingerprint(arr: np.ndarray) -> np.ndarray:
    """A 32x32 contrast-normalised greyscale thumbnail: equal for re-encodings of the same picture."""
    g = arr.mean(axis=2) if arr.ndim == 3 else arr
    g = g.astype(np.float32)
    lo, hi = (float(v) for v in np.percentile(g, [1.0, 99.0]))
    g = np.clip((g - np.float32(lo)) / np.float32(max(hi - lo, 1e-6)), 0, 1).astype(np.float32)
    return np.asarray(Image.fromarray(g).resize((32, 32), Image.Resampling.BOX), dtype=np.float32)


def _same_picture(a: tuple[float, np.ndarray], b: tuple[float, np.ndarray], tol: float) -> bool:
    """Same aspect ratio and thumbnails closer than ``tol`` (mean absolute difference, 0..1)."""
    return abs(a[0] - b[0]) < 0.05 * max(a[0], b[0]) and float(np.abs(a[1] - b[1]).mean()) < tol


# Re-encodings of one picture (UNCR/UNCI/J2KR, a downsized copy) differ by < 0.03 in thumbnails;
# consecutive cine frames of one source may differ by little more, so within a source only
# (near-)identical frames are dropped.
SAME_SOURCE_TOL, OTHER_SOURCE_TOL = 0.004, 0.03


def _build_catalogue() -> _Catalogue:
    """Find, deduplicate and decode every usable source image in the installed packages."""
    # pydicom warns about every oddity of its deliberately odd test files; none matters here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _build_catalogue_quietly()


def _build_catalogue_quietly() -> _Catalogue:
    import pydicom
    from pydicom.errors import InvalidDicomError

    candidates: dict[str, list[tuple]] = {}
    for dist, version, site, folder in _package_roots():
        for p in sorted(Path(folder).rglob("*")):
            if not p.is_file() or p.suffix.lower() in {".txt", ".json", ".dump", ".icc", ".gz", ".py"}:
                continue
            try:
                hdr = pydicom.dcmread(p, stop_before_pixels=True)
                modality = str(hdr.get("Modality", "") or "")
                if (modality not in IMAGE_MODALITIES or "Rows" not in hdr or "Columns" not in hdr
                        or min(int(hdr.Rows), int(hdr.Columns)) < MIN_SIDE):
                    continue
                rank = _rank(hdr)
            except InvalidDicomError:
                continue  # README, JSON, ICC profiles, dumps ...
            except Exception:  # noqa: BLE001 - pydicom's deliberately malformed files raise anything
                continue
            rel = p.relative_to(site).as_posix()
            # one image re-encoded many ways shares its SOP Instance UID: keep the group together
            key = str(hdr.get("SOPInstanceUID", "") or rel)
            candidates.setdefault(key, []).append((rank, rel, p, dist, version, hdr))

    # richest groups first, so that content duplicates keep the larger / multi-frame version
    groups = sorted(candidates.values(),
                    key=lambda g: (min(_richness(c[5]) for c in g), min(c[1] for c in g)))
    sources: list[_Source] = []
    prints: list[tuple[float, np.ndarray]] = []
    skipped: list[dict] = []
    for group in groups:
        group.sort(key=lambda c: (c[0], c[1]))
        failures = []
        for _, rel, p, dist, version, hdr in group:
            n = int(hdr.get("NumberOfFrames", 1) or 1)
            idx = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, MAX_FRAMES))})
            try:
                ds, raw = _decode(p, idx)
                frames = [_to_canonical(ds, a) for a in raw]
            except Exception as exc:  # noqa: BLE001 - missing decoder plugins raise RuntimeError etc.
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
                failures.append({"package": dist, "path": rel, "reason": reason})
                continue
            arrays, used, colour, own = [], [], frames[0][1], []
            for i, (a, _c) in zip(idx, frames):
                if a.ndim not in (2, 3) or min(a.shape[:2]) < MIN_SIDE or not np.isfinite(a).all():
                    continue
                fp = (a.shape[1] / a.shape[0], _fingerprint(a))
                if (float(np.ptp(fp[1])) < 0.05 or any(_same_picture(fp, q, OTHER_SOURCE_TOL) for q in prints)
                        or any(_same_picture(fp, q, SAME_SOURCE_TOL) for q in own)):
                    continue  # blank frame, or the same picture as a source/frame already kept
                own.append(fp)
                arrays.append(a)
                used.append(i)
            prints.extend(own)
            if arrays:
                pi = str(hdr.get("PhotometricInterpretation", ""))
                grey = [a for a in arrays if a.ndim == 2]
                # CT presets need Hounsfield units: air present, and not a derived parametric map
                # (perfusion rCBF/MTT maps are Modality CT but hold other quantities)
                image_type = {str(t).strip().upper() for t in (hdr.get("ImageType") or [])}
                hu = (hdr.Modality == "CT" and bool(grey) and float(min(a.min() for a in grey)) < -500
                      and not image_type & PARAMETRIC_MAPS)
                info = SourceInfo(dist, version, rel, str(hdr.Modality), pi, colour, n, tuple(used))
                sources.append(_Source(info, arrays, hu, pi == "MONOCHROME1"))
            failures = []
            break  # one decodable encoding per group is enough
        skipped.extend(failures)  # no encoding of this picture decodes here (a decoder is missing)
    sources.sort(key=lambda s: (s.info.modality, s.info.package, s.info.path))
    return _Catalogue(sources, skipped)


def _catalogue() -> _Catalogue:
    """The decoded sources, cached per process (decoding is the slow part; the files never change)."""
    key = tuple((d, v, f) for d, v, _s, f in _package_roots())
    if key not in _CATALOGUE:
        _CATALOGUE[key] = _build_catalogue()
    return _CATALOGUE[key]


def list_sources() -> list[SourceInfo]:
    """The source images :func:`make_dataset` can use in this environment.

    Returns
    -------
    list of SourceInfo
        Sorted by modality, package and path; empty only if pydicom itself is missing.
    """
    return [s.info for s in _catalogue().sources]


# --------------------------------------------------------------------------------------------------
# Rendering


@dataclass
class _Prepared:
    """A source frame reduced for one output size, with what windowing needs precomputed."""

    source: _Source
    frame: int
    image: Image.Image        # "F" (greyscale) or "RGB"
    factor: int               # reduction factor from the source pixels
    quantiles: np.ndarray | None  # 0.0 .. 100.0 % in 0.1 % steps (greyscale only)
    background: float         # greyscale value that displays black (fills rotated-in corners)


def _prepare(sources: list[_Source], size: int) -> list[list[_Prepared]]:
    """Box-reduce every frame so that bilinear resampling to ``size`` does not alias badly."""
    out = []
    grid = np.linspace(0.0, 100.0, 1001)
    for s in sources:
        frames = []
        for i, a in zip(s.info.frames, s.arrays):
            factor = max(1, min(a.shape[:2]) // size)
            if a.ndim == 2:
                img = Image.fromarray(a)
                img = img.reduce(factor) if factor > 1 else img
                small = np.asarray(img, dtype=np.float32)
                q = np.percentile(small, grid).astype(np.float64)
                bg = float(q[-1] if s.monochrome1 else q[0])
                frames.append(_Prepared(s, i, img, factor, q, bg))
            else:
                img = Image.fromarray(a)
                img = img.reduce(factor) if factor > 1 else img
                frames.append(_Prepared(s, i, img, factor, None, 0.0))
        out.append(frames)
    return out


def _colour_slot(g: int, offset: float) -> bool:
    """Whether global image number ``g`` is a colour slot.

    A golden-ratio (Weyl) sequence with a seed-dependent ``offset`` in [0, 1) gives
    ``COLOUR_TARGET * n`` colour slots, +- 1, in any run of ``n`` consecutive images, so even a
    10-image dataset holds >= 2 colour images, yet each slot depends on ``(seed, g)`` alone.
    """
    return ((g + 1) * 0.6180339887498949 + offset) % 1.0 < COLOUR_TARGET


def _one_image(seed: int, j: int, k: int, want_colour: bool, grey_pool: list, colour_pool: list,
               size: int, bank: np.ndarray) -> tuple[dict, tuple[np.ndarray, bool, float], bool, int]:
    """Draw and render image ``k`` of job ``j``: ``(params, _render's result, pseudo, redraws)``.

    Colour slots take a real colour source first (``1 - PSEUDO_SHARE`` of them); a crop of a colour
    ultrasound can miss its Doppler box or colour bar, so it is re-framed with sub-seeds up to
    ``COLOUR_REDRAWS`` times and then falls back to a pseudo-coloured greyscale frame.
    """
    rng = np.random.default_rng([seed, j, k])
    pseudo = want_colour and (not colour_pool or bool(rng.random() < PSEUDO_SHARE))
    real_colour = want_colour and not pseudo
    params = _draw_params(rng, colour_pool if real_colour else grey_pool, size)
    out = _render(params, size, pseudo, _noise(bank, params["noise_offset"], size))
    redraws = 0
    if real_colour:
        while out[2] < COLOUR_MIN_PIXELS and redraws < COLOUR_REDRAWS:
            redraws += 1
            params = _draw_params(np.random.default_rng([seed, j, k, 1000 + redraws]), colour_pool, size)
            out = _render(params, size, False, _noise(bank, params["noise_offset"], size))
        if out[2] < COLOUR_MIN_PIXELS:
            redraws += 1
            pseudo = True
            params = _draw_params(np.random.default_rng([seed, j, k, 1000 + redraws]), grey_pool, size)
            out = _render(params, size, True, _noise(bank, params["noise_offset"], size))
    return params, out, pseudo, redraws


def _draw_params(rng: np.random.Generator, pool: list[list[_Prepared]], size: int) -> dict:
    """Every random choice for one image, drawn in a fixed order from ``rng``.

    The source is chosen modality-balanced (a modality, then a source of it, then a frame): a
    modality's weight is the square root of its number of sources, so CT with its many sample files
    does not crowd out CR or NM, nor does a modality with a single picture repeat it endlessly.
    """
    mods = sorted({f[0].source.info.modality for f in pool})
    weight = np.sqrt([sum(f[0].source.info.modality == m for f in pool) for m in mods])
    cum = np.cumsum(weight) / weight.sum()
    mod = mods[min(int(np.searchsorted(cum, rng.random(), side="right")), len(mods) - 1)]
    choices = [f for f in pool if f[0].source.info.modality == mod]
    frames = choices[int(rng.integers(len(choices)))]
    prep = frames[int(rng.integers(len(frames)))]
    w, h = prep.image.size
    side = float(rng.uniform(0.55, 1.0)) * min(w, h)
    # shift: anywhere the crop fits, plus up to 8 % of the crop outside (a real off-centre framing)
    sx, sy = float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))
    cx = w / 2 + sx * (max(0.0, (w - side) / 2) + 0.08 * side)
    cy = h / 2 + sy * (max(0.0, (h - side) / 2) + 0.08 * side)
    p = {
        "prep": prep,
        "flip": bool(rng.random() < 0.5),
        "rotation_deg": float(rng.uniform(-20.0, 20.0)),
        "side": side, "cx": cx, "cy": cy,
        "gamma": float(math.exp(rng.uniform(-0.4, 0.4))),
        "noise_sigma": float(rng.uniform(0.5, 6.0)),
        "noise_offset": int(rng.integers(0, (NOISE_BANK_IMAGES - 1) * size * size)),
        "jpeg_quality": int(rng.integers(40, 96)),
        "jpeg_subsampling": int(rng.choice([0, 2])),  # Pillow: 0 = 4:4:4, 2 = 4:2:0 (colour only)
        "colormap": sorted(COLORMAPS)[int(rng.integers(len(COLORMAPS)))],
    }
    kind = sorted(CT_WINDOWS)[int(rng.integers(len(CT_WINDOWS)))]
    jitter_c, jitter_w = float(rng.uniform(-0.1, 0.1)), float(rng.uniform(0.85, 1.15))
    q_lo, q_hi = float(rng.uniform(0.2, 3.0)), float(rng.uniform(97.0, 99.9))
    if prep.quantiles is None:
        p.update(window="none", window_low=0.0, window_high=255.0)
    elif prep.source.hu:
        c, wd = CT_WINDOWS[kind]
        c, wd = c + jitter_c * wd, wd * jitter_w
        p.update(window=f"ct_{kind}", window_low=c - wd / 2, window_high=c + wd / 2)
    else:
        lo = float(np.interp(q_lo, np.linspace(0, 100, 1001), prep.quantiles))
        hi = float(np.interp(q_hi, np.linspace(0, 100, 1001), prep.quantiles))
        if hi <= lo:
            hi = lo + 1.0
        p.update(window=f"percentile_{q_lo:.2f}_{q_hi:.2f}", window_low=lo, window_high=hi)
    return p


def _colormap_lut(name: str) -> np.ndarray:
    anchors = np.array(COLORMAPS[name], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(x, anchors[:, 0], anchors[:, k]) for k in (1, 2, 3)], axis=1)
    return np.clip(lut + 0.5, 0, 255).astype(np.uint8)


_LUTS = {name: _colormap_lut(name) for name in COLORMAPS}


NOISE_BANK_IMAGES = 8  # the noise bank holds this many images' worth of standard normal samples


def _noise_bank(seed: int, size: int) -> np.ndarray:
    """Standard normal float32 samples shared by all images of one call.

    Each image reads ``size*size`` consecutive samples at its own random offset: drawing 65,536
    normals per image costs more than everything else but the resampling, and a window into a bank
    is as good a noise field for texture features.
    """
    return np.random.default_rng([seed, 0x401_5E]).standard_normal(NOISE_BANK_IMAGES * size * size,
                                                                    dtype=np.float32)


def _noise(bank: np.ndarray, offset: int, size: int) -> np.ndarray:
    return bank[offset:offset + size * size].reshape(size, size)


def _supersample(p: dict, size: int) -> bool:
    """Resample a colour crop by 2x2-supersampled nearest neighbour (fast) rather than bilinear:
    only where it is not magnified, since magnified nearest-neighbour pixels would show as blocks."""
    return p["prep"].quantiles is None and p["side"] / size >= 0.75


def _render(p: dict, size: int, pseudo: bool, noise: np.ndarray) -> tuple[np.ndarray, bool, float]:
    """Render one image from drawn parameters and a unit-variance noise field.

    Returns
    -------
    rgb : ndarray
        ``(size, size, 3)`` uint8.
    colour, strong : bool, float
        Channels not all equal; share of pixels whose channels differ by more than
        ``COLOUR_SPREAD``. Greyscale renders are JPEG-coded in L mode, so they are exactly grey and
        skip the measurement.
    """
    prep: _Prepared = p["prep"]
    s = p["side"] / size
    th = math.radians(p["rotation_deg"])
    f = -1.0 if p["flip"] else 1.0
    # output pixel (u, v) -> source (x, y): one affine does crop, shift, scale, rotation and flip
    a, b = s * math.cos(th) * f, -s * math.sin(th)
    d, e = s * math.sin(th) * f, s * math.cos(th)
    half = size / 2
    c = p["cx"] - a * half - b * half
    g = p["cy"] - d * half - e * half
    gamma_lut = 255.0 * (np.arange(256) / 255.0) ** p["gamma"]
    z = np.multiply(noise, np.float32(p["noise_sigma"]))
    if prep.quantiles is not None:
        img = prep.image.transform((size, size), Image.Transform.AFFINE, (a, b, c, d, e, g),
                                   resample=Image.Resampling.BILINEAR, fillcolor=prep.background)
        x = np.array(img, dtype=np.float32)
        lo, hi = p["window_low"], p["window_high"]
        k = 255.0 / (hi - lo)
        # window (and, for MONOCHROME1, inversion) as one multiply-add: x -> k' x + b', rounded
        kk, bb = (-k, 255.0 + lo * k + 0.5) if prep.source.monochrome1 else (k, 0.5 - lo * k)
        x *= np.float32(kk)
        x += np.float32(bb)
        np.clip(x, 0, 255, out=x)
        z += gamma_lut.astype(np.float32).take(x.astype(np.uint8))
        z += np.float32(0.5)
        np.clip(z, 0, 255, out=z)
        z8 = z.astype(np.uint8)
        if pseudo:
            im = Image.fromarray(_LUTS[p["colormap"]][z8])
            opts = {"subsampling": p["jpeg_subsampling"]}
        else:
            im = Image.fromarray(z8)  # JPEG in L keeps R = G = B exactly after replication
            opts = {}
    else:
        if _supersample(p, size):
            # Pillow's bilinear affine on RGB costs 1.4 ms at 256x256, nearest at twice the size plus
            # a 2x2 box average 0.6 ms, and it anti-aliases as well when the crop is minified
            img = prep.image.transform((2 * size, 2 * size), Image.Transform.AFFINE,
                                       (a / 2, b / 2, c, d / 2, e / 2, g),
                                       resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0)).reduce(2)
        else:
            img = prep.image.transform((size, size), Image.Transform.AFFINE, (a, b, c, d, e, g),
                                       resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
        img = img.point(np.clip(gamma_lut + 0.5, 0, 255).astype(np.uint8).tolist() * 3)  # C-speed LUT
        x = np.asarray(img).astype(np.int16)
        x += np.rint(z).astype(np.int16)[:, :, None]  # luminance noise, as speckle and electronic noise are
        np.clip(x, 0, 255, out=x)
        im = Image.fromarray(x.astype(np.uint8))
        opts = {"subsampling": p["jpeg_subsampling"]}
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=p["jpeg_quality"], **opts)
    buf.seek(0)
    with Image.open(buf) as dec:
        rgb = np.asarray(dec.convert("RGB"))
    if im.mode == "L":
        return rgb, False, 0.0
    return (rgb, *_colour_stats(rgb))


def _colour_stats(rgb: np.ndarray) -> tuple[bool, float]:
    """``(channels not all equal, share of pixels whose channels differ by > COLOUR_SPREAD)``."""
    r, g, b = (rgb[:, :, i].astype(np.int16) for i in range(3))
    d1, d2 = r - g, g - b
    if not (d1.any() or d2.any()):
        return False, 0.0
    np.abs(d1, out=d1)
    np.abs(d2, out=d2)
    d3 = np.abs(r - b)
    strong = (d1 > COLOUR_SPREAD) | (d2 > COLOUR_SPREAD) | (d3 > COLOUR_SPREAD)
    return True, float(np.count_nonzero(strong)) / strong.size


def _ppm_bytes(rgb: np.ndarray) -> bytes:
    """Binary P6, maxval 255. Built in memory (not via medfeat.io.netpbm.write_netpbm) because the
    exact bytes are hashed and checked for collisions before anything is written."""
    h, w = rgb.shape[:2]
    return b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# --------------------------------------------------------------------------------------------------
# The dataset


@dataclass
class DatasetInfo:
    """What :func:`make_dataset` wrote.

    Attributes
    ----------
    out_dir : Path
    jobs, images_per_job, size, seed : int
        The parameters.
    job_dirs, manifests : list of Path
        ``out_dir/job-NNNNN`` and their ``manifest.csv``.
    n_images, n_colour, n_pseudo_colour, n_collisions : int
        Images written, colour images among them (channels not all equal), colour images made by a
        colormap from greyscale, sha256 collisions resolved by re-drawing noise.
    colour_fraction : float
        ``n_colour / n_images``.
    modalities : dict
        Images per source modality.
    sources : list of str
        ``package:path`` of every source used at least once.
    summary : Path
        ``out_dir/dataset.json``.
    elapsed_s : float
        Wall time of the call, including the one-off discovery and decoding of the sources (about
        2 s) on a process's first call; not written into the dataset, which must be reproducible.
    skipped_sources : list of dict
        Source images that could not be decoded here (``package``, ``path``, ``reason``).
    """

    out_dir: Path
    jobs: int
    images_per_job: int
    size: int
    seed: int
    job_dirs: list[Path]
    manifests: list[Path]
    n_images: int
    n_colour: int
    n_pseudo_colour: int
    n_collisions: int
    colour_fraction: float
    modalities: dict[str, int]
    sources: list[str]
    summary: Path
    elapsed_s: float = 0.0
    skipped_sources: list[dict] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every image file, in job then image order."""
        return [d / f"img-{i:05d}.ppm" for d in self.job_dirs for i in range(self.images_per_job)]

    @property
    def images_per_s(self) -> float:
        """Throughput of the call, ``n_images / elapsed_s``."""
        return self.n_images / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def _check_out_dir(out: Path) -> None:
    """Refuse to scribble into a folder that holds anything but an earlier dataset of ours."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    foreign = [e.name for e in out.iterdir() if not (e.name == "dataset.json" or
                                                      (e.is_dir() and e.name.startswith("job-")))]
    if foreign:
        raise InputError(out, f"not empty and not a medfeat dataset (found {sorted(foreign)[:3]}); "
                              f"choose an empty or new folder")


def make_dataset(out_dir: str | os.PathLike, jobs: int, images_per_job: int, size: int = 256,
                 seed: int = 0) -> DatasetInfo:
    """Write ``jobs x images_per_job`` distinct RGB PPM images derived from real medical images.

    Parameters
    ----------
    out_dir : path
        Folder to write; created if missing. It may hold an earlier dataset (its ``job-*`` folders and
        ``dataset.json``), which is replaced; any other content is refused.
    jobs, images_per_job : int
        ``out_dir/job-00000 ...`` folders of ``img-00000.ppm ...`` files, each with a ``manifest.csv``.
    size : int, default 256
        Width and height; files are binary P6 with maxval 255 (``15 + size*size*3`` bytes for 256).
    seed : int, default 0
        Non-negative. Image ``k`` of job ``j`` draws everything from ``default_rng([seed, j, k])``.

    Returns
    -------
    DatasetInfo

    Raises
    ------
    InputError
        Bad parameters, a foreign non-empty ``out_dir``, or no decodable source at all.

    Notes
    -----
    Output is byte-identical for the same parameters and the same installed packages (the sources
    found, Pillow's libjpeg and numpy's generators all take part). Images are generated in order in
    one process because every sha256 is checked against all earlier ones.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    for name, v, low in (("jobs", jobs, 1), ("images_per_job", images_per_job, 1), ("size", size, 8),
                         ("seed", seed, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
            raise InputError(None, f"{name} must be an integer >= {low}, got {v!r}")
    jobs, images_per_job, size, seed = int(jobs), int(images_per_job), int(size), int(seed)
    _check_out_dir(out)

    cat = _catalogue()
    if not cat.sources:
        raise InputError(None, "no decodable source images found (is pydicom installed?)")
    prepared = _prepare(cat.sources, size)
    grey_pool = [f for f in prepared if not f[0].source.info.colour]
    colour_pool = [f for f in prepared if f[0].source.info.colour]
    if not grey_pool:  # a colour-only environment: pseudo-colour would have nothing to work on
        grey_pool = colour_pool

    out.mkdir(parents=True, exist_ok=True)
    stale = out / "dataset.json"
    if stale.exists():
        stale.unlink()  # written last: its absence marks an incomplete dataset
    bank = _noise_bank(seed, size)
    slot_offset = float(np.random.default_rng([seed, 0x5EED]).random())
    seen: dict[str, str] = {}
    used: dict[str, dict] = {}
    modalities: dict[str, int] = {}
    job_dirs, manifests = [], []
    n_colour = n_pseudo = n_collisions = 0

    for j in range(jobs):
        jdir = out / f"job-{j:05d}"
        jdir.mkdir(exist_ok=True)
        for old in jdir.glob("img-*.ppm"):  # an earlier, larger dataset must not leave extra images
            num = old.stem[4:]
            if not num.isdigit() or int(num) >= images_per_job:
                old.unlink()
        rows = []
        for k in range(images_per_job):
            g = j * images_per_job + k
            params, (rgb, colour, strong), pseudo, redraws = _one_image(seed, j, k, _colour_slot(g, slot_offset),
                                                      grey_pool, colour_pool, size, bank)
            data = _ppm_bytes(rgb)
            digest = hashlib.sha256(data).hexdigest()
            retries = 0
            while digest in seen:
                # all but impossible with continuous parameters, but distinct files are a hard
                # requirement: move the noise window (sub-seeded, so still deterministic)
                retries += 1
                if retries > MAX_COLLISION_RETRIES:
                    raise RuntimeError(f"could not make image {g} distinct from {seen[digest]}")
                sub = np.random.default_rng([seed, j, k, retries])
                params["noise_offset"] = int(sub.integers(0, (NOISE_BANK_IMAGES - 1) * size * size))
                params["noise_sigma"] = max(params["noise_sigma"], 1.0)
                rgb, colour, strong = _render(params, size, pseudo,
                                              _noise(bank, params["noise_offset"], size))
                data = _ppm_bytes(rgb)
                digest = hashlib.sha256(data).hexdigest()
            n_collisions += retries > 0
            name = f"img-{k:05d}.ppm"
            seen[digest] = f"{jdir.name}/{name}"
            with open(jdir / name, "wb") as fh:
                fh.write(data)

            prep: _Prepared = params["prep"]
            info = prep.source.info
            mode = ("pseudo" if pseudo else "source") if colour else "grey"
            n_colour += colour
            n_pseudo += mode == "pseudo"
            modalities[info.modality] = modalities.get(info.modality, 0) + 1
            u = used.setdefault(info.path, {"package": info.package, "version": info.version,
                                            "path": info.path, "modality": info.modality,
                                            "photometric": info.photometric, "colour": info.colour,
                                            "frames_available": info.frames, "images": 0})
            u["images"] += 1
            fct = prep.factor
            w, h = prep.image.size
            rows.append({
                "file": name, "sha256": digest, "bytes": len(data), "width": size, "height": size,
                "modality": info.modality, "source_package": info.package, "source_version": info.version,
                "source_path": info.path, "source_photometric": info.photometric, "frame": prep.frame,
                "source_frames": info.n_frames, "colour": int(colour), "colour_mode": mode,
                "colour_pixels": _fmt(strong),
                "colormap": params["colormap"] if mode == "pseudo" else "",
                "window": params["window"], "window_low": _fmt(params["window_low"]),
                "window_high": _fmt(params["window_high"]), "gamma": _fmt(params["gamma"]),
                "flip": int(params["flip"]), "rotation_deg": _fmt(params["rotation_deg"]),
                "resample": "nearest_2x_box" if _supersample(params, size) else "bilinear",
                # crop in the source's own pixels, although sampling ran on the box-reduced frame
                "crop_cx": _fmt(params["cx"] * fct), "crop_cy": _fmt(params["cy"] * fct),
                "crop_side": _fmt(params["side"] * fct), "scale": _fmt(size / (params["side"] * fct)),
                "shift_x": _fmt(params["cx"] / w - 0.5), "shift_y": _fmt(params["cy"] / h - 0.5),
                "noise_sigma": _fmt(params["noise_sigma"]), "noise_offset": params["noise_offset"],
                "noise_seed": retries,
                "jpeg_quality": params["jpeg_quality"],
                "jpeg_subsampling": ("4:4:4" if params["jpeg_subsampling"] == 0 else "4:2:0")
                if mode != "grey" else "",
                "param_redraws": redraws, "collision_retries": retries,
            })
        manifest = jdir / "manifest.csv"
        with open(manifest, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
            wr.writeheader()
            wr.writerows(rows)
        job_dirs.append(jdir)
        manifests.append(manifest)

    # folders of an earlier dataset with more jobs would be read as part of this one
    for extra in sorted(out.glob("job-*")):
        if extra.is_dir() and extra not in job_dirs:
            for f in extra.iterdir():
                if f.is_file() and (f.suffix == ".ppm" or f.name == "manifest.csv"):
                    f.unlink()
            try:
                extra.rmdir()
            except OSError:
                pass

    n = jobs * images_per_job
    from medfeat import __version__

    summary = {
        "generator": "medfeat.dataset.make_dataset", "format_version": FORMAT_VERSION,
        "medfeat_version": __version__,
        "jobs": jobs, "images_per_job": images_per_job, "size": size, "seed": seed,
        "n_images": n, "file_bytes": len(b"P6\n%d %d\n255\n" % (size, size)) + size * size * 3,
        "format": "binary PPM (P6), maxval 255, RGB",
        "colour_fraction": round(n_colour / n, 6), "n_colour": n_colour,
        "n_colour_source": n_colour - n_pseudo, "n_pseudo_colour": n_pseudo,
        "colour_target": COLOUR_TARGET, "collisions_resolved": n_collisions,
        "modalities": dict(sorted(modalities.items())),
        "manifests": [m.relative_to(out).as_posix() for m in manifests],
        "sources": [dict(v, frames_available=list(v["frames_available"])) for _k, v in sorted(used.items())],
        "sources_available": len(cat.sources),
        "sources_skipped": cat.skipped,
        "environment": {name: _version(name) for name in ("numpy", "pillow", "pydicom", "pydicom-data",
                                                          "pylibjpeg", "pylibjpeg-openjpeg",
                                                          "pylibjpeg-libjpeg")},
    }
    (out / "dataset.json").write_text(json.dumps(summary, indent=1) + "\n")
    return DatasetInfo(
        out_dir=out, jobs=jobs, images_per_job=images_per_job, size=size, seed=seed, job_dirs=job_dirs,
        manifests=manifests, n_images=n, n_colour=n_colour, n_pseudo_colour=n_pseudo,
        n_collisions=n_collisions, colour_fraction=n_colour / n, modalities=dict(sorted(modalities.items())),
        sources=[f"{v['package']}:{k}" for k, v in sorted(used.items())], summary=out / "dataset.json",
        elapsed_s=time.perf_counter() - t0, skipped_sources=list(cat.skipped),
    )


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
