"""Netpbm PGM/PPM reader and writer (P2, P3, P5, P6; 8- and 16-bit), with numpy.

Headers are validated before any pixel buffer exists: a header that promises more pixels than the
file holds is refused at once, so a 60000x60000 claim in a small file allocates nothing.

Reference: http://netpbm.sourceforge.net/doc/pgm.html and ppm.html
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from medfeat.errors import InputError

MAGICS = {b"P2": (1, False), b"P3": (3, False), b"P5": (1, True), b"P6": (3, True)}
_TOKEN = re.compile(rb"\s*(?:#[^\n\r]*[\n\r]\s*)*(\S+)")
MAX_HEADER = 4096


def _header(data: bytes, path) -> tuple[bytes, int, int, int, int]:
    """Parse ``magic width height maxval``; return them and the offset of the pixel data."""
    magic = data[:2]
    if magic not in MAGICS:
        raise InputError(path, f"not a PGM/PPM file (magic {magic!r}, expected P2, P3, P5 or P6)")
    pos, values = 2, []
    head = data[:MAX_HEADER]
    for _ in range(3):
        m = _TOKEN.match(head, pos)
        if not m:
            raise InputError(path, "truncated Netpbm header")
        tok = m.group(1)
        if not tok.isdigit():
            raise InputError(path, f"bad Netpbm header field {tok[:20]!r}")
        values.append(int(tok))
        pos = m.end()
    width, height, maxval = values
    if width < 1 or height < 1:
        raise InputError(path, f"bad Netpbm size {width}x{height}")
    if not 1 <= maxval <= 65535:
        raise InputError(path, f"bad Netpbm maxval {maxval} (must be 1..65535)")
    if MAGICS[magic][1]:
        if pos >= len(data) or not data[pos:pos + 1].isspace():
            raise InputError(path, "truncated Netpbm header (no whitespace before the pixel data)")
        pos += 1  # exactly one whitespace byte separates header and raster
    return magic, width, height, maxval, pos


def read_netpbm(path: str | os.PathLike, data: bytes | None = None):
    """Read a PGM/PPM file into an :class:`~medfeat.image.Image`.

    Returns a ``(1, y, x)`` array for PGM and ``(1, y, x, 3)`` for PPM; uint8 when maxval <= 255,
    else uint16 (big-endian in the file, as the format prescribes).
    """
    from medfeat.image import Image

    if data is None:
        data = Path(path).read_bytes()
    magic, width, height, maxval, pos = _header(data, path)
    channels, binary = MAGICS[magic]
    count = width * height * channels
    if binary:
        nbytes = 1 if maxval < 256 else 2
        need = count * nbytes
        if len(data) - pos < need:
            raise InputError(path, f"truncated {magic.decode()} data: header says {width}x{height} "
                                   f"({need} bytes) but only {len(data) - pos} bytes follow")
        arr = np.frombuffer(data, dtype=np.uint8 if nbytes == 1 else ">u2", count=count, offset=pos)
        arr = arr.astype(np.uint8 if nbytes == 1 else np.uint16)
    else:
        # each sample takes at least 2 bytes ("0 "), so a short file cannot hold the claimed raster
        if (len(data) - pos + 1) // 2 < count:
            raise InputError(path, f"truncated {magic.decode()} data: header says {width}x{height} "
                                   f"but the file is too short")
        tokens = data[pos:].split()
        if len(tokens) < count:
            raise InputError(path, f"truncated {magic.decode()} data: {len(tokens)} of {count} samples")
        try:
            arr = np.array(tokens[:count], dtype=np.int64)
        except ValueError:
            raise InputError(path, f"non-numeric sample in {magic.decode()} data") from None
        if arr.min() < 0 or arr.max() > maxval:
            raise InputError(path, f"sample outside 0..{maxval} in {magic.decode()} data")
        arr = arr.astype(np.uint8 if maxval < 256 else np.uint16)
    shape = (1, height, width, 3) if channels == 3 else (1, height, width)
    return Image(arr.reshape(shape), source=str(path),
                 meta={"format": "netpbm", "magic": magic.decode(), "maxval": maxval})


def write_netpbm(path: str | os.PathLike, array: np.ndarray, maxval: int | None = None) -> None:
    """Write a 2D greyscale array as binary PGM (P5) or a ``(y, x, 3)`` array as binary PPM (P6).

    ``maxval`` defaults to 255 for uint8 data and 65535 otherwise; 16-bit samples are big-endian.
    """
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[0] == 1 and arr.shape[-1] != 3:
        arr = arr[0]
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        magic = b"P5"
    elif arr.ndim == 3 and arr.shape[2] == 3:
        magic = b"P6"
    else:
        raise ValueError(f"cannot write an array of shape {arr.shape} as PGM/PPM")
    if maxval is None:
        maxval = 255 if arr.dtype == np.uint8 else 65535
    if arr.size and (arr.min() < 0 or arr.max() > maxval):
        raise ValueError(f"values outside 0..{maxval}")
    raster = arr.astype(np.uint8 if maxval < 256 else ">u2").tobytes()
    h, w = arr.shape[:2]
    Path(path).write_bytes(magic + f"\n{w} {h}\n{maxval}\n".encode() + raster)
