"""NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz), through nibabel.

Voxels are not reoriented: the stored (x, y, z) array is only transposed to medfeat's (z, y, x), so
two files of one scan stored with different axis directions give flipped arrays (the affine, kept in
``meta["affine"]`` with its axis codes in ``meta["axcodes"]``, tells them apart). Spacing comes from
the header's zooms, the origin from the affine's translation (NIfTI world coordinates are RAS+,
unlike DICOM's LPS), both reversed to (z, y, x) and converted to mm.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import logging
import math
import os
import struct
import threading
import warnings
import zlib

import numpy as np

from medfeat.errors import InputError
from medfeat.image import Image
from medfeat.io._files import check_image_size, gunzip_bounded, read_file

__all__ = ["looks_like_nifti", "read_nifti"]

_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}


def _sizeof_hdr(head: bytes) -> set[int]:
    """The header's first int32 read in both byte orders (NIfTI files may be big-endian)."""
    return set(struct.unpack("<i", head[:4]) + struct.unpack(">i", head[:4])) if len(head) >= 4 else set()


def looks_like_nifti(head: bytes) -> bool:
    """True for a NIfTI-1 (sizeof_hdr 348, magic ``n+1``/``ni1``) or NIfTI-2 (540, ``n+2``) header."""
    sizes = _sizeof_hdr(head)
    if 348 in sizes and head[344:348] in (b"n+1\0", b"ni1\0"):
        return True
    return 540 in sizes and head[4:8] in (b"n+2\0", b"ni2\0")


_READING = threading.local()  # set while this thread parses a header (see _NibabelQuiet)


class _NibabelQuiet(logging.Filter):
    """Drops what nibabel's global logger says while a medfeat reader parses a header: nibabel prints
    the fixes it makes to odd headers ("sform_code -32768 not valid; setting to 0") straight to stderr,
    a stray line without the file's name. Other threads' and the user's own nibabel calls keep their
    messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_READING, "active", False)


@functools.lru_cache(maxsize=1)
def _quiet_nibabel() -> None:
    logging.getLogger("nibabel.global").addFilter(_NibabelQuiet())


def _gunzip_head(data, path, n: int) -> bytes:
    """The first ``n`` decompressed bytes (fewer when the stream holds fewer), inflating no more."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"truncated or corrupt gzip data ({exc})") from None


def _xyz_units(hdr) -> str:
    """The header's spatial unit (``"mm"``, ``"meter"``, ``"micron"``, ``"unknown"``); a code the
    standard does not define counts as unknown (millimetres), as no unit at all does."""
    try:
        return hdr.get_xyzt_units()[0]
    except KeyError:  # nibabel looks the code up in its table and raises on one it lacks
        return "unknown"


@functools.lru_cache(maxsize=64)
def _axcodes(affine: bytes) -> str:
    """nibabel's axis codes of a 4x4 float64 affine (as bytes: an image and its mask share one)."""
    import nibabel as nib

    return "".join(c or "?" for c in nib.aff2axcodes(np.frombuffer(affine, dtype=np.float64).reshape(4, 4)))


def _header_end(head: bytes, path) -> int:
    """Where the voxels of a single-file NIfTI start (the header and its extensions end; at least
    the header and its 4 extension bytes): what nibabel needs to parse the header."""
    for order in "<>":
        (sizeof,) = struct.unpack(order + "i", head[:4])
        if sizeof == 348:
            (offset,) = struct.unpack(order + "f", head[108:112])
            break
        if sizeof == 540:
            (offset,) = struct.unpack(order + "q", head[168:176])
            break
    else:  # pragma: no cover - looks_like_nifti has checked sizeof_hdr
        return len(head)
    if not math.isfinite(offset) or offset < 0:
        raise InputError(path, f"bad NIfTI header: vox_offset {offset}")
    end = max(int(offset), sizeof + 4)
    check_image_size(path, end, f"vox_offset {int(offset)}")
    return end


def read_nifti(path: str | os.PathLike, data: bytes | None = None) -> Image:
    """Read a NIfTI file (plain or gzipped).

    Parameters
    ----------
    path : str or path-like
        The file; named in error messages.
    data : bytes, optional
        The file's content (gzipped or not), when the caller has already read it.

    Returns
    -------
    Image
        ``(z, y, x)``, or ``(z, y, x, 3)`` for RGB24 data. Values pass through the header's
        scl_slope/scl_inter (float then; the stored integer dtype otherwise). A 2D image gets
        ``z == 1``; a singleton 4th axis is dropped.

    Raises
    ------
    InputError
        Not NIfTI, a header/image pair (``ni1``), truncated or corrupt data, or a 4D (or higher)
        image with more than one volume.
    """
    with warnings.catch_warnings():
        # nibabel warns about header oddities it repairs or ignores (a too small vox_offset, odd
        # units, a non-invertible qform ...); the checks in _read_nifti refuse what matters for the
        # voxels (dims, sizes, truncation), so the rest is dropped rather than leaked to stderr.
        warnings.simplefilter("ignore")
        _quiet_nibabel()
        _READING.active = True
        try:
            return _read_nifti(path, data)
        finally:
            _READING.active = False



