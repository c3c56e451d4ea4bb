"""DICOM files and series folders, through pydicom.

Values are rescaled with RescaleSlope/RescaleIntercept (HU for CT). A series folder's slices are
sorted by their position along the slice normal (ImagePositionPatient projected on the cross
product of the ImageOrientationPatient cosines), not by file name or InstanceNumber, and the slice
spacing is the median distance between consecutive positions.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from medfeat.errors import InputError

# Objects that carry no image of their own; a series folder may hold them beside the slices.
NON_IMAGE_MODALITIES = {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "SEG", "KO", "PR", "REG", "ECG"}


def is_dicom(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def _dcmread(path, **kw):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, **kw)
    except InvalidDicomError as exc:
        raise InputError(path, f"not a valid DICOM file ({exc})") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(path, f"truncated or corrupt DICOM file ({type(exc).__name__}: {exc})") from None


def _pixels(ds, path) -> np.ndarray:
    """Decoded pixels: (frames, y, x) or (frames, y, x, 3), colour converted to RGB."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(path, "DICOM file has no pixel data")
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", str(ts))
        raise InputError(path, f"cannot decode transfer syntax {name}: a decoder is needed "
                               f"(pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg) [{exc}]") from None
    except Exception as exc:
        raise InputError(path, f"corrupt DICOM pixel data ({type(exc).__name__}: {exc})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        colour = True
    else:
        colour = arr.ndim == (4 if frames > 1 else 3) and arr.shape[-1] == 3
    if frames == 1 or (colour and arr.ndim == 3) or (not colour and arr.ndim == 2):
        arr = arr[np.newaxis]
    return arr


def _rescale(ds, arr: np.ndarray) -> tuple[np.ndarray, float, float]:
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope != 1 or intercept != 0:
        arr = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return arr, slope, intercept


def _normal(ds) -> np.ndarray | None:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    return np.cross(row, col)


def _meta(ds, slope, intercept) -> dict:
    fm = getattr(ds, "file_meta", None)
    return {"format": "dicom", "rescale_slope": slope, "rescale_intercept": intercept,
            "transfer_syntax": str(getattr(fm, "TransferSyntaxUID", "")),
            "series_uid": str(ds.get("SeriesInstanceUID", "")),
            "photometric": str(ds.get("PhotometricInterpretation", ""))}


def _pixel_spacing(ds) -> tuple[float, float]:
    ps = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return (float(ps[0]), float(ps[1])) if ps is not None and len(ps) == 2 else (1.0, 1.0)


def read_dicom_file(path: str | os.PathLike, data: bytes | None = None):
    """One DICOM file (single- or multi-frame) as an :class:`~medfeat.image.Image`."""
    import io

    from medfeat.image import Image

    ds = _dcmread(io.BytesIO(data) if data is not None else path)
    if data is None:
        data = Path(path).read_bytes()
    arr, slope, intercept = _rescale(ds, _pixels(ds, path))
    dy, dx = _pixel_spacing(ds)
    dz = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
    ipp = ds.get("ImagePositionPatient")
    origin = tuple(float(v) for v in reversed(ipp)) if ipp is not None and len(ipp) == 3 else (0.0, 0.0, 0.0)
    return Image(arr, spacing=(dz, dy, dx), origin=origin, modality=str(ds.get("Modality", "")),
                 source=str(path), sha256=hashlib.sha256(data).hexdigest(), meta=_meta(ds, slope, intercept))


def read_dicom_series(folder: str | os.PathLike):
    """Every image slice of a DICOM series folder, sorted along the slice normal, as one volume."""
    from medfeat.image import Image

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    slices, h = [], hashlib.sha256()
    for p in files:
        with open(p, "rb") as fh:
            head = fh.read(132)
        if not is_dicom(head):
            continue
        ds = _dcmread(p, defer_size=1024)  # large values (the pixels) stay on disk
        if str(ds.get("Modality", "")) in NON_IMAGE_MODALITIES or not ("PixelData" in ds or "FloatPixelData" in ds):
            continue
        slices.append((p, ds))
    if not slices:
        raise InputError(folder, "folder holds no DICOM image files")
    series = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in slices})
    if len(series) > 1:
        raise InputError(folder, f"folder holds {len(series)} DICOM image series ({', '.join(series)}); "
                                 "give one series folder")
    normal = _normal(slices[0][1])

    def position(item):
        ipp = item[1].get("ImagePositionPatient")
        if ipp is None or normal is None:
            return float(item[1].get("InstanceNumber", 0) or 0)
        return float(np.dot(normal, np.array(ipp, float)))

    slices.sort(key=position)
    arrays, first = [], None
    for p, _ in slices:
        data = p.read_bytes()
        h.update(data)
        img = read_dicom_file(p, data)
        if first is None:
            first = img
        elif img.array.shape[1:] != first.array.shape[1:]:
            raise InputError(p, f"slice shape {img.array.shape[1:]} differs from the series' {first.array.shape[1:]}")
        arrays.append(img.array)
    positions = np.array([position(s) for s in slices])
    dz = float(np.median(np.diff(positions))) if len(slices) > 1 and normal is not None else first.spacing[0]
    if dz <= 0:
        raise InputError(folder, "slices share a position: the folder holds duplicate or mixed slices")
    dtypes = {a.dtype for a in arrays}
    vol = np.concatenate([a.astype(np.float32) for a in arrays] if len(dtypes) > 1 else arrays)
    meta = dict(first.meta, slices=len(slices))
    return Image(vol, spacing=(dz, first.spacing[1], first.spacing[2]), origin=first.origin,
                 modality=first.modality, source=str(folder), sha256=h.hexdigest(), meta=meta)
