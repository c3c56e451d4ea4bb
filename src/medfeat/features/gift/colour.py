"""GIFT's colours: HSV bytes (``rgb2hsv_ppm``), the 166 quantised colours (``hsv_quantize_ppm``)
and the colour counts of the blocks. See :mod:`medfeat.features.gift` for the definitions."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from medfeat.features.gift.constants import (
    GREY_LEVELS,
    N_CHROMATIC,
    N_GABOR_BLOCKS,
    N_HUES,
    N_SATURATIONS,
    N_VALUES,
    SIZE,
    check_grey_levels,
)

_NOT_ONE = 0.99999999           # hsv_quantize_ppm's guard against the top bin
_UNIT = np.arange(256, dtype=np.float64) / 255.0  # (double)byte / max_col, as rgb2hsv_ppm


@lru_cache(maxsize=None)
def colour_luts(grey_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hue_bin[h], base[M, m])``: colour = hue_bin[h] + base[max byte, min byte].

    ``base`` holds ``18 s + 54 v`` for chromatic pixels (``M != m``) and the grey colour for
    ``M == m`` (where GIFT's ``h = s = 0``; ``hue_bin[0] = 0``). Same double operations as GIFT.
    """
    byte = np.arange(256, dtype=np.float64)
    hue_bin = np.floor(_NOT_ONE * (byte / 255.0) * N_HUES).astype(np.uint8)
    mx = _UNIT[:, None]
    mn = _UNIT[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        sat = np.where(mx == 0, 0.0, (mx - mn) / mx)
    s_byte = np.rint(sat * 255.0)
    v_byte = np.rint(_UNIT * 255.0)
    s_bin = np.floor(_NOT_ONE * (s_byte / 255.0) * N_SATURATIONS)
    v_bin = np.floor(_NOT_ONE * (v_byte / 255.0) * N_VALUES)
    base = 18 * s_bin + 54 * v_bin[:, None]
    grey = N_CHROMATIC + np.floor(_NOT_ONE * (v_byte / 255.0) * grey_levels)
    idx = np.arange(256)
    base[idx, idx] = grey
    return hue_bin, np.ascontiguousarray(base.astype(np.uint8))


_TIE = 255  # marks a hue cell that needs GIFT's double arithmetic


@lru_cache(maxsize=None)
def _hue_bin_lut() -> np.ndarray:
    """Hue bin of a pixel from its hexcone position ``t`` and chroma ``d = M - m`` (bytes).

    With ``t = g - b`` (red is the maximum), ``2 d + b - r`` (green) or ``4 d + r - g`` (blue),
    GIFT's hue byte is ``rint(255 H / 360)`` of ``H = 60 t / d (+ 360 if t < 0)``, i.e. the
    rational ``(85 t + 510 d [t < 0]) / (2 d)`` rounded. Where that rational is not a tie (at least
    ``1 / (2 d)`` away from one: far beyond double rounding), GIFT's double arithmetic gives the
    same byte, and the table holds its hue bin; exact ties are marked :data:`_TIE` and computed
    with GIFT's arithmetic (:func:`_hue_bytes`). Index: ``(t + 255) * 256 + d``.
    """
    hue_bin = colour_luts(GREY_LEVELS)[0]
    t = np.arange(-255, 5 * 255 + 1)[:, None]
    d = np.arange(256)[None, :]
    num = 85 * t + 510 * d * (t < 0)
    two_d = np.maximum(2 * d, 1)
    byte = np.clip((num + d) // two_d, 0, 255)
    lut = hue_bin[byte]
    lut = np.where(num % two_d == d, _TIE, lut).astype(np.uint8)
    lut[255, 0] = 0  # d = 0: grey, hue 0
    return lut.ravel()


def rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GIFT's HSV bytes of an 8-bit RGB image (``rgb2hsv_ppm``).

    Parameters
    ----------
    rgb : ndarray, uint8, shape (..., 3)

    Returns
    -------
    h, s, v : ndarray of uint8
        ``rint(255 H / 360)``, ``rint(255 S)``, ``rint(255 V)``, see the module docstring.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    big = np.maximum(np.maximum(r, g), b)
    small = np.minimum(np.minimum(r, g), b)
    h = np.zeros(big.shape, dtype=np.uint8)
    chroma = big != small
    if chroma.any():
        h[chroma] = _hue_bytes(r[chroma], g[chroma], b[chroma], big[chroma], small[chroma])
    mx, mn = _UNIT[big], _UNIT[small]
    with np.errstate(divide="ignore", invalid="ignore"):
        sat = np.where(mx == 0, 0.0, (mx - mn) / mx)
    return h, np.rint(sat * 255.0).astype(np.uint8), np.rint(mx * 255.0).astype(np.uint8)


def _hue_bytes(r, g, b, big, small) -> np.ndarray:
    """GIFT's hue byte of chromatic pixels (``big != small``), 1-D arrays of bytes."""
    bmax = b == big
    gmax = (g == big) & ~bmax
    # C's three successive ifs: the last true one wins (B over G over R)
    p = np.where(bmax, r, np.where(gmax, b, g))
    q = np.where(bmax, g, np.where(gmax, r, b))
    offset = np.where(bmax, 4.0, np.where(gmax, 2.0, 0.0))  # 0.0 + x == x: the R case is exact too
    hue = (offset + (_UNIT[p] - _UNIT[q]) / (_UNIT[big] - _UNIT[small])) * 60.0
    hue = np.where(hue < 0, hue + 360.0, hue)
    return np.rint((hue / 360.0) * 255.0).astype(np.uint8)


def quantize_colours(rgb: np.ndarray, grey_levels: int = GREY_LEVELS) -> np.ndarray:
    """GIFT's colour index (0..161 chromatic, 162.. greys) of every pixel of an 8-bit RGB image.

    Equal to quantising :func:`rgb_to_hsv` as ``hsv_quantize_ppm`` does, computed from integer
    tables (:func:`_hue_bin_lut`) with GIFT's double arithmetic where a hue is an exact tie.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (..., 3)
    grey_levels : int
        Number of grey bins ``G`` (GIFT: 4).

    Returns
    -------
    ndarray of uint8, shape ``rgb.shape[:-1]``
    """
    hue_bin, base = colour_luts(check_grey_levels(grey_levels))
    rgb = np.asarray(rgb, dtype=np.uint8)
    r8, g8, b8 = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    big8 = np.maximum(np.maximum(r8, g8), b8)
    small8 = np.minimum(np.minimum(r8, g8), b8)
    r, g, b = r8.astype(np.int32), g8.astype(np.int32), b8.astype(np.int32)
    big = big8.astype(np.int32)
    d = big - small8
    t = g - b                                      # red is the maximum ...
    np.copyto(t, 2 * d + b - r, where=g == big)   # ... unless green is (GIFT's later tests win)
    np.copyto(t, 4 * d + r - g, where=b == big)   # ... unless blue is
    t += 255
    t *= 256
    t += d
    hue = np.take(_hue_bin_lut(), t)
    tie = hue == _TIE
    if tie.any():
        hue[tie] = hue_bin[_hue_bytes(r8[tie], g8[tie], b8[tie], big8[tie], small8[tie])]
    hue += np.take(base.ravel(), big * 256 + small8)
    return hue


@lru_cache(maxsize=None)
def _block_of_pixel() -> np.ndarray:
    """Index (0..255) of the 16 x 16 block of each pixel, row-major, as a flat array."""
    y, x = np.divmod(np.arange(SIZE * SIZE), SIZE)
    return ((y // 16) * 16 + x // 16).astype(np.intp)


def colour_block_counts(colours: np.ndarray, n_colours: int) -> list[np.ndarray]:
    """Colour counts of the blocks at each scale: ``[(16, 16, nc), (8, 8, nc), (4, 4, nc), (2, 2, nc)]``."""
    key = _block_of_pixel() * n_colours + colours.ravel()
    counts = np.bincount(key, minlength=N_GABOR_BLOCKS * n_colours).reshape(16, 16, n_colours)
    levels = [counts]
    while levels[-1].shape[0] > 2:
        c = levels[-1]
        k = c.shape[0] // 2
        levels.append(c.reshape(k, 2, k, 2, n_colours).sum(axis=(1, 3)))
    return levels
