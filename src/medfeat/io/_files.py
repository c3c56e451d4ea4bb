"""File access shared by the readers: every failure becomes an :class:`InputError` naming the file."""
from __future__ import annotations

import os
from pathlib import Path

from medfeat.errors import InputError


def read_file(path: str | os.PathLike) -> bytes:
    """All bytes of ``path``; a missing, unreadable or non-regular file raises InputError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
