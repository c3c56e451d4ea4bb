"""File access shared by the readers: every failure becomes an :class:`InputError` naming the file.

Every reader gets its bytes through :func:`open_regular` (or :func:`read_file` / :func:`read_head`,
built on it), so one place refuses what is not a regular file *before* anything is read: a FIFO
would block the read forever, a character device (``/dev/zero``, ``/dev/urandom``) would be read
until memory runs out. The file is opened non-blocking (opening a FIFO without a writer would
itself block) and checked with ``fstat`` on the opened descriptor, so a path swapped between a
check and the open cannot slip through.

The size limits below bound what one read may cost; the readers check a header's claims against
:data:`MAX_IMAGE_BYTES` before any pixel buffer exists.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import zlib
from pathlib import Path

from medfeat.errors import NUL_IN_NAME, InputError

try:  # ISA-L's inflate (python-isal): the same streams, ~2x faster on CT volumes, ~5x on masks
    from isal import isal_zlib as _inflate
    _INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _inflate.error)
except ImportError:  # pragma: no cover - isal is a dependency; zlib does the same, slower
    _inflate = zlib
    _INFLATE_ERRORS = (zlib.error,)

__all__ = ["MAX_FILE_BYTES", "MAX_IMAGE_BYTES", "check_image_size", "file_sha256", "gunzip_bounded",
           "open_regular", "read_file", "read_head"]

#: Largest file (or decompressed gzip content) a reader reads into memory, in bytes.
MAX_FILE_BYTES = 4 << 30
#: Largest decoded image (all voxels, slices, frames, pages and channels at the stored sample size)
#: a reader allocates, in bytes. A 512 x 512 x 2000 CT of int16 is 1 GiB.
MAX_IMAGE_BYTES = 2 << 30

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _limit_text(n: int) -> str:
    return f"{n / (1 << 30):.3g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.3g} MiB"


def open_regular(path: str | os.PathLike) -> io.BufferedReader:
    """``path`` opened for binary reading; InputError unless it is a regular file (after symlinks).

    A FIFO, device or socket is refused without blocking and without reading a byte of it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    except ValueError:  # a NUL byte in the name (from a CSV cohort, say): no such file can exist
        raise InputError(path, NUL_IN_NAME) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(path, "is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise InputError(path, f"is {_kind(mode)}, not a regular file: refused")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """All bytes of ``path``; a missing, unreadable, non-regular or too large file raises InputError.

    At most ``limit`` (default :data:`MAX_FILE_BYTES`) bytes are read: a file that is larger, or
    that grows while it is read, is refused without reading it all.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    with open_regular(path) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise InputError(path, f"file of {size} bytes is larger than the {_limit_text(limit)} "
                                       "a reader accepts")
            # read(n) allocates n bytes at once: ask for the stat size (+1 to see the end), then
            # in bounded chunks for files whose size stat does not tell (procfs) or that grow
            data = fh.read(size + 1)
            if len(data) > size:
                parts = [data]
                total = len(data)
                while total <= limit:
                    chunk = fh.read(min(1 << 24, limit + 1 - total))
                    if not chunk:
                        break
                    parts.append(chunk)
                    total += len(chunk)
                data = b"".join(parts) if len(parts) > 1 else data
        except OSError as exc:
            raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise InputError(path, f"file is larger than the {_limit_text(limit)} a reader accepts")
    return data


def read_head(path: str | os.PathLike, n: int) -> bytes:
    """The first ``n`` bytes (fewer for a short file) of a regular file; InputError otherwise."""
    with open_regular(path) as fh:
        try:
            return fh.read(n)
        except OSError as exc:
            raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a regular file's bytes, or ``""`` when it is missing, unreadable or not a regular
    file (never blocks on a FIFO nor reads a device forever)."""
    try:
        with open_regular(path) as fh:
            h = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
            return h.hexdigest()
    except (InputError, OSError):
        return ""


def check_image_size(path, nbytes: int, what: str) -> None:
    """Refuse a header whose image (``what``, e.g. ``"512x512x40 int16"``) needs more than
    :data:`MAX_IMAGE_BYTES`; called before any pixel buffer is allocated."""
    if nbytes > MAX_IMAGE_BYTES:
        raise InputError(path, f"image too large: header says {what} ({nbytes} bytes), above the "
                               f"{_limit_text(MAX_IMAGE_BYTES)} limit (medfeat.io._files.MAX_IMAGE_BYTES)")


def gunzip_bounded(data, path, limit: int | None = None, *, need: int | None = None) -> bytearray:
    """Decompress gzip ``data`` (one or more members) without ever holding more than is allowed.

    With ``need``, exactly ``need`` bytes are decompressed (what a header says the file holds; the
    rest of the stream, trailing garbage included, is never inflated) and a stream that ends
    earlier raises InputError. Without it, everything is decompressed, but output beyond ``limit``
    (default :data:`MAX_FILE_BYTES`) raises InputError as soon as it appears (a gzip bomb costs at
    most ``limit`` bytes).

    Inflates with python-isal (ISA-L) where it is installed, else with :mod:`zlib`: the same
    bytes, the same bounds (output asked for in pieces of at most ``4 * step``).
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    cap = need if need is not None else limit
    out = bytearray()  # grown as bytes arrive: a header's claim is not memory until the data backs it
    pos = 0
    view = memoryview(data)
    step = 1 << 20
    try:
        while view and pos < cap + (need is None):
            inflater = _inflate.decompressobj(wbits=31)  # one gzip member
            while view and not inflater.eof and pos < cap + (need is None):
                chunk, view = view[:step], view[step:]
                while chunk and not inflater.eof:
                    room = cap + (need is None) - pos
                    if room <= 0:
                        break
                    piece = inflater.decompress(chunk, min(4 * step, room))  # bounded pieces
                    chunk = inflater.unconsumed_tail
                    out += piece
                    pos += len(piece)
                if chunk and not inflater.eof:  # stopped for lack of room: give the rest back
                    view = memoryview(bytes(chunk) + bytes(view))
            if pos >= cap + (need is None):
                break
            if not inflater.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            unused = inflater.unused_data
            if unused.strip(b"\0"):  # another member follows (trailing zeros are padding)
                view = memoryview(unused + bytes(view))
            else:
                view = view[:0]
    except (OSError, EOFError, *_INFLATE_ERRORS) as exc:
        raise InputError(path, f"truncated or corrupt gzip data ({exc})") from None
    if need is None:
        if pos > limit:
            raise InputError(path, f"gzip data decompresses to more than the {_limit_text(limit)} "
                                   "a reader accepts")
        return out
    if pos < need:
        raise InputError(path, f"truncated gzip data: the header needs {need} bytes but the stream "
                               f"ends after {pos}")
    return out
