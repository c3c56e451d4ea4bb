"""medfeat: fast, IBSI-validated feature extraction from medical images."""
from __future__ import annotations

__version__ = "0.1.0"

# numba's cache goes to a per-user folder (not inside the installed package) before any kernel
# module is imported: see medfeat._numba_cache.
from medfeat._numba_cache import configure as _configure_numba_cache  # noqa: E402

_configure_numba_cache(__version__)

from medfeat.errors import InputError  # noqa: E402
from medfeat.image import Image  # noqa: E402
from medfeat.settings import Settings  # noqa: E402
from medfeat.columns import feature_columns  # noqa: E402
from medfeat.pipeline import extract  # noqa: E402  (no module medfeat.extract: the name is the function)

__all__ = ["Image", "InputError", "Settings", "__version__", "extract", "feature_columns", "read_image"]


def read_image(path):
    """Read an image file or DICOM series folder: see :func:`medfeat.io.read_image`."""
    from medfeat.io import read_image as _read

    return _read(path)