def _read_nifti(path, data):
    import nibabel as nib

    if data is None:
        data = read_file(path)
    gz = data[:2] == b"\x1f\x8b"
    # Only the header is decompressed first: the buffer is sized from what it says, never from the
    # gzip trailer (ISIZE is the writer's claim, and a forged one cost gigabytes).
    head = _gunzip_head(data, path, 548) if gz else data[:548]
    if not looks_like_nifti(head):
        raise InputError(path, "not a NIfTI file (no sizeof_hdr 348/540 with an n+1/n+2 magic)")
    if head[344:348] == b"ni1\0" or head[4:8] == b"ni2\0":
        raise InputError(path, "NIfTI header of a .hdr/.img pair: not supported, convert it to a single .nii")
    klass = nib.Nifti1Image if 348 in _sizeof_hdr(head) else nib.Nifti2Image
    end = _header_end(head, path)
    try:
        # the header alone (its checks and fixes, extensions included), not an image object: the
        # values nibabel's image would take from it (its ArrayProxy: shape, dtype, offset, scaling
        # with None as 1 and 0; its affine: the best affine), at a third of the cost
        hdr = klass.header_class.from_fileobj(io.BytesIO(_gunzip_head(data, path, end) if gz else bytes(data[:end])))
        shape = tuple(int(n) for n in hdr.get_data_shape())
        dtype = hdr.get_data_dtype()
        offset = int(hdr.get_data_offset())
        slope, inter = hdr.get_slope_inter()
        slope, inter = 1.0 if slope is None else float(slope), 0.0 if inter is None else float(inter)
        affine = np.asarray(hdr.get_best_affine(), dtype=np.float64)
    except MemoryError:
        raise
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"corrupt NIfTI header ({type(exc).__name__}: {exc})") from None
    if not np.all(np.isfinite(affine)):  # nibabel's orientation code would fail on it (SVD)
        form = "sform (srow_x/y/z)" if int(hdr["sform_code"]) > 0 else "qform (pixdim, quatern_*, qoffset_*)"
        raise InputError(path, f"bad NIfTI header: non-finite values in its {form} affine")
    if not shape or any(n < 1 for n in shape):
        dims = [int(d) for d in hdr["dim"][:8]]
        raise InputError(path, f"bad NIfTI dimensions {dims} (dim[0] is the count; each size must be at least 1)")
    full_shape = shape
    # Refuse before any voxel is read: a real 4D series, or a header promising more than the file holds.
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        extra = "x".join(str(n) for n in shape[3:])
        raise InputError(path, f"{len(shape)}D NIfTI ({'x'.join(map(str, shape))}: {extra} volumes) "
                               "is not supported yet: give one 3D volume")
    need = offset + math.prod(full_shape) * dtype.itemsize
    what = f"{'x'.join(map(str, full_shape))} {dtype}"
    check_image_size(path, need, what)
    if (slope, inter) != (1.0, 0.0):  # scaled values arrive as float64
        check_image_size(path, math.prod(full_shape) * 8, what + " scaled to float64")
    if gz:
        raw = gunzip_bounded(data, path, need=need)  # exactly what the header needs, no more
    else:
        raw = data
        if len(raw) < need:
            raise InputError(path, f"truncated NIfTI data: header says {'x'.join(map(str, full_shape))} {dtype} "
                                   f"({need} bytes with the header) but the file holds {len(raw)}")
    sha256 = hashlib.sha256(data).hexdigest()
    del data  # the compressed bytes are not needed any more (a large CT: tens of MB)
    if (slope, inter) == (1.0, 0.0) and dtype.kind in "iuf" and dtype.isnative and not dtype.names:
        # the voxels in place in the decompressed buffer (x fastest); a plain .nii's bytes are
        # copied once into a writable buffer (image arrays are writable, whatever the file)
        if not isinstance(raw, bytearray):
            raw = bytearray(raw)
        arr = np.ndarray(full_shape, dtype=dtype, buffer=raw, offset=offset, order="F")
    else:
        try:
            arr = np.asanyarray(klass.from_bytes(bytes(raw)).dataobj)  # applies scl_slope/scl_inter
        except MemoryError:
            raise
        except Exception as exc:
            raise InputError(path, f"corrupt NIfTI data ({type(exc).__name__}: {exc})") from None
    if not arr.dtype.isnative:  # big-endian files: native order for the numeric code downstream
        arr = arr.astype(arr.dtype.newbyteorder("="))
    colour = bool(arr.dtype.names)
    if colour:  # RGB24 (and RGBA32) arrive as a structured dtype: fields R, G, B[, A]
        arr = np.stack([arr[name] for name in arr.dtype.names[:3]], axis=-1)
    arr = arr.reshape(shape + (3,) * colour, order="F" if arr.flags.f_contiguous and not colour else "C")
    while arr.ndim - colour < 3:  # 1D/2D images: add singleton y/z axes
        arr = arr[:, np.newaxis] if arr.ndim - colour == 1 else arr[:, :, np.newaxis]
    arr = arr.transpose((2, 1, 0, 3) if colour else (2, 1, 0))
    units = _xyz_units(hdr)
    to_mm = _TO_MM.get(units, 1.0)
    zooms = [float(z) for z in hdr.get_zooms()[:3]] + [1.0] * 3
    spacing = [z * to_mm if np.isfinite(z) and z > 0 else 1.0 for z in zooms[:3]]
    origin = [float(o) * to_mm for o in affine[:3, 3]]
    meta = {"format": "nifti", "version": 1 if klass is nib.Nifti1Image else 2,
            "affine": affine.tolist(), "axcodes": _axcodes(affine.tobytes()),
            "qform_code": int(hdr["qform_code"]), "sform_code": int(hdr["sform_code"]),
            "datatype": str(dtype), "xyz_units": units}
    if (slope, inter) != (1.0, 0.0):
        meta["scl_slope"], meta["scl_inter"] = slope, inter
    return Image(np.ascontiguousarray(arr), spacing=tuple(reversed(spacing)), origin=tuple(reversed(origin)),
                 modality="", source=str(path), sha256=sha256, meta=meta)
