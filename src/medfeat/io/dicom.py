"""DICOM files (single- and multi-frame) and series folders, through pydicom.

Values are rescaled with RescaleSlope/RescaleIntercept to float32 (Hounsfield units for CT); an
image without rescaling keeps its integer dtype. Slices (a folder's files, or a multi-frame file's
frames) are ordered by their position along the slice normal, the ImagePositionPatient projected on
the cross product of the ImageOrientationPatient row and column cosines, never by file name or
InstanceNumber, and the slice spacing is the median distance between consecutive positions.
Enhanced multi-frame objects keep these attributes in their functional groups, which are read too.

The origin is the first slice's ImagePositionPatient in DICOM patient coordinates (LPS), stored
reversed as ``(z, y, x)``. Voxels are not reoriented: rows are y and columns x as stored.
MONOCHROME1 images are not inverted (``meta["photometric"]`` says so).
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medfeat.errors import InputError
from medfeat.image import Image
from medfeat.io._files import check_image_size, open_regular, read_file, read_head

__all__ = ["NON_IMAGE_MODALITIES", "is_dicom", "read_dicom_file", "read_dicom_series"]

# Objects without an image of their own that a series folder may hold beside its slices.
NON_IMAGE_MODALITIES = {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SEG", "SR", "KO", "PR", "REG", "ECG"}

_PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# pip packages that bring a decoder, by transfer syntax family (for the error message)
_DECODERS = {
    "JPEG 2000": "pylibjpeg-openjpeg",
    "High-Throughput JPEG 2000": "pylibjpeg-openjpeg",
    "JPEG-LS": "pylibjpeg-libjpeg or pyjpegls",
    "JPEG": "pylibjpeg-libjpeg",
    "RLE": "pylibjpeg-rle",
}


def is_dicom(head: bytes) -> bool:
    """A DICOM Part 10 file: 128-byte preamble, then ``DICM``."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def _quiet(func):
    """Run a reader with every library warning dropped.

    pydicom warns about values that break the standard's VR rules (a UI with letters, a DS with
    too many characters, odd-length values ...), pylibjpeg/pydicom about odd encapsulation and
    numpy about overflowing casts. None of these makes the pixels unreadable: what does (truncation,
    a missing decoder, sizes) raises and becomes an InputError below; the rest must not leak to
    stderr and split ``medfeat extract``'s one line per bad file.
    """
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return func(*args, **kwargs)
    return wrapper


def is_dicom_object(path: Path, modality: str, sop_class: str) -> bool:
    """Is ``path`` a DICOM file of ``modality`` or SOP class ``sop_class`` (an RTSTRUCT, a SEG)?
    Two tags are read; a FIFO or a device is neither opened for reading nor read."""
    try:
        with open_regular(path) as fh:
            head = fh.read(132)
            if len(head) < 132 or head[128:132] != b"DICM":
                return False
            fh.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a look at two tags: the real read reports problems
                ds = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
    except MemoryError:
        raise
    except Exception:
        return False
    return str(ds.get("Modality", "")) == modality or str(ds.get("SOPClassUID", "")) == sop_class


def find_dicom_object(path: str | os.PathLike, modality: str, sop_class: str) -> Path | None:
    """The DICOM object of that kind at ``path``: the file itself, or the only DICOM file of a
    folder (a mask folder beside a series). None when ``path`` is something else."""
    p = Path(path)
    if p.is_file():
        return p if is_dicom_object(p, modality, sop_class) else None
    if p.is_dir():
        try:
            files = sorted(f for f in p.iterdir() if f.is_file())
        except OSError:
            return None
        dicom = []
        for f in files:
            try:
                head = read_head(f, 132)
            except InputError:
                continue
            if len(head) == 132 and head[128:132] == b"DICM":
                dicom.append(f)
        if len(dicom) == 1 and is_dicom_object(dicom[0], modality, sop_class):
            return dicom[0]
    return None


