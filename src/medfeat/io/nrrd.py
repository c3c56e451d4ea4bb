"""NRRD volumes (.nrrd with the data attached), through pynrrd's header parser.

The header is parsed by pynrrd; the voxels are decoded here, so that every claim of the header is
checked before anything is allocated or decompressed: 2 or 3 spatial axes (plus an optional RGB
colour axis), positive sizes, an image within :data:`~medfeat.io._files.MAX_IMAGE_BYTES`, and no
more decompressed (gzip, bzip2) than the header needs.

NRRD's first axis is the fastest in the file (x), so the voxels are read in C order with the sizes
reversed: medfeat's ``(z, y, x)`` directly, no transposition. Voxels are not reoriented.

Geometry: ``space directions`` (one world vector per axis) and ``space origin`` give the
voxel-to-world map; it is kept in ``meta["affine"]`` in NIfTI's convention (a 4x4 from the
``(x, y, z)`` index to RAS+ mm; an LPS space has its first two rows negated), so NRRD and NIfTI
files of one grid compare equal. Spacing is the length of each direction (or the ``spacings``
field, 1 mm when neither is given), the origin the affine's translation, both reversed to
``(z, y, x)`` -- as for NIfTI.
"""
from __future__ import annotations

import bz2
import hashlib
import math
import os
import warnings

import numpy as np

from medfeat.errors import InputError
from medfeat.image import Image
from medfeat.io._files import check_image_size, gunzip_bounded, read_file

__all__ = ["looks_like_nrrd", "read_nrrd"]

#: The longest header read (a detached .nhdr with gradient tables is a few kB).
MAX_HEADER_BYTES = 1 << 20

_TYPES = {
    "i1": ("signed char", "int8", "int8_t"),
    "u1": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "i2": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "u2": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "i4": ("int", "signed int", "int32", "int32_t"),
    "u4": ("uint", "unsigned int", "uint32", "uint32_t"),
    "i8": ("longlong", "long long", "long long int", "signed long long", "signed long long int",
           "int64", "int64_t"),
    "u8": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    "f4": ("float",),
    "f8": ("double",),
}
_DTYPE = {name: code for code, names in _TYPES.items() for name in names}

#: World spaces: the sign flips that take each to RAS+ (None: no anatomical meaning, kept as is).
_SPACES = {
    "right-anterior-superior": (1, 1, 1), "ras": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1), "las": (-1, 1, 1),
    "left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1),
    "scanner-xyz": None, "3d-right-handed": None, "3d-left-handed": None,
}
_TIME_SPACES = ("right-anterior-superior-time", "rast", "left-anterior-superior-time", "last",
                "left-posterior-superior-time", "lpst", "scanner-xyz-time", "3d-right-handed-time",
                "3d-left-handed-time")
_SPATIAL_KINDS = ("domain", "space", "???", "none")
_COLOUR_KINDS = {"rgb-color": 3, "3-color": 3, "rgba-color": 4, "4-color": 4}
_TO_MM = {"mm": 1.0, "millimeter": 1.0, "millimeters": 1.0, "millimetre": 1.0, "millimetres": 1.0,
          "m": 1000.0, "meter": 1000.0, "meters": 1000.0, "metre": 1000.0, "cm": 10.0,
          "um": 1e-3, "µm": 1e-3, "micron": 1e-3, "microns": 1e-3}


def looks_like_nrrd(head: bytes) -> bool:
    """True for a file starting with an NRRD magic (``NRRD0001`` .. ``NRRD0005``)."""
    return head.startswith(b"NRRD000")


