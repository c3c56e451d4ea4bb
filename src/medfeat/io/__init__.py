"""Image readers, one module per format; :func:`read_image` picks one by content, not by name.

>>> from medfeat.io import read_image
>>> img = read_image("slice.ppm")          # doctest: +SKIP
>>> img.array.shape, img.spacing, img.sha256[:8]  # doctest: +SKIP
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

from medfeat.errors import InputError
from medfeat.image import Image

__all__ = ["read_image", "Image"]


def _sniff_gzip(data: bytes) -> bytes:
    try:
        return gzip.GzipFile(fileobj=__import__("io").BytesIO(data)).read(1024)
    except (OSError, EOFError, zlib.error):
        return b""


def _gunzip(data: bytes, path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"truncated or corrupt gzip data ({exc})") from None


def read_image(path: str | os.PathLike) -> Image:
    """Read an image file or a DICOM series folder.

    Formats (detected from the content): Netpbm P2/P3/P5/P6, PNG, JPEG, TIFF, DICOM (file or
    series folder), NIfTI (.nii, .nii.gz).

    Raises
    ------
    InputError
        Missing, empty, truncated or unrecognised files, naming the file and the reason.
    """
    p = Path(path)
    if p.is_dir():
        from medfeat.io.dicom import read_dicom_series

        return read_dicom_series(p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise InputError(path, "empty file")
    sha = hashlib.sha256(data).hexdigest()
    head = data[:1024]
    if head[:2] == b"\x1f\x8b":  # gzip: a .nii.gz, or a gzipped DICOM / Netpbm file
        inner = _sniff_gzip(data)
        from medfeat.io.nifti import looks_like_nifti, read_nifti

        if looks_like_nifti(inner):
            return read_nifti(path, data)
        if inner[128:132] == b"DICM" or inner[:2] in (b"P2", b"P3", b"P5", b"P6"):
            data = _gunzip(data, path)
            head = data[:1024]
        else:
            raise InputError(path, "gzip file that is not a NIfTI, DICOM or Netpbm image")
    # DICOM first: its 128-byte preamble may itself look like a TIFF header (dual-format files)
    if head[128:132] == b"DICM":
        from medfeat.io.dicom import read_dicom_file

        img = read_dicom_file(path, data)
    elif head[:2] in (b"P2", b"P3", b"P5", b"P6"):
        from medfeat.io.netpbm import read_netpbm

        img = read_netpbm(path, data)
    elif head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff" or head[:4] in (b"II*\x00", b"MM\x00*"):
        from medfeat.io.pillow import read_pillow

        img = read_pillow(path, data)
    else:
        from medfeat.io.nifti import looks_like_nifti, read_nifti

        if looks_like_nifti(head):
            return read_nifti(path, data)
        raise InputError(path, "unrecognised image format (expected PGM/PPM, PNG, JPEG, TIFF, DICOM or NIfTI)")
    img.sha256 = sha
    img.source = str(path)
    return img
