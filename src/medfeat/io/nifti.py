"""NIfTI-1/2 (.nii, .nii.gz) through nibabel.

Voxels keep their stored order (no reorientation); the (x, y, z) array is transposed to medfeat's
(z, y, x). Spacing comes from the header's zooms, the origin from the affine's translation.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from medfeat.errors import InputError


def read_nifti(path: str | os.PathLike, data: bytes | None = None):
    """Read a NIfTI file into an :class:`~medfeat.image.Image` (3D; a singleton 4th axis is dropped)."""
    import nibabel as nib

    from medfeat.image import Image

    if data is None:
        data = Path(path).read_bytes()
    try:
        img = nib.Nifti1Image.from_bytes(data) if not _gz(data) else nib.Nifti1Image.from_bytes(_gunzip(data, path))
    except InputError:
        raise
    except Exception:
        try:
            raw = _gunzip(data, path) if _gz(data) else data
            img = nib.Nifti2Image.from_bytes(raw)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    try:
        arr = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise InputError(path, f"truncated or corrupt NIfTI data ({type(exc).__name__}: {exc})") from None
    if arr.dtype.names:  # RGB24 is a structured dtype
        arr = np.stack([arr[n] for n in arr.dtype.names[:3]], axis=-1)
        colour = True
    else:
        colour = False
    spatial = arr.ndim - (1 if colour else 0)
    if spatial == 4 and arr.shape[3] == 1:
        arr = arr[:, :, :, 0]
        spatial = 3
    if spatial > 3:
        raise InputError(path, f"4D NIfTI ({arr.shape}) is not supported yet: give one volume")
    while spatial < 3:
        arr = arr[..., np.newaxis] if not colour else arr[:, :, np.newaxis]
        spatial += 1
    arr = arr.transpose(2, 1, 0, 3) if colour else arr.transpose(2, 1, 0)
    zooms = [float(z) for z in img.header.get_zooms()[:3]] + [1.0] * 3
    origin = img.affine[:3, 3]
    return Image(np.ascontiguousarray(arr), spacing=tuple(reversed(zooms[:3])),
                 origin=tuple(float(o) for o in reversed(origin)), modality="", source=str(path),
                 sha256=hashlib.sha256(data).hexdigest(), meta={"format": "nifti", "affine": img.affine.tolist()})


def _gz(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def _gunzip(data: bytes, path) -> bytes:
    import gzip
    import zlib

    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"truncated or corrupt gzip data ({exc})") from None


def looks_like_nifti(head: bytes) -> bool:
    """NIfTI-1 (348-byte header, magic n+1/ni1 at 344) or NIfTI-2 (540, n+2 at 4)."""
    if len(head) >= 348 and head[344:347] in (b"n+1", b"ni1"):
        return True
    return len(head) >= 8 and head[4:7] == b"n+2"
