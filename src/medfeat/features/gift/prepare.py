"""Getting an image into GIFT's shape: 8-bit pixels, 256 x 256, RGB."""
from __future__ import annotations

import numpy as np

from medfeat.features.gift.constants import SIZE


def to_uint8(array: np.ndarray, maxval: int | None = None) -> np.ndarray:
    """8-bit pixels for GIFT, which reads 8-bit PPM (maxval 255).

    * ``uint8`` (maxval 255 or unknown): unchanged.
    * integers with a known ``maxval`` (Netpbm, 16-bit PNG: 65535): ``rint(255 x / maxval)``, as
      ImageMagick writes an 8-bit PPM.
    * booleans: 0 / 255.
    * anything else (DICOM, NIfTI, floats, signed): linear window from the image's minimum to its
      maximum onto 0..255 (``rint``); a constant image gives 0.

    Raises
    ------
    ValueError
        NaN or infinite values.
    """
    a = np.asarray(array)
    if a.dtype == np.bool_:
        return np.where(a, np.uint8(255), np.uint8(0))
    if a.dtype == np.uint8 and (maxval is None or maxval == 255):
        return a
    if a.dtype.kind in "ui" and maxval:
        return np.clip(np.rint(a * (255.0 / maxval)), 0, 255).astype(np.uint8)
    x = a.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("image has NaN or infinite values")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.clip(np.rint((x - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def resize_to_gift(rgb: np.ndarray) -> np.ndarray:
    """Force an 8-bit image to 256 x 256, aspect ratio not kept.

    GIFT's ``gift-add-collection`` runs ``convert -geometry 256x256! image tmp.ppm``
    (ImageMagick). ImageMagick's default resize filter is Lanczos when the image shrinks and
    Mitchell when its area grows; here Pillow's Lanczos and bicubic filters stand in for them.
    They are close to ImageMagick's but not bit-identical, so features of an image that needs
    resizing may differ slightly from GIFT's; a 256 x 256 image is returned unchanged (GIFT's
    own features are then reproduced exactly).

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3) or (H, W)

    Returns
    -------
    ndarray of uint8, shape (256, 256, 3) or (256, 256)
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise ValueError(f"resize_to_gift needs uint8 pixels, got {a.dtype}; see to_uint8()")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or 0 in a.shape:
        raise ValueError(f"resize_to_gift needs an (H, W) or (H, W, 3) image, got shape {a.shape}")
    h, w = a.shape[:2]
    if (h, w) == (SIZE, SIZE):
        return a
    from PIL import Image as PILImage

    grow = SIZE * SIZE > h * w
    resample = PILImage.Resampling.BICUBIC if grow else PILImage.Resampling.LANCZOS
    img = PILImage.fromarray(np.ascontiguousarray(a))
    return np.asarray(img.resize((SIZE, SIZE), resample=resample))


def gift_rgb(image, source: str = "") -> np.ndarray:
    """A :class:`medfeat.image.Image` (or array) as GIFT reads it: 256 x 256 x 3 uint8.

    One 2-D slice is required; grey images become ``R = G = B``; pixels go through
    :func:`to_uint8` (the Netpbm ``maxval`` is honoured; 16-bit PNG counts as maxval 65535) and
    :func:`resize_to_gift`.

    Raises
    ------
    InputError
        A volume with several slices, or NaN/inf pixels.
    """
    from medfeat.errors import InputError
    from medfeat.image import Image

    img = image if isinstance(image, Image) else Image(np.asarray(image), source=source or "<array>")
    name = source or img.source or "<array>"
    arr = img.array
    if arr.shape[0] != 1:
        raise InputError(name, f"the gift family needs a 2D image; this one has {arr.shape[0]} slices")
    arr = arr[0]
    meta = img.meta or {}
    maxval = meta.get("maxval")
    if maxval is None and arr.dtype == np.uint16 and str(meta.get("mode", "")).startswith("I;16"):
        maxval = 65535
    try:
        arr = to_uint8(arr, maxval)
    except ValueError as exc:
        raise InputError(name, str(exc)) from None
    arr = resize_to_gift(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, np.newaxis], 3, axis=2)
    return arr
