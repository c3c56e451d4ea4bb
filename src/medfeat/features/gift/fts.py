"""GIFT's ``.fts`` feature files: encoding, writing and reading."""
from __future__ import annotations

import os

import numpy as np

_RECORD = np.dtype([("id", "<i4"), ("value", "<f4")])


def fts_bytes(ids: np.ndarray, values: np.ndarray) -> bytes:
    """GIFT's ``.fts`` encoding: little-endian int32 count, then (int32 id, float32 value) pairs."""
    ids = np.asarray(ids)
    values = np.asarray(values)
    if ids.shape != values.shape or ids.ndim != 1:
        raise ValueError(f"ids and values must be 1-D of one length, got {ids.shape} and {values.shape}")
    rec = np.empty(ids.size, dtype=_RECORD)
    rec["id"] = ids
    rec["value"] = values
    return np.array([ids.size], dtype="<i4").tobytes() + rec.tobytes()


def write_fts(path: str | os.PathLike, ids: np.ndarray, values: np.ndarray) -> None:
    """Write a GIFT feature file (see :func:`fts_bytes`); replaced atomically."""
    data = fts_bytes(ids, values)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_fts(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a GIFT feature file: ``(ids int32, values float32)`` in file order.

    Raises
    ------
    InputError
        Missing file, or a size that does not match the count it starts with.
    """
    from medfeat.errors import InputError

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) < 4:
        raise InputError(path, "not a GIFT .fts file (shorter than its 4-byte count)")
    n = int(np.frombuffer(data, dtype="<i4", count=1)[0])
    if n < 0 or len(data) != 4 + 8 * n:
        raise InputError(path, f"not a GIFT .fts file: it announces {n} features but holds "
                               f"{len(data) - 4} bytes after the count")
    rec = np.frombuffer(data, dtype=_RECORD, offset=4, count=n)
    return rec["id"].astype(np.int32), rec["value"].astype(np.float32)