def _int(ds, keyword: str, default: int | None = None) -> int | None:
    try:
        value = ds.get(keyword, default)
        return default if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def _check_pixel_size(ds, path) -> None:
    """Rows x Columns x frames x samples x bits against the image size limit, before decoding."""
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    bits = _int(ds, "BitsAllocated", 16) or 16
    if "FloatPixelData" in ds:
        bits = 32
    elif "DoubleFloatPixelData" in ds:
        bits = 64
    if rows is None or cols is None or rows < 1 or cols < 1 or frames < 1 or samples < 1 or bits < 1:
        raise InputError(path, f"bad DICOM image size: Rows {ds.get('Rows')}, Columns {ds.get('Columns')}, "
                               f"NumberOfFrames {ds.get('NumberOfFrames', 1)}, SamplesPerPixel "
                               f"{ds.get('SamplesPerPixel', 1)}, BitsAllocated {ds.get('BitsAllocated')}")
    # decoded at whole bytes (1-bit data too), colour converted to RGB, rescaled to float32
    nbytes = math.prod((rows, cols, frames, max(samples, 3 if "RedPaletteColorLookupTableData" in ds else 1),
                        max(-(-bits // 8), 4 if _rescaled_hint(ds) else 1)))
    check_image_size(path, nbytes, f"{rows}x{cols}, {frames} frame(s), {samples} sample(s) of {bits} bits")


#: How much of a gzipped DICOM file's header (everything before its pixel data) is decompressed at most.
GZIP_HEADER_LIMIT = 256 << 20


def gzipped_size_limit(data: bytes, path) -> int:
    """How far a gzipped DICOM file may be decompressed: its header (read from the stream, at most
    :data:`GZIP_HEADER_LIMIT`), plus the pixel data its Rows, Columns, frames, samples and bits
    declare (checked against the image limit), plus 1 MiB for elements after the pixel data."""
    import gzip

    n = 1 << 16
    while True:  # a longer prefix each time, until the header (what precedes the pixel data) parses
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                prefix = gz.read(n)
        except (OSError, EOFError, ValueError, zlib.error) as exc:  # zlib.error: a corrupt deflate stream
            raise InputError(path, f"truncated or corrupt gzip data ({exc})") from None
        fh = io.BytesIO(prefix)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            header = fh.tell()
            if header < len(prefix) or len(prefix) < n:  # stopped at the pixel data, or the whole file
                break
        except MemoryError:
            raise
        except Exception as exc:
            if len(prefix) < n or n >= GZIP_HEADER_LIMIT:  # the whole file, or enough: it is bad
                raise InputError(path, f"gzipped DICOM file with an unreadable header "
                                       f"({type(exc).__name__}: {exc})") from None
        if n >= GZIP_HEADER_LIMIT:
            raise InputError(path, f"gzipped DICOM file whose header exceeds {GZIP_HEADER_LIMIT >> 20} MiB")
        n *= 4

    if _int(ds, "Rows") is None:  # no image: what is there is the header
        return header + (1 << 20)
    _check_pixel_size(ds, path)
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    frames, samples = _int(ds, "NumberOfFrames", 1) or 1, _int(ds, "SamplesPerPixel", 1) or 1
    bits = _int(ds, "BitsAllocated", 16) or 16
    return header + math.prod((rows, cols, frames, samples)) * -(-bits // 8) + (1 << 20)


def _rescaled_hint(ds) -> bool:
    return "RescaleSlope" in ds or "RescaleIntercept" in ds or "SharedFunctionalGroupsSequence" in ds


def _dcmread(src, path):
    try:
        return pydicom.dcmread(src)
    except MemoryError:
        raise
    except InvalidDicomError as exc:
        raise InputError(path, f"not a valid DICOM file ({exc})") from None
    except Exception as exc:  # pydicom reports truncation as EOFError, OSError, ValueError ...
        raise InputError(path, f"truncated or corrupt DICOM file ({type(exc).__name__}: {exc})") from None


def _transfer_syntax(ds):
    return getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)


def _decoder_problem(ts) -> str | None:
    """Why no installed plugin can decode transfer syntax ``ts``, or None when one can (or it is
    not compressed). Asked before decoding, so a missing decoder is not mistaken for corrupt data."""
    if ts is None:
        return None
    if not getattr(ts, "is_transfer_syntax", True):
        return f"unknown or unsupported transfer syntax {ts} (not a DICOM transfer syntax pydicom knows)"
    try:
        if not ts.is_compressed:
            return None
    except ValueError as exc:  # pragma: no cover - guarded above
        return f"unknown or unsupported transfer syntax {ts} ({exc})"
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom < 3 has no registry to ask: decode failures read as corruption
        return None
    name = f"{getattr(ts, 'name', ts)} ({ts})"
    try:
        if get_decoder(ts).is_available:
            return None
    except NotImplementedError:  # MPEG, JPEG XL, private syntaxes ...
        return f"cannot decode transfer syntax {name}: pydicom has no decoder for it"
    package = next((pkg for key, pkg in _DECODERS.items() if ts.name.startswith(key)), "a pydicom decoder plugin")
    return f"cannot decode transfer syntax {name}: a decoder is needed (install {package})"


def _pixels(ds, path) -> np.ndarray:
    """Decoded pixels as ``(frames, y, x)`` or ``(frames, y, x, 3)``, colour converted to RGB."""
    if not any(tag in ds for tag in _PIXEL_TAGS):
        modality = ds.get("Modality")
        raise InputError(path, "DICOM file has no pixel data" + (f" (Modality {modality})" if modality else ""))
    ts = _transfer_syntax(ds)
    problem = _decoder_problem(ts)
    if problem:
        raise InputError(path, problem)
    _check_pixel_size(ds, path)
    try:
        arr = ds.pixel_array  # pydicom >= 3 converts YBR_* to RGB here
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(path, f"corrupt or truncated DICOM pixel data ({type(exc).__name__}: {exc})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if frames == 1:
        arr = arr[np.newaxis]
    if photometric == "PALETTE COLOR":
        try:
            from pydicom.pixels import apply_color_lut
        except ImportError:  # pydicom < 3
            from pydicom.pixel_data_handlers.util import apply_color_lut
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as exc:
            raise InputError(path, f"bad palette colour lookup table ({type(exc).__name__}: {exc})") from None
    elif photometric.startswith("YBR") and _PYDICOM_MAJOR < 3 and not (ts and ts.is_compressed):
        # pydicom 2 leaves uncompressed YBR as stored (pydicom 3 converts it in pixel_array)
        from pydicom.pixel_data_handlers.util import convert_color_space

        arr = convert_color_space(arr, photometric, "RGB")
    if arr.ndim != 3 and not (arr.ndim == 4 and arr.shape[-1] == 3):
        raise InputError(path, f"unsupported DICOM pixel layout {arr.shape} ({photometric})")
    return arr


def _attr(ds, frame: int, sequence: str, keyword: str):
    """``keyword`` for one frame: per-frame functional group, shared group, then the top level."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    for group in (per_frame[frame] if per_frame and frame < len(per_frame) else None,
                  shared[0] if shared else None):
        if group is not None and sequence in group and len(group[sequence].value):
            item = group[sequence].value[0]
            if keyword in item and item[keyword].value not in (None, ""):
                return item[keyword].value
    value = ds.get(keyword)
    return None if value in (None, "") else value


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


def _number(value, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) else default


def _positive(value) -> float | None:
    try:
        v = abs(float(value))
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _geometry(ds, nframes: int) -> dict:
    """Per-frame rescale and position, and in-plane spacing, of one dataset."""
    transform = "PixelValueTransformationSequence"
    slopes = [_number(_attr(ds, i, transform, "RescaleSlope"), 1.0) or 1.0 for i in range(nframes)]
    intercepts = [_number(_attr(ds, i, transform, "RescaleIntercept"), 0.0) for i in range(nframes)]
    iop = _floats(_attr(ds, 0, "PlaneOrientationSequence", "ImageOrientationPatient") or (), 6)
    normal = np.cross(iop[:3], iop[3:]) if iop is not None else None
    positions = [_floats(_attr(ds, i, "PlanePositionSequence", "ImagePositionPatient") or (), 3)
                 for i in range(nframes)]
    spacing, source = None, "default 1 mm"
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _attr(ds, 0, "PixelMeasuresSequence", keyword)
        pair = _floats(value or (), 2)
        if pair is not None and np.all(pair > 0):
            spacing, source = (float(pair[0]), float(pair[1])), keyword
            break
    thickness = None
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        thickness = _positive(_attr(ds, 0, "PixelMeasuresSequence", keyword))
        if thickness:
            break
    return {"slopes": slopes, "intercepts": intercepts, "iop": iop, "normal": normal,
            "positions": positions, "pixel_spacing": spacing or (1.0, 1.0), "spacing_source": source,
            "thickness": thickness or 1.0}


def _is_rescaled(geo: dict) -> bool:
    return any(s != 1.0 for s in geo["slopes"]) or any(b != 0.0 for b in geo["intercepts"])


def _rescale(arr: np.ndarray, geo: dict) -> np.ndarray:
    """Apply per-frame slope/intercept; float32 when any is not the identity."""
    if not _is_rescaled(geo):
        return arr
    slopes, intercepts = geo["slopes"], geo["intercepts"]
    shape = (-1,) + (1,) * (arr.ndim - 1)
    return (arr.astype(np.float32) * np.asarray(slopes, np.float32).reshape(shape)
            + np.asarray(intercepts, np.float32).reshape(shape))


def _order(positions, normal) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorting permutation along the normal and the sorted projected positions (None if unknown)."""
    n = len(positions)
    if normal is None or any(p is None for p in positions):
        return np.arange(n), None
    proj = np.array([float(np.dot(normal, p)) for p in positions])
    order = np.argsort(proj, kind="stable")
    return order, proj[order]


def _meta(ds, geo: dict) -> dict:
    ts = _transfer_syntax(ds)
    return {
        "format": "dicom",
        "transfer_syntax": str(ts or ""),
        "transfer_syntax_name": getattr(ts, "name", ""),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "photometric": str(ds.get("PhotometricInterpretation", "")),
        "bits_stored": _int(ds, "BitsStored", 0) or 0,
        "rescale_slope": geo["slopes"][0],
        "rescale_intercept": geo["intercepts"][0],
        "rescale_type": str(_attr(ds, 0, "PixelValueTransformationSequence", "RescaleType") or ""),
        "orientation": None if geo["iop"] is None else [float(v) for v in geo["iop"]],
        "pixel_spacing_source": geo["spacing_source"],
    }


@_quiet
def read_dicom_file(path: str | os.PathLike, data: bytes | None = None) -> Image:
    """Read one DICOM file; a multi-frame file becomes a z stack.

    Parameters
    ----------
    path : str or path-like
        The file; named in error messages.
    data : bytes, optional
        The file's content, when the caller has already read it.

    Returns
    -------
    Image
        ``(frames, y, x)`` or ``(frames, y, x, 3)`` for colour. Frames with distinct positions are
        sorted along the slice normal and spaced by their median distance; otherwise (one frame,
        or frames without positions) the z spacing is SpacingBetweenSlices, else SliceThickness,
        else 1 mm.

    Raises
    ------
    InputError
        Not DICOM, truncated, no pixel data, or a compressed transfer syntax without a decoder.
    """
    if data is None:
        data = read_file(path)
    ds = _dcmread(io.BytesIO(data), path)
    arr = _pixels(ds, path)
    geo = _geometry(ds, arr.shape[0])
    arr = _rescale(arr, geo)
    order, proj = _order(geo["positions"], geo["normal"])
    meta = _meta(ds, geo)
    dz = geo["thickness"]
    if proj is not None and len(proj) > 1:
        if np.all(np.diff(proj) > 1e-6):
            arr, dz = arr[order], float(np.median(np.diff(proj)))
        else:  # frames share positions (time points, ...): keep the stored order
            order = np.arange(arr.shape[0])
            meta["frame_order"] = "stored (no distinct per-frame positions)"
    first = geo["positions"][order[0]]
    origin = tuple(float(v) for v in first[::-1]) if first is not None else (0.0, 0.0, 0.0)
    meta["frames"] = arr.shape[0]
    return Image(arr, spacing=(dz, *geo["pixel_spacing"]), origin=origin,
                 modality=str(ds.get("Modality", "")), source=str(path),
                 sha256=hashlib.sha256(data).hexdigest(), meta=meta)


@_quiet
def read_dicom_series(folder: str | os.PathLike) -> Image:
    """Read the DICOM image series in a folder (not recursive) as one volume.

    Files that are not DICOM, and DICOM objects without an image (RTSTRUCT, SEG, ... or no pixel
    data), are skipped.

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    Image
        ``(slices, y, x)`` sorted along the slice normal; z spacing is the median distance between
        consecutive slice positions. ``sha256`` covers the bytes of the image files in sorted file
        name order; ``meta["files"]`` lists them in slice order.

    Raises
    ------
    InputError
        No image files, several series (their SeriesInstanceUIDs are named), slices of different
        shape or orientation, slices sharing a position, or any unreadable slice.
    """
    folder = Path(folder)
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    digest, slices = hashlib.sha256(), []
    for p in files:
        try:
            if not is_dicom(read_head(p, 132)):
                continue
        except InputError:  # unreadable, or swapped for a FIFO/device since it was listed
            continue
        data = read_file(p)
        ds = _dcmread(io.BytesIO(data), p)
        if str(ds.get("Modality", "")) in NON_IMAGE_MODALITIES or not any(t in ds for t in _PIXEL_TAGS):
            continue
        digest.update(data)
        slices.append((p, ds))
    if not slices:
        raise InputError(folder, "folder holds no DICOM image files")
    series = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in slices})
    if len(series) > 1:
        raise InputError(folder, f"folder holds {len(series)} DICOM image series ({', '.join(series)}); "
                                 "give one series folder")
    if len(slices) == 1:  # one (possibly multi-frame) file
        img = read_dicom_file(slices[0][0])
        img.source, img.meta["files"] = str(folder), [slices[0][0].name]
        return img
    return _stack(folder, slices, digest.hexdigest())


def _same_orientation(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.allclose(a, b, atol=1e-3))


def _stack(folder: Path, slices: list, sha256: str) -> Image:
    arrays, geos = [], []
    for p, ds in slices:
        arr = _pixels(ds, p)
        if arr.shape[0] != 1:
            raise InputError(p, f"multi-frame file ({arr.shape[0]} frames) inside a series folder; read it on its own")
        geo = _geometry(ds, 1)
        if arrays and arr.shape[1:] != arrays[0].shape[1:]:
            raise InputError(p, f"slice shape {arr.shape[1:]} differs from the series' {arrays[0].shape[1:]} "
                                f"({slices[0][0].name})")
        if geos and not _same_orientation(geo["iop"], geos[0]["iop"]):
            raise InputError(p, "slice orientation (ImageOrientationPatient) differs from the series' "
                                f"({slices[0][0].name})")
        arrays.append(arr)
        geos.append(geo)
    first = geos[0]
    order, proj = _order([g["positions"][0] for g in geos], first["normal"])
    meta = _meta(slices[0][1], first)
    if proj is None:  # no positions: InstanceNumber is the only order left
        order = np.argsort([_int(ds, "InstanceNumber", 0) or 0 for _, ds in slices], kind="stable")
        dz = first["thickness"]
        meta["slice_order"] = "InstanceNumber (no ImagePositionPatient/ImageOrientationPatient)"
    else:
        gaps = np.diff(proj)
        if np.any(gaps < 1e-6):
            k = int(np.argmin(gaps))
            raise InputError(folder, f"slices {slices[order[k]][0].name} and {slices[order[k + 1]][0].name} "
                                     "share a position: the folder holds duplicate or mixed slices")
        dz = float(np.median(gaps))
        if np.max(np.abs(gaps - dz)) > 0.01 * dz:
            meta["irregular_slice_spacing"] = [float(g) for g in gaps]
    if any(_is_rescaled(g) for g in geos):
        vol = np.concatenate([_rescale(arrays[i].astype(np.float32), geos[i]) for i in order])
    else:
        dtype = np.result_type(*[a.dtype for a in arrays])
        vol = np.concatenate([arrays[i].astype(dtype, copy=False) for i in order])
    head = geos[order[0]]["positions"][0]
    origin = tuple(float(v) for v in head[::-1]) if head is not None else (0.0, 0.0, 0.0)
    meta.update(slices=len(slices), files=[slices[i][0].name for i in order])
    meta["rescale_slope"], meta["rescale_intercept"] = geos[order[0]]["slopes"][0], geos[order[0]]["intercepts"][0]
    return Image(vol, spacing=(dz, *first["pixel_spacing"]), origin=origin,
                 modality=str(slices[0][1].get("Modality", "")), source=str(folder), sha256=sha256, meta=meta)
