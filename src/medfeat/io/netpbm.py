"""Netpbm greymaps and pixmaps (PGM/PPM: P2, P3, P5, P6; 8- and 16-bit), with numpy.

The header is parsed and checked against the file size before any pixel buffer exists, so a file
whose header promises 60000 x 60000 pixels but holds a few bytes is refused at once, allocating
nothing.

References
----------
.. [1] http://netpbm.sourceforge.net/doc/pgm.html
.. [2] http://netpbm.sourceforge.net/doc/ppm.html
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np

from medfeat.errors import InputError
from medfeat.io._files import read_file
from medfeat.image import Image

__all__ = ["MAGICS", "read_netpbm", "write_netpbm"]

#: magic -> (channels, binary)
MAGICS = {b"P2": (1, False), b"P3": (3, False), b"P5": (1, True), b"P6": (3, True)}

# Whitespace and comments ("#" to the end of the line) may separate the header fields.
_SKIP = re.compile(rb"(?:[ \t\r\n\v\f]+|#[^\r\n]*)*")
_NUMBER = re.compile(rb"[0-9]+")
_COMMENT_LINE = re.compile(rb"#[^\r\n]*[\r\n]")
_WHITESPACE = b" \t\r\n\v\f"
# Comments can make a header long, but not this long: stops a scan through a huge non-image file.
_MAX_HEADER = 1 << 16


def _parse_header(data: bytes, path) -> tuple[str, int, int, int, int]:
    """Return ``(magic, width, height, maxval, raster_offset)``, validating every field."""
    magic = bytes(data[:2])
    if magic not in MAGICS:
        raise InputError(path, f"not a PGM/PPM file (magic {magic!r}, expected P2, P3, P5 or P6)")
    name = magic.decode()
    end = min(len(data), _MAX_HEADER)
    pos, fields = 2, []
    for label in ("width", "height", "maxval"):
        pos = _SKIP.match(data, pos, end).end()
        m = _NUMBER.match(data, pos, end)
        if m is None:
            if pos >= end:
                raise InputError(path, f"truncated Netpbm header ({name}: no {label})")
            raise InputError(path, f"bad Netpbm header: {label} is {data[pos:pos + 12]!r}, not a number")
        pos = m.end()
        if pos < len(data) and data[pos] not in _WHITESPACE and data[pos] != ord("#"):
            raise InputError(path, f"bad Netpbm header: {label} is {data[m.start():pos + 1]!r}, not a number")
        # int() of a few digits only: a 10**6-digit "width" must not cost quadratic time
        fields.append(int(m.group()) if pos - m.start() <= 12 else 10**12)
    width, height, maxval = fields
    if width < 1 or height < 1 or width > 10**9 or height > 10**9:
        raise InputError(path, f"bad Netpbm size {width}x{height}")
    if not 1 <= maxval <= 65535:
        raise InputError(path, f"bad Netpbm maxval {maxval} (must be 1..65535)")
    if MAGICS[magic][1]:
        # Exactly one whitespace byte separates the header from the binary raster.
        if pos >= len(data):
            raise InputError(path, f"truncated {name} file: header without pixel data")
        if data[pos] == ord("#"):  # a comment after maxval: the raster starts after its line end
            m = _COMMENT_LINE.match(data, pos)
            if m is None:
                raise InputError(path, f"truncated {name} file: header without pixel data")
            pos = m.end()
        else:
            pos += 1
    return name, width, height, maxval, pos


def file_bytes(head: bytes, path) -> tuple[int, bool]:
    """How many bytes a Netpbm file with this beginning (at least its header) holds: ``(n, exact)``.
    Binary rasters (P5/P6) are exact; an ASCII raster (P2/P3) gets a bound (every sample with as
    many digits as maxval and a separator, plus room for comments). Sizes are checked against the
    image limit first. Used to decompress a gzipped file no further than its header allows."""
    from medfeat.io._files import check_image_size

    name, width, height, maxval, pos = _parse_header(head, path)
    channels, binary = MAGICS[name.encode()]
    sample = 1 if maxval < 256 else 2
    check_image_size(path, width * height * channels * sample, f"{name} {width}x{height}")
    if binary:
        return pos + width * height * channels * sample, True
    return pos + width * height * channels * (len(str(maxval)) + 1) + _MAX_HEADER, False


def _binary_raster(data: bytes, path, name: str, shape: tuple, maxval: int, pos: int) -> np.ndarray:
    count = math.prod(shape)
    nbytes = 1 if maxval < 256 else 2
    need, have = count * nbytes, len(data) - pos
    if have < need:  # checked before anything is allocated
        raise InputError(path, f"truncated {name} data: header says {shape[1]}x{shape[0]} "
                               f"({need} bytes) but only {have} bytes follow the header")
    # 16-bit samples are big-endian (most significant byte first), as the specification says
    arr = np.frombuffer(data, dtype=np.uint8 if nbytes == 1 else ">u2", count=count, offset=pos)
    return arr.astype(np.uint8 if nbytes == 1 else np.uint16)  # native order, owned and writable


def _ascii_raster(data: bytes, path, name: str, shape: tuple, maxval: int, pos: int) -> np.ndarray:
    count = math.prod(shape)
    # Each sample takes a digit and all but the last a separator: a file too short to hold the
    # raster is refused before it is split into tokens.
    if len(data) - pos < 2 * count - 1:
        raise InputError(path, f"truncated {name} data: header says {shape[1]}x{shape[0]} "
                               f"({count} samples) but the file is too short to hold them")
    tokens = data[pos:].split(maxsplit=count)[:count]
    if len(tokens) < count:
        raise InputError(path, f"truncated {name} data: {len(tokens)} of {count} samples")
    if not b"".join(tokens).isdigit():
        bad = next(t for t in tokens if not t.isdigit())
        raise InputError(path, f"bad sample {bad[:20]!r} in {name} data (expected 0..{maxval})")
    if max(map(len, tokens)) > 18:  # would overflow int64; certainly above maxval
        raise InputError(path, f"sample above maxval {maxval} in {name} data")
    return np.array(tokens, dtype=np.int64)


def read_netpbm(path: str | os.PathLike, data: bytes | None = None) -> Image:
    """Read a PGM or PPM file.

    Parameters
    ----------
    path : str or path-like
        The file; named in error messages.
    data : bytes, optional
        The file's content, when the caller has already read it.

    Returns
    -------
    Image
        ``(1, y, x)`` for PGM, ``(1, y, x, 3)`` RGB for PPM; uint8 when maxval <= 255, else uint16.
        Spacing is 1 mm (Netpbm has no physical size).

    Raises
    ------
    InputError
        Wrong magic, bad or truncated header, maxval outside 1..65535, truncated pixel data,
        samples above maxval.
    """
    if data is None:
        data = read_file(path)
    if not data:
        raise InputError(path, "empty file")
    name, width, height, maxval, pos = _parse_header(data, path)
    channels, binary = MAGICS[name.encode()]
    shape = (1, height, width, 3) if channels == 3 else (1, height, width)
    raster = _binary_raster if binary else _ascii_raster
    arr = raster(data, path, name, shape[1:], maxval, pos)
    # a full 8/16-bit binary raster cannot exceed its maxval; anything else is checked
    if (maxval not in (255, 65535) or not binary) and int(arr.max()) > maxval:
        raise InputError(path, f"sample {int(arr.max())} above maxval {maxval} in {name} data")
    arr = arr.astype(np.uint8 if maxval < 256 else np.uint16, copy=False)
    return Image(arr.reshape(shape), source=str(path), sha256=hashlib.sha256(data).hexdigest(),
                 meta={"format": "netpbm", "magic": name, "maxval": maxval})


def write_netpbm(path: str | os.PathLike, array, maxval: int | None = None) -> None:
    """Write a greyscale array as binary PGM (P5) or an RGB array as binary PPM (P6).

    Parameters
    ----------
    path : str or path-like
        Destination file (overwritten).
    array : array_like of int or bool
        ``(y, x)`` greyscale or ``(y, x, 3)`` RGB; a leading singleton z axis (an
        :attr:`Image.array <medfeat.image.Image.array>` of one slice) is accepted.
    maxval : int, optional
        1..65535; samples are written with one byte when it is below 256, else two (big-endian).
        Defaults to 255 for uint8/bool arrays and 65535 otherwise.

    Raises
    ------
    ValueError
        Wrong shape, non-integer data, or values outside ``0..maxval``.
    """
    arr = np.asarray(array)
    if arr.ndim in (3, 4) and arr.shape[0] == 1 and (arr.ndim == 4 or arr.shape[-1] != 3):
        arr = arr[0]
    if arr.ndim == 2:
        magic = b"P5"
    elif arr.ndim == 3 and arr.shape[2] == 3:
        magic = b"P6"
    else:
        raise ValueError(f"cannot write an array of shape {arr.shape} as PGM/PPM: need (y, x) or (y, x, 3)")
    if arr.dtype.kind not in "biu":
        raise ValueError(f"cannot write {arr.dtype} data as PGM/PPM: need integers")
    if maxval is None:
        maxval = 255 if arr.dtype in (np.uint8, np.bool_) else 65535
    if not 1 <= maxval <= 65535:
        raise ValueError(f"maxval {maxval} outside 1..65535")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > maxval):
        raise ValueError(f"values {int(arr.min())}..{int(arr.max())} outside 0..{maxval}")
    raster = arr.astype(np.uint8 if maxval < 256 else ">u2").tobytes()
    height, width = arr.shape[:2]
    Path(path).write_bytes(magic + f"\n{width} {height}\n{maxval}\n".encode() + raster)
