"""PNG, JPEG and TIFF through Pillow.

Pixel sizes are not read from DPI (a scanner's dots per inch say nothing about anatomy): spacing is
1 mm and the DPI, when present, is kept in ``meta``.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np

from medfeat.errors import InputError


def _frame_array(frame) -> np.ndarray:
    mode = frame.mode
    if mode == "P":
        pal = frame.convert("RGB")
        arr = np.asarray(pal)
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
            return arr[..., 0]  # a grey palette is a greyscale image
        return arr
    if mode in ("RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(frame.convert("RGB"))
    if mode == "LA":
        return np.asarray(frame.convert("L"))
    if mode == "1":
        return np.asarray(frame, dtype=np.uint8)
    if mode.startswith("I;16"):
        return np.asarray(frame).astype(np.uint16)
    return np.asarray(frame)


def read_pillow(path: str | os.PathLike, data: bytes | None = None):
    """Read PNG/JPEG/TIFF into an :class:`~medfeat.image.Image`; a multi-page TIFF becomes a z stack."""
    from PIL import Image as PILImage, UnidentifiedImageError

    from medfeat.image import Image

    src = io.BytesIO(data) if data is not None else path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(src) as im:
                fmt = im.format
                dpi = im.info.get("dpi")
                frames = []
                for i in range(getattr(im, "n_frames", 1)):
                    im.seek(i)
                    im.load()
                    frames.append(_frame_array(im))
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise InputError(path, f"image too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise InputError(path, "not a readable PNG/JPEG/TIFF image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"truncated or corrupt image data ({exc})") from None
    if any(f.shape != frames[0].shape or f.dtype != frames[0].dtype for f in frames):
        raise InputError(path, "TIFF pages differ in size or type; cannot stack them")
    meta = {"format": fmt}
    if dpi:
        meta["dpi"] = tuple(float(d) for d in dpi)
    return Image(np.stack(frames), source=str(path), meta=meta)
