"""gunzip_bounded with python-isal (ISA-L inflate) against zlib: the same bytes, the same errors, the
same bounds, on well-formed and hostile gzip streams (issue 14: faster .nii.gz reads)."""
from __future__ import annotations

import functools
import gzip
import io
import os
import zlib

import pytest

import medfeat.io._files as files
from medfeat.errors import InputError
from medfeat.io._files import gunzip_bounded

isal_zlib = pytest.importorskip("isal.isal_zlib")

PAYLOAD = os.urandom(3000) + b"\0" * 5_000_000 + bytes(range(256)) * 100


def _named_member(data: bytes) -> bytes:
    """A gzip member with FNAME set (as gzip(1) writes it)."""
    bio = io.BytesIO()
    with gzip.GzipFile(filename="x.nii", mode="wb", fileobj=bio, mtime=0) as fh:
        fh.write(data)
    return bio.getvalue()


@functools.lru_cache(maxsize=1)
def _streams() -> dict[str, bytes]:
    full = gzip.compress(PAYLOAD)
    bad_crc = bytearray(full)
    bad_crc[-8] ^= 1
    return {
        "one member": full,
        "two members": gzip.compress(PAYLOAD[:4000]) + gzip.compress(PAYLOAD[4000:]),
        "empty first member": gzip.compress(b"") + full,
        "file name in header": _named_member(PAYLOAD),
        "trailing zeros": full + b"\0" * 100,
        "trailing garbage": full + b"garbage!",
        "truncated": full[: len(full) // 2],
        "bad crc": bytes(bad_crc),
        "bad method": b"\x1f\x8b\x09" + full[3:],
        "not gzip": b"hello world" * 10,
        "bomb": gzip.compress(b"\0" * 8_000_000),
    }


def _outcome(data: bytes, **kw):
    try:
        out = gunzip_bounded(data, "f.nii.gz", **kw)
        return "ok", type(out).__name__, len(out), zlib.crc32(out)
    except InputError as exc:
        return "error", str(exc).split(" (")[0]


@pytest.mark.parametrize("name", ["one member", "two members", "empty first member", "file name in header",
                                  "trailing zeros", "trailing garbage", "truncated", "bad crc", "bad method",
                                  "not gzip", "bomb"])
@pytest.mark.parametrize("kw", [{}, {"limit": 1_000_000}, {"need": 4000}, {"need": len(PAYLOAD)},
                                {"need": len(PAYLOAD) + 1}], ids=["all", "limit", "need-head", "need-all", "need-more"])
def test_isal_and_zlib_agree(monkeypatch, name, kw):
    data = _streams()[name]
    assert files._inflate is isal_zlib  # the installed package is the one used
    with_isal = _outcome(data, **kw)
    monkeypatch.setattr(files, "_inflate", zlib)
    monkeypatch.setattr(files, "_INFLATE_ERRORS", (zlib.error,))
    assert _outcome(data, **kw) == with_isal


def test_isal_output_is_bounded_per_call():
    """The bound the bomb guard relies on: one decompress call returns at most max_length bytes."""
    d = isal_zlib.decompressobj(wbits=31)
    piece = d.decompress(gzip.compress(b"\0" * (20 << 20)), 1 << 20)
    assert len(piece) == 1 << 20 and d.unconsumed_tail and not d.eof


def test_bomb_without_a_header_limit_stops_at_the_limit():
    with pytest.raises(InputError, match="decompresses to more than the 0.954 MiB"):
        gunzip_bounded(gzip.compress(b"\0" * (20 << 20)), "bomb.gz", limit=1_000_000)


def test_isal_error_becomes_input_error():
    with pytest.raises(InputError, match="truncated or corrupt gzip data"):
        gunzip_bounded(b"\x1f\x8b\x08\x00" + b"\xff" * 200, "junk.gz")
