"""Errors raised at medfeat's edges."""
from __future__ import annotations

import os


class InputError(ValueError):
    """Bad input: names the offending file and the reason.

    Raised by readers and by :func:`medfeat.extract` when an image, a mask or a
    setting cannot be used. ``str(err)`` is a one-line message ``"<path>: <reason>"``.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = "" if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)
