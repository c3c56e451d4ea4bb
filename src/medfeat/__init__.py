"""medfeat: fast, IBSI-validated feature extraction from medical images."""
from __future__ import annotations

__version__ = "0.1.0"

from medfeat.errors import InputError
from medfeat.image import Image

__all__ = ["Image", "InputError", "__version__", "extract", "read_image", "Settings"]


def __getattr__(name):  # lazy: keep `import medfeat` cheap for workers and the CLI
    if name in ("extract", "Settings"):
        from medfeat import extract as _extract_mod

        return getattr(_extract_mod, "extract" if name == "extract" else "Settings")
    if name == "read_image":
        from medfeat.io import read_image

        return read_image
    raise AttributeError(name)
