"""PNG, JPEG and TIFF pictures through Pillow.

Pictures carry no anatomy-scale pixel size: a scanner's or a camera's DPI says nothing about the
tissue, so spacing is 1 mm and the DPI, when present, is kept in ``meta["dpi"]``.

Modes map to arrays as follows: ``1`` -> uint8 0/1; ``L`` -> uint8; ``P`` -> RGB, or greyscale
when every palette entry is grey; ``RGB``/``RGBA``/``CMYK``/``YCbCr`` -> RGB uint8 (alpha dropped);
``LA`` -> uint8; ``I;16*`` -> uint16; ``I`` -> int32; ``F`` -> float32.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings

import numpy as np

from medfeat.errors import InputError
from medfeat.image import Image
from medfeat.io._files import check_image_size, read_file

__all__ = ["read_pillow"]


def _frame_array(frame) -> np.ndarray:
    """One decoded Pillow frame as ``(y, x)`` or ``(y, x, 3)``."""
    mode = frame.mode
    if mode in ("P", "PA"):
        rgb = np.asarray(frame.convert("RGB"))
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return rgb[..., 0].copy()  # a grey palette is a greyscale picture
        return rgb
    if mode == "1":
        return np.asarray(frame).astype(np.uint8)  # bilevel: keep the stored 0/1
    if mode in ("L", "I", "F"):
        return np.asarray(frame)
    if mode in ("LA", "La"):
        return np.asarray(frame.convert("L"))  # drop alpha: it is not an intensity
    if mode.startswith("I;16"):
        arr = np.asarray(frame)
        return arr.astype(arr.dtype.newbyteorder("="))  # I;16B arrives big-endian
    # RGB and everything else with colour (RGBA, RGBX, CMYK, YCbCr, LAB, HSV): RGB without alpha
    return np.asarray(frame.convert("RGB"))


def read_pillow(path: str | os.PathLike, data: bytes | None = None) -> Image:
    """Read a PNG, JPEG or TIFF file.

    Parameters
    ----------
    path : str or path-like
        The file; named in error messages.
    data : bytes, optional
        The file's content, when the caller has already read it.

    Returns
    -------
    Image
        ``(1, y, x)`` or ``(1, y, x, 3)``; a multi-page TIFF whose pages share size and mode becomes
        a ``(pages, y, x[, 3])`` stack. Spacing 1 mm.

    Raises
    ------
    InputError
        Unreadable, truncated or corrupt files, pictures above Pillow's decompression-bomb limit
        (``PIL.Image.MAX_IMAGE_PIXELS``) and TIFF pages that differ in size or mode.
    """
    from PIL import Image as PILImage

    if data is None:
        data = read_file(path)
    if not data:
        raise InputError(path, "empty file")
    try:
        with warnings.catch_warnings():
            # Other Pillow warnings (corrupt EXIF or TIFF tags, odd metadata, palette notes) are
            # about metadata the reader does not use: dropped, not leaked to stderr. Filters added
            # later take precedence, so the bomb warning below still raises.
            warnings.simplefilter("ignore")
            # Pillow only warns between 1x and 2x MAX_IMAGE_PIXELS; a reader refuses both: the
            # picture is suspect (or too large to decode safely), so the warning becomes the error.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as im:
                fmt, info = im.format, dict(im.info)
                # Only TIFF pages form a stack; other formats' extra frames (APNG, MPO) are
                # animations or previews, so the first frame is the picture.
                n = getattr(im, "n_frames", 1) if fmt == "TIFF" else 1
                # Every page's size from its header, before any is decoded: a small file whose
                # pages (each under Pillow's per-image limit) add up to gigabytes is refused here.
                total, sizes = 0, set()
                for i in range(n):
                    im.seek(i)
                    total += _decoded_bytes(im)
                    sizes.add(f"{im.size[0]}x{im.size[1]} {im.mode}")
                check_image_size(path, total, f"{n} page(s) of {', '.join(sorted(sizes)[:3])}")
                frames, modes = [], []
                for i in range(n):
                    im.seek(i)
                    im.load()
                    modes.append(im.mode)
                    frames.append(_frame_array(im))
    except InputError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise InputError(path, f"image too large to decode safely ({exc})") from None
    except PILImage.UnidentifiedImageError:
        raise InputError(path, "not a readable PNG/JPEG/TIFF image (unidentified or corrupt header)") from None
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error ...
        raise InputError(path, f"truncated or corrupt {_name(data)} data ({type(exc).__name__}: {exc})") from None
    if any(m != modes[0] or f.shape != frames[0].shape for m, f in zip(modes, frames)):
        found = sorted({f"{m} {f.shape[1]}x{f.shape[0]}" for m, f in zip(modes, frames)})
        raise InputError(path, f"TIFF pages differ in size or mode ({', '.join(found)}); cannot stack them")
    meta = {"format": fmt.lower(), "mode": modes[0]}
    if n > 1:
        meta["pages"] = n
    if info.get("dpi"):
        meta["dpi"] = tuple(float(d) for d in info["dpi"])
    return Image(np.stack(frames), source=str(path), sha256=hashlib.sha256(data).hexdigest(), meta=meta)


def _decoded_bytes(im) -> int:
    """What one page costs decoded: Pillow's own buffer (4 bytes a pixel for multi-band modes)
    plus the array made from it (RGB for colour and palettes)."""
    w, h = im.size
    bands = len(im.getbands())
    sample = 4 if im.mode in ("I", "F") or im.mode.startswith("I;32") else 2 if im.mode.startswith("I;16") else 1
    pillow = w * h * (4 if bands > 1 else sample)
    array = w * h * (3 if im.mode not in ("1", "L", "I", "F", "LA", "La") and not im.mode.startswith("I;16")
                     else 1) * sample
    return pillow + array


def _name(data: bytes) -> str:
    if data[:4] == b"\x89PNG":
        return "PNG"
    return "JPEG" if data[:2] == b"\xff\xd8" else "TIFF"
