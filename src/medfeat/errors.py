"""Errors raised at medfeat's edges."""
from __future__ import annotations

import os
import unicodedata


#: the reason given for a path holding a NUL byte (from a CSV cohort, say), which the OS refuses with
#: ValueError rather than an OSError
NUL_IN_NAME = "file name holds a NUL byte: no such file"


def _escape(text: str) -> str:
    """``text`` with control characters (newlines included), line and paragraph separators and
    undecodable file-name bytes (surrogate escapes) written as Python escapes; everything else,
    backslashes and non-ASCII letters included, is kept as it is."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp"):
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or repr(ch)[1:-1])
        elif cat == "Cs":  # a byte that was not UTF-8 in a file name (os.fsdecode's surrogateescape)
            code = ord(ch)
            out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


class InputError(ValueError):
    """Bad input: names the offending file and the reason.

    Raised by readers and by :func:`medfeat.extract` when an image, a mask or a
    setting cannot be used. ``str(err)`` is a one-line message ``"<path>: <reason>"``: control
    characters (a newline in a file name, or in a library's message) are escaped, so the message
    never spans lines and can always be printed. ``path`` and ``reason`` keep the raw values.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = "" if path is None else os.fspath(path)
        if isinstance(self.path, bytes):
            self.path = os.fsdecode(self.path)
        self.reason = reason
        shown = _escape(self.path)
        if shown != self.path:  # quoted, so the escapes are not read as part of a plain name
            shown = f'"{shown}"'
        super().__init__(f"{shown}: {_escape(str(reason))}" if self.path else _escape(str(reason)))