def read_nrrd(path: str | os.PathLike, data: bytes | None = None) -> Image:
    """Read an NRRD file with attached data (raw, gzip or bzip2 encoded).

    Parameters
    ----------
    path : str or path-like
        The file; named in error messages.
    data : bytes, optional
        The file's content, when the caller has already read it.

    Returns
    -------
    Image
        ``(z, y, x)``, or ``(z, y, x, 3)`` for an RGB colour axis (alpha dropped); a 2D image gets
        ``z == 1``. The stored dtype is kept (in native byte order).

    Raises
    ------
    InputError
        Not NRRD, a corrupt header, a detached header (``data file``), an unsupported encoding or
        type, a 4D or vector image, an image above the size limit, truncated or corrupt data.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynrrd warns about some header oddities: refused or ignored here
        return _read_nrrd(path, data)


def _split_header(data: bytes, path) -> tuple[list[bytes], int]:
    """The header's lines (magic included) and where the data starts: after the first blank line
    (or at the end of the file, for a header without data)."""
    lines, pos = [], 0
    while pos < len(data):
        end = data.find(b"\n", pos, pos + MAX_HEADER_BYTES + 1)
        if end < 0:
            end = len(data) if len(data) - pos <= MAX_HEADER_BYTES else -1
        if end < 0 or end + 1 > MAX_HEADER_BYTES:
            raise InputError(path, f"NRRD header longer than {MAX_HEADER_BYTES} bytes (no blank line ends it)")
        line = data[pos:end]
        pos = end + 1
        if lines and not line.strip():
            return lines, pos
        lines.append(line + b"\n")
    return lines, len(data)


def _parse_header(data: bytes, path) -> tuple[dict, int]:
    import nrrd

    lines, start = _split_header(data, path)
    if not lines or not looks_like_nrrd(lines[0]):
        raise InputError(path, "not an NRRD file (no NRRD000x magic)")
    for line in lines[1:]:
        if not line.startswith(b"#") and b":" not in line:
            raise InputError(path, f"corrupt NRRD header: line {line.rstrip()[:40]!r} is no field")
    try:
        header = nrrd.read_header(iter(lines))
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(path, f"corrupt NRRD header ({type(exc).__name__}: {exc})") from None
    directions = header.get("space directions")
    if isinstance(directions, list):  # nrrd.SPACE_DIRECTIONS_TYPE "double vector list": None for 'none'
        width = max((len(v) for v in directions if v is not None), default=0)
        header["space directions"] = [[math.nan] * width if v is None else list(v) for v in directions]
    return header, start


def _skip_lines(data, start: int, n: int, path) -> int:
    for _ in range(n):
        end = data.find(b"\n", start)
        if end < 0:
            raise InputError(path, f"truncated NRRD data: the file ends within the {n} lines 'line skip' skips")
        start = end + 1
    return start


def _bunzip_bounded(data, path, need: int) -> bytearray:
    """Exactly ``need`` bytes of bzip2 ``data`` (concatenated streams allowed), inflating no more."""
    out = bytearray()
    view = memoryview(data)
    step = 1 << 20
    try:
        while len(out) < need:
            inflater = bz2.BZ2Decompressor()
            while len(out) < need and not inflater.eof:
                if inflater.needs_input:
                    if not view:
                        raise EOFError("compressed file ended before the end-of-stream marker was reached")
                    chunk, view = view[:step], view[step:]
                else:
                    chunk = b""
                out += inflater.decompress(chunk, max_length=min(4 * step, need - len(out)))
            if len(out) >= need:
                break
            view = memoryview(inflater.unused_data + bytes(view))
            if not bytes(view).strip(b"\0"):
                break
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(path, f"truncated or corrupt bzip2 data ({exc})") from None
    if len(out) < need:
        raise InputError(path, f"truncated bzip2 data: the header needs {need} bytes but the stream "
                               f"ends after {len(out)}")
    return out


def _matrix(value, path, name) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(path, f"bad NRRD {name} {value!r}") from None


def _read_nrrd(path, data):
    if data is None:
        data = read_file(path)
    header, start = _parse_header(data, path)
    get = header.get
    for field in ("dimension", "type", "encoding", "sizes"):
        if field not in header:
            raise InputError(path, f"NRRD header without the required field '{field}'")
    detached = get("data file", get("datafile"))
    if detached is not None:
        raise InputError(path, f"detached NRRD header (data file {str(detached)[:80]!r}): not supported, "
                               "convert it to a single .nrrd with the data attached")
    sizes = [int(n) for n in np.atleast_1d(get("sizes"))]
    dim = int(get("dimension"))
    if dim != len(sizes) or any(n < 1 for n in sizes):
        raise InputError(path, f"bad NRRD sizes {sizes} for dimension {dim} (one size per axis, each at least 1)")
    text = "x".join(map(str, sizes))
    kinds = [str(k).lower() for k in get("kinds", [])] or ["domain"] * dim
    if len(kinds) != dim:
        raise InputError(path, f"bad NRRD kinds {get('kinds')} for dimension {dim}")
    # Non-spatial axes: a 'none' space direction, or a kind other than domain/space.
    directions = get("space directions")
    if directions is not None:
        directions = _matrix(directions, path, "space directions")
        if directions.ndim != 2 or directions.shape[0] != dim:
            raise InputError(path, f"bad NRRD space directions: {directions.shape[0] if directions.ndim == 2 else 0} "
                                   f"vectors for dimension {dim}")
    spatial = [kinds[i] in _SPATIAL_KINDS and (directions is None or not np.isnan(directions[i]).all())
               for i in range(dim)]
    colour = [i for i in range(dim) if kinds[i] in _COLOUR_KINDS]
    if len(colour) > 1 or (colour and sizes[colour[0]] != _COLOUR_KINDS[kinds[colour[0]]]):
        raise InputError(path, f"NRRD colour axis of kinds {kinds} and sizes {text}: not supported")
    others = [i for i in range(dim) if not spatial[i] and i not in colour]
    if any(sizes[i] > 1 for i in others) or sum(spatial) > 3:
        what = ", ".join(f"{kinds[i] if kinds[i] not in _SPATIAL_KINDS else 'non-spatial'} axis of {sizes[i]}"
                         for i in others if sizes[i] > 1)
        raise InputError(path, f"{dim}D NRRD ({text}{': ' + what if what else ''}) is not supported: "
                               "split it into 3D volumes")
    spatial_axes = [i for i in range(dim) if spatial[i]]
    if len(spatial_axes) < 2:
        raise InputError(path, f"NRRD of sizes {text} with {len(spatial_axes)} spatial axis: give a 2D or 3D image")

    type_name = str(get("type")).strip().lower()
    if type_name not in _DTYPE:
        raise InputError(path, f"NRRD type {get('type')!r} is not supported (integer, float or double)")
    dtype = np.dtype(_DTYPE[type_name])
    if dtype.itemsize > 1:
        endian = str(get("endian", "")).lower()
        if endian not in ("little", "big"):
            raise InputError(path, f"NRRD header without a valid endian field ({get('endian')!r}) for {type_name} data")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    encoding = str(get("encoding")).strip().lower()
    if encoding not in ("raw", "gzip", "gz", "bzip2", "bz2"):
        raise InputError(path, f"NRRD encoding {get('encoding')!r} is not supported (raw, gzip and bzip2 are): "
                               "convert the file")
    need = math.prod(sizes) * dtype.itemsize
    what = f"{text} {dtype.newbyteorder('=')}"
    check_image_size(path, need, what)
    try:
        line_skip = int(get("line skip", get("lineskip", 0)))
        byte_skip = int(get("byte skip", get("byteskip", 0)))
    except (TypeError, ValueError):
        raise InputError(path, "bad NRRD line skip or byte skip") from None
    if line_skip < 0 or byte_skip < -1 or (byte_skip == -1 and encoding != "raw"):
        raise InputError(path, f"bad NRRD line skip {line_skip} / byte skip {byte_skip}")
    check_image_size(path, max(byte_skip, 0), f"byte skip {byte_skip}")
    start = _skip_lines(data, start, line_skip, path)

    if encoding == "raw":
        if byte_skip == -1:  # the data are the file's last bytes
            offset = len(data) - need
            if offset < start:
                raise InputError(path, f"truncated NRRD data: header needs {need} bytes ({what}), "
                                       f"file holds {len(data) - start}")
        else:
            offset = start + byte_skip
            if len(data) - offset < need:
                raise InputError(path, f"truncated NRRD data: header needs {need + byte_skip} bytes ({what}"
                                       f"{f' after a byte skip of {byte_skip}' if byte_skip else ''}), "
                                       f"file holds {max(len(data) - start, 0)}")
        buf = data
    else:
        body = memoryview(data)[start:]
        if encoding in ("gzip", "gz"):
            buf = gunzip_bounded(body, path, need=need + byte_skip)  # exactly what the header needs
        else:
            buf = _bunzip_bounded(body, path, need + byte_skip)
        offset = byte_skip
    arr = np.frombuffer(buf, dtype=dtype, count=math.prod(sizes), offset=offset)
    if not (isinstance(buf, bytearray) and dtype.isnative):  # decompressed native voxels are used in place
        arr = arr.astype(dtype.newbyteorder("="), copy=True)  # writable, native byte order
    sha256 = hashlib.sha256(data).hexdigest()
    del buf, data

    # C order with the sizes reversed: the file's last axis first, x (fastest) last.
    arr = arr.reshape(sizes[::-1])
    index = tuple(slice(None) if (dim - 1 - a) in spatial_axes or (dim - 1 - a) in colour else 0
                  for a in range(dim))
    arr = arr[index]  # drop singleton non-spatial axes
    if colour:
        caxis = sum(1 for a in range(dim - 1 - colour[0]) if index[a] != 0)
        arr = np.moveaxis(arr, caxis, -1)[..., :3]
    if len(spatial_axes) == 2:
        arr = arr[np.newaxis]

    affine, space, spacing3 = _affine(header, spatial_axes, directions, path)
    origin = affine[:3, 3].tolist()
    meta = {"format": "nrrd", "affine": affine.tolist(), "space": space or "", "encoding": encoding,
            "datatype": str(arr.dtype), "axcodes": _axcodes(affine)}
    if header.get("space units") is not None:
        meta["space_units"] = [str(u) for u in header["space units"]]
    return Image(np.ascontiguousarray(arr), spacing=tuple(reversed(spacing3)), origin=tuple(reversed(origin)),
                 modality="", source=str(path), sha256=sha256, meta=meta)


def _axcodes(affine: np.ndarray) -> str:
    try:
        import nibabel as nib

        return "".join(c or "?" for c in nib.aff2axcodes(affine))
    except Exception:  # pragma: no cover - a degenerate affine is refused before
        return "???"


def _affine(header: dict, spatial_axes: list[int], directions, path) -> tuple[np.ndarray, str | None, list[float]]:
    """The 4x4 map from the (x, y, z) index to RAS+ mm, the header's space, and the spacing (x, y, z)."""
    space = header.get("space")
    flips = None
    if space is not None:
        key = str(space).strip().lower()
        if key in _TIME_SPACES:
            raise InputError(path, f"NRRD space {space!r} has a time axis: 4D is not supported, split it into 3D volumes")
        if key not in _SPACES:
            raise InputError(path, f"unknown NRRD space {space!r}")
        flips = _SPACES[key]
    units = header.get("space units")
    scale = 1.0
    if units:
        factors = {_TO_MM.get(str(u).strip().lower()) for u in units}
        if len(factors) == 1 and None not in factors:
            scale = factors.pop()
    n = len(spatial_axes)
    cols = np.zeros((3, 3))
    if directions is not None:
        vecs = directions[spatial_axes]
        if vecs.shape[1] > 3 or not np.isfinite(vecs).all():
            raise InputError(path, f"bad NRRD space directions {directions.tolist()} (3D world vectors expected)")
        cols[: vecs.shape[1], :n] = vecs.T * scale
    else:
        spacings = header.get("spacings")
        sp = [1.0] * n
        if spacings is not None:
            values = _matrix(spacings, path, "spacings").ravel()
            if values.size == len(header["sizes"]):
                sp = [float(values[i]) if math.isfinite(values[i]) and values[i] > 0 else 1.0 for i in spatial_axes]
        for j in range(n):
            cols[j, j] = abs(sp[j]) * scale
    lengths = np.linalg.norm(cols[:, :n], axis=0)
    if not (lengths > 0).all():
        raise InputError(path, f"bad NRRD space directions {np.asarray(directions).tolist()} (an axis of length 0)")
    if n == 2:  # a slice: the third axis is its unit normal
        normal = np.cross(cols[:, 0], cols[:, 1])
        cols[:, 2] = normal / np.linalg.norm(normal) if np.linalg.norm(normal) > 0 else (0.0, 0.0, 1.0)
    if abs(np.linalg.det(cols)) < 1e-12 * np.prod(np.linalg.norm(cols, axis=0)):
        raise InputError(path, f"bad NRRD space directions {np.asarray(directions).tolist()} (axes not independent)")
    origin = np.zeros(3)
    if header.get("space origin") is not None:
        o = _matrix(header["space origin"], path, "space origin").ravel()
        if o.size > 3 or not np.isfinite(o).all():
            raise InputError(path, f"bad NRRD space origin {o.tolist()}")
        origin[: o.size] = o * scale
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = cols, origin
    if flips is not None:
        affine[:3] *= np.asarray(flips, dtype=float)[:, None]
    affine += 0.0  # no -0.0 in the metadata
    spacing = [float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)]
    return affine, space, spacing
