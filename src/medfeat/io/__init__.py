"""Image readers, one module per format; :func:`read_image` picks one by content, not by name.

>>> from medfeat.io import read_image
>>> img = read_image("slice.ppm")                       # doctest: +SKIP
>>> img.array.shape, img.spacing, img.sha256[:8]       # doctest: +SKIP
((1, 256, 256, 3), (1.0, 1.0, 1.0), '3f1c9a0b')

Formats: Netpbm P2/P3/P5/P6 (:mod:`~medfeat.io.netpbm`), PNG/JPEG/TIFF (:mod:`~medfeat.io.pillow`),
DICOM files and series folders (:mod:`~medfeat.io.dicom`), NIfTI (:mod:`~medfeat.io.nifti`), NRRD
with attached data (:mod:`~medfeat.io.nrrd`; raw, gzip or bzip2 encoded).
Gzipped files are looked into: ``.nii.gz``, and gzipped DICOM or Netpbm files.
DICOM RTSTRUCT masks (contours, not images) are turned into voxel masks by :mod:`~medfeat.io.rtstruct`.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import zlib
from pathlib import Path

from medfeat.errors import NUL_IN_NAME, InputError
from medfeat.image import Image
from medfeat.io._files import gunzip_bounded, read_file
from medfeat.io.netpbm import write_netpbm

__all__ = ["Image", "detect_format", "read_image", "write_netpbm"]

_PILLOW_MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def detect_format(head: bytes) -> str | None:
    """Name the reader for a file from its first bytes (at least 548 where available).

    Returns
    -------
    str or None
        ``"dicom"``, ``"netpbm"``, ``"pillow"``, ``"nifti"``, ``"nrrd"``, ``"gzip"`` or None when unknown.
    """
    from medfeat.io.nifti import looks_like_nifti

    # DICOM first: its free 128-byte preamble may itself hold a TIFF header (dual-format files).
    if head[128:132] == b"DICM":
        return "dicom"
    # Netpbm: the magic must be followed by whitespace or a comment, so "P2" text is not taken
    if head[:2] in (b"P2", b"P3", b"P5", b"P6") and head[2:3] in (b" ", b"\t", b"\n", b"\r", b"\v", b"\f", b"#"):
        return "netpbm"
    if head.startswith(_PILLOW_MAGICS):
        return "pillow"
    if looks_like_nifti(head):
        return "nifti"
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    return None


def _gunzip_head(data: bytes, path, n: int = 1024) -> bytes:
    """The first ``n`` decompressed bytes of gzip data, without decompressing the rest."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"truncated or corrupt gzip data ({exc})") from None


def read_image(path: str | os.PathLike) -> Image:
    """Read an image file, or the DICOM series in a folder.

    The format is detected from the content (magic bytes), not from the file name: Netpbm
    P2/P3/P5/P6, PNG, JPEG, TIFF, DICOM, NIfTI-1/2, NRRD; gzipped NIfTI, DICOM and Netpbm files.

    Parameters
    ----------
    path : str or path-like
        A file, or a folder holding one DICOM series (non-DICOM files and objects without an image,
        such as RTSTRUCT, are skipped).

    Returns
    -------
    Image
        With ``source=str(path)`` and ``sha256`` of the file's bytes (for a series folder, of its
        image files' bytes in sorted file name order).

    Raises
    ------
    InputError
        Missing, empty, truncated, corrupt or unrecognised files; the message names the file and
        the reason. NaN and infinite voxel values are not checked here.
    """
    p = Path(path)
    try:
        is_dir = p.is_dir()
    except ValueError:  # a NUL byte in the name
        raise InputError(path, NUL_IN_NAME) from None
    except OSError as exc:  # a name too long for the file system, say (is_dir passes that through)
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    if is_dir:
        from medfeat.io.dicom import read_dicom_series

        with _library_errors(path, "DICOM series"):
            img = read_dicom_series(p)
        img.source = str(path)
        return img
    data = read_file(p)
    if not data:
        raise InputError(path, "empty file")
    kind, payload = detect_format(data[:1024]), data
    if kind == "gzip":
        kind = detect_format(_gunzip_head(data, path))
        if kind == "nifti":
            payload = data  # the NIfTI reader decompresses .nii.gz itself
        elif kind in ("dicom", "netpbm"):
            payload = _gunzip(data, path, kind)
        else:
            raise InputError(path, "gzip file that is not a NIfTI, DICOM or Netpbm image")
    if kind is None:
        raise InputError(path, "unrecognised image format (expected PGM/PPM, PNG, JPEG, TIFF, DICOM, NIfTI "
                               f"or NRRD; file starts with {data[:8]!r})")
    with _library_errors(path, f"{kind} file"):
        img = _reader(kind)(path, payload)
    img.source = str(path)
    if payload is not data or not img.sha256:  # the reader hashed what it was given: the file, unless gunzipped
        img.sha256 = hashlib.sha256(data).hexdigest()
    if payload is not data:
        img.meta["compression"] = "gzip"
    return img


@contextlib.contextmanager
def _library_errors(path, what: str):
    """A library's own error on a damaged file (pydicom's NotImplementedError for an unknown value
    representation ...) as one InputError naming ``path``; InputError and MemoryError pass as they are."""
    try:
        yield
    except (InputError, MemoryError):
        raise
    except Exception as exc:
        raise InputError(path, f"unreadable {what} ({type(exc).__name__}: {exc})") from None


def _reader(kind: str):
    if kind == "dicom":
        from medfeat.io.dicom import read_dicom_file as reader
    elif kind == "netpbm":
        from medfeat.io.netpbm import read_netpbm as reader
    elif kind == "pillow":
        from medfeat.io.pillow import read_pillow as reader
    elif kind == "nrrd":
        from medfeat.io.nrrd import read_nrrd as reader
    else:
        from medfeat.io.nifti import read_nifti as reader
    return reader


def _gunzip(data: bytes, path, kind: str) -> bytearray:
    """The decompressed file, never more than its header says it holds (a gzip bomb costs what
    the header claims, within the image limit, never what it would expand to)."""
    if kind == "netpbm":
        from medfeat.io.netpbm import file_bytes

        need, exact = file_bytes(_gunzip_head(data, path, 1 << 16), path)
        return gunzip_bounded(data, path, need=need) if exact else gunzip_bounded(data, path, limit=need)
    from medfeat.io.dicom import gzipped_size_limit

    return gunzip_bounded(data, path, limit=gzipped_size_limit(data, path))
