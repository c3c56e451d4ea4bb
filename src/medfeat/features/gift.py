"""GNU GIFT 0.1.15a retrieval features: colour blocks, colour histogram, Gabor blocks and histograms.

GIFT (the GNU Image-Finding Tool) describes an image by a sparse set of binary and histogram
features, inspired by text retrieval (each feature is a "term" of an inverted file) [1]_ [2]_.
This module reproduces ``gift-extract-features`` of GIFT 0.1.15a *exactly*: the same feature
ids, in the same order, with the same float32 values, and byte-identical ``.fts`` files (checked
against 100 images GIFT processed, ``tests/test_gift.py``).

Definition
----------
The image is forced to 256 x 256 (:func:`resize_to_gift`; GIFT's ``gift-add-collection`` runs
``convert -geometry 256x256!``) and read as 8-bit RGB ``(R, G, B) / 255``.

*HSV bytes* (Foley & van Dam; ``rgb2hsv_ppm``), in double precision::

    M = max(R, G, B),  m = min(R, G, B),  d = M - m
    V = M,  S = d / M (0 if M = 0)
    H' = (G - B) / d        if R = M      (later tests win: B = M over G = M over R = M)
    H' = 2 + (B - R) / d    if G = M
    H' = 4 + (R - G) / d    if B = M
    H = 60 H' (+ 360 if negative); H = 0 when S = 0
    h, s, v = rint(H / 360 * 255), rint(255 S), rint(255 V)           (bytes, rint: half to even)

*Colours* (``hsv_quantize_ppm``, 18 hues x 3 saturations x 3 values + 4 greys = 166), with
``c = 0.99999999``::

    colour = floor(c h/255 * 18) + 18 floor(c s/255 * 3) + 54 floor(c v/255 * 3)
    colour = 162 + floor(c v/255 * G)        for greys (h = s = 0), G = grey_levels = 4

*Colour blocks*: 340 blocks -- 256 of 16 x 16 px, then 64 of 32 x 32, 16 of 64 x 64 and 4 of
128 x 128, each scale row by row -- each gives its most frequent colour (the lowest colour on a
tie). *Colour histogram*: the pixel count of each colour over the image.

*Gabor texture* (``gabor.c``) on the value plane ``v`` (0..255): 3 scales ``i`` x 4 orientations
``j``, ``theta_j = j pi / 4``, centre frequency ``u_i = 0.375 / 2^i`` cycles/px,
``sigma_i = 3 sqrt(2 ln 2) / (2 pi u_i)`` (about 1.5, 3, 6 px), kernels of ``K_i = 9, 17, 35`` px.
With ``g(x) = exp(-x^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)``, ``a = u cos(theta)``,
``b = u sin(theta)``, the filter is the real part of a separable complex Gabor filter::

    f = (g cos(2 pi a x)) *_x (g cos(2 pi b y)) *_y v  -  (g sin(2 pi a x)) *_x (g sin(2 pi b y)) *_y v

(``*`` convolution, zero outside the image). Per 16 x 16 block ``k`` (256 blocks, row by row),
the RMS energy ``E = sqrt(sum(f^2) / 256)`` falls into band ``n`` = number of limits
``2, 3, ..., 10, 100000`` that are ``<= E`` (band 0: ``E < 2``). Each filter also gives the
histogram of its 256 block bands.

Feature ids and values (the ``.fts`` file, ids ascending; ``nc`` = number of colours = 166)::

    colour block    k * nc + colour                               1.0   (all 340)
    colour hist     340 nc + colour                               rint(255 n / 65536) / 255, if > 0
    Gabor block     341 nc + ((4 i + j) 256 + k) 10 + band        1.0   (band > 0 only)
    Gabor hist      341 nc + 30720 + (4 i + j) 10 + band          rint(255 n / 256) / 255, if n > 0

GIFT stores ``rint(255 x)`` as an integer, then writes ``(float)q / (float)255`` (float32).

Exactness
---------
Colours are computed with the same double-precision operations, in the same order, as GIFT's C.
The Gabor energies are computed fast with FFTs, then every block whose energy lies within a proven
error bound of a band limit is recomputed with GIFT's own arithmetic: direct convolutions with
the taps accumulated in GIFT's order, in double precision, and the block's squares summed in
GIFT's order. Bands therefore equal GIFT's. The kernels use the C library's ``exp``, ``sin`` and
``cos`` (Python's :mod:`math`), as GIFT did.

Option: more grey levels
------------------------
``grey_levels`` (default 4, GIFT's) sets the number of grey bins ``G`` (1..94: GIFT's colour
map holds at most 256 colours). Medical images are mostly grey, and 4 grey bins leave little to
tell them apart; ``G > 4`` gives finer grey histograms and block colours. Any value but 4 makes
the features **not GIFT-compatible**: ``nc = 162 + G`` and every id above the first block moves
(it is what a GIFT built with ``numGrey = G`` would produce).

References
----------
.. [1] Squire D. McG., Mueller W., Mueller H., Raki J. "Content-based query of image databases,
   inspirations from text retrieval: inverted files, frequency-based weights and relevance
   feedback." Scandinavian Conference on Image Analysis (SCIA), 1999, 143-149.
.. [2] Squire D. McG., Mueller W., Mueller H., Pun T. "Content-based query of image databases:
   inspirations from text retrieval." Pattern Recognition Letters 21 (2000) 1193-1198.
.. [3] GNU GIFT 0.1.15a, ``FeatureExtraction/`` (``extract_block_features.c``, ``gabor.c``,
   ``rgb2hsv_utils.c``, ``hsv_quantize_ppm``).
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from medfeat.features.base import FeatureDef, column

FAMILY = "gift"

SIZE = 256                      # GIFT's image side
N_HUES, N_SATURATIONS, N_VALUES = 18, 3, 3
N_CHROMATIC = N_HUES * N_SATURATIONS * N_VALUES  # 162
GREY_LEVELS = 4                 # GIFT's number of greys
MAX_GREY_LEVELS = 256 - N_CHROMATIC  # 94: GIFT's colour map holds at most 256 colours
N_COLOURS = N_CHROMATIC + GREY_LEVELS  # 166
BLOCK_SIDES = (16, 32, 64, 128)
BLOCKS_PER_SCALE = tuple((SIZE // s) ** 2 for s in BLOCK_SIDES)  # 256, 64, 16, 4
N_BLOCKS = sum(BLOCKS_PER_SCALE)  # 340
N_SCALES, N_ORIENTATIONS = 3, 4
N_FILTERS = N_SCALES * N_ORIENTATIONS
GABOR_BLOCK = 16
N_GABOR_BLOCKS = (SIZE // GABOR_BLOCK) ** 2  # 256
N_BANDS = 10
#: Band limits of the Gabor block energies (``gabor_ranges`` in GIFT).
BAND_LIMITS = np.array([2, 3, 4, 5, 6, 7, 8, 9, 10, 100000], dtype=np.float64)
KERNEL_SIZES = (9, 17, 35)
FREQ_MAX = 255                  # GIFT stores frequencies as integers 0..FREQ_MAX
_NOT_ONE = 0.99999999           # hsv_quantize_ppm's guard against the top bin


def _check_grey_levels(grey_levels: int) -> int:
    g = int(grey_levels)
    if g != grey_levels or not 1 <= g <= MAX_GREY_LEVELS:
        raise ValueError(f"grey_levels must be an integer in 1..{MAX_GREY_LEVELS}, not {grey_levels!r}")
    return g


@dataclass(frozen=True)
class IdLayout:
    """Where each part of the features lies in GIFT's id space (``n_colours = 162 + grey_levels``)."""

    n_colours: int

    @property
    def colour_hist(self) -> int:
        """First colour-histogram id (56440 for GIFT's 166 colours)."""
        return N_BLOCKS * self.n_colours

    @property
    def gabor_blocks(self) -> int:
        """First Gabor-block id (56606)."""
        return self.colour_hist + self.n_colours

    @property
    def gabor_hist(self) -> int:
        """First Gabor-histogram id (87326)."""
        return self.gabor_blocks + N_FILTERS * N_GABOR_BLOCKS * N_BANDS

    @property
    def n_features(self) -> int:
        """Size of the id space (87446): the length of the dense vector."""
        return self.gabor_hist + N_FILTERS * N_BANDS


def id_layout(grey_levels: int = GREY_LEVELS) -> IdLayout:
    """The id layout for ``grey_levels`` greys (GIFT: 4, ids 0..87445)."""
    return IdLayout(N_CHROMATIC + _check_grey_levels(grey_levels))


# ---------------------------------------------------------------------------------------------
# colours
# ---------------------------------------------------------------------------------------------
_UNIT = np.arange(256, dtype=np.float64) / 255.0  # (double)byte / max_col, as rgb2hsv_ppm


@lru_cache(maxsize=None)
def _colour_luts(grey_levels: int) -> tuple[np.ndarray, np.ndarray]:
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
    hue_bin = _colour_luts(GREY_LEVELS)[0]
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
    hue_bin, base = _colour_luts(_check_grey_levels(grey_levels))
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


# ---------------------------------------------------------------------------------------------
# Gabor filters
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def gabor_kernels() -> np.ndarray:
    """GIFT's 1-D Gabor kernels, shape ``(3 scales, 4 orientations, 4, 35)``, zero-padded.

    ``[i, j, 0]`` = g cos(2 pi a x) (along x), ``[i, j, 1]`` = g cos(2 pi b y) (along y),
    ``[i, j, 2]`` = g sin(2 pi a x), ``[i, j, 3]`` = g sin(2 pi b y), for ``x = -c..c``,
    ``c = K_i // 2``, in the first ``K_i`` entries. Computed with the C library's functions and
    GIFT's expressions (``create_filter_kernels``), operation by operation.
    """
    out = np.zeros((N_SCALES, N_ORIENTATIONS, 4, max(KERNEL_SIZES)), dtype=np.float64)
    u0 = 0.5 / (1.0 + 1.0 / 3.0)
    for i, size in enumerate(KERNEL_SIZES):
        sigma = 3.0 * math.sqrt(2.0 * math.log(2.0)) / (2.0 * math.pi * u0)
        xc = size // 2
        for j in range(N_ORIENTATIONS):
            theta = j * (math.pi / N_ORIENTATIONS)
            u = u0 * math.cos(theta)
            v = u0 * math.sin(theta)
            for x in range(size):
                d = x - xc
                gauss = 1 / (math.sqrt(2 * math.pi) * sigma) * math.exp(float(-(d * d)) / (2 * (sigma * sigma)))
                out[i, j, 0, x] = gauss * math.cos(2 * math.pi * u * d)
                out[i, j, 1, x] = gauss * math.cos(2 * math.pi * v * d)
                out[i, j, 2, x] = gauss * math.sin(2 * math.pi * u * d)
                out[i, j, 3, x] = gauss * math.sin(2 * math.pi * v * d)
        u0 = u0 / 2
    return out


def gabor_filter_exact(value: np.ndarray, scale: int, orientation: int) -> np.ndarray:
    """One Gabor filter's output on a whole image, with GIFT's arithmetic (slow reference).

    Direct convolutions in double precision, the taps accumulated in GIFT's order: ``x`` pass
    with ``k11``, ``y`` pass with ``k12`` added tap by tap, then ``x`` pass with ``k21`` and its
    ``y`` pass with ``k22`` subtracted tap by tap. Zero outside the image.

    Parameters
    ----------
    value : ndarray, shape (H, W)
        The value plane (0..255).
    scale, orientation : int
        Filter ``i`` (0..2) and ``j`` (0..3).

    Returns
    -------
    ndarray of float64, shape (H, W)
    """
    v = np.asarray(value, dtype=np.float64)
    return _filter_windows(v[np.newaxis], np.array([scale * N_ORIENTATIONS + orientation]), pad_input=True)[0]


def _filter_windows(windows: np.ndarray, filters: np.ndarray, pad_input: bool = False) -> np.ndarray:
    """GIFT's filtering of a batch of windows (one filter each, all of one scale).

    ``windows`` (n, h + 2c, w + 2c) hold the input with a margin of ``c`` on each side (zero
    outside the image); returns the (n, h, w) outputs. ``pad_input`` adds a zero margin first.
    Adding ``k * 0`` where GIFT skips a tap outside the image changes no value.
    """
    scale = int(filters[0]) // N_ORIENTATIONS
    size = KERNEL_SIZES[scale]
    c = size // 2
    kern = gabor_kernels().reshape(N_FILTERS, 4, -1)[filters][:, :, :size]  # (n, 4, K)
    if pad_input:
        windows = np.pad(windows, ((0, 0), (c, c), (c, c)))
    n, hh, ww = windows.shape
    h, w = hh - 2 * c, ww - 2 * c
    out = np.zeros((n, h, w))
    for first, second, sign in ((0, 1, 1.0), (2, 3, -1.0)):
        conv = np.zeros((n, hh, w))
        k1 = kern[:, first, :, None, None]
        for t in range(-c, c + 1):  # conv[y, x] += k[t + c] * image[y, x - t]
            conv += k1[:, t + c] * windows[:, :, c - t:c - t + w]
        k2 = kern[:, second, :, None, None]
        for t in range(-c, c + 1):  # output[y, x] +/-= k[t + c] * conv[y - t, x]
            term = k2[:, t + c] * conv[:, c - t:c - t + h, :]
            if sign > 0:
                out += term
            else:
                out -= term
    return out


_FFT_SIZE = 288  # >= 256 + 17 (largest kernel half-width): linear, not circular, convolution


@lru_cache(maxsize=None)
def _filter_spectra() -> np.ndarray:
    """Real FFTs of the 12 Gabor filters' 2-D kernels on the padded grid, (12, 288, 145)."""
    kern = gabor_kernels()
    n = _FFT_SIZE
    out = np.empty((N_FILTERS, n, n // 2 + 1), dtype=np.complex128)
    for i, size in enumerate(KERNEL_SIZES):
        c = size // 2
        wrap = np.arange(-c, c + 1) % n
        for j in range(N_ORIENTATIONS):
            k11, k12, k21, k22 = kern[i, j, :, :size]
            grid = np.zeros((n, n))
            grid[np.ix_(wrap, wrap)] = np.outer(k12, k11) - np.outer(k22, k21)  # [y, x]
            out[i * N_ORIENTATIONS + j] = np.fft.rfft2(grid)
    return out


_BUFFERS = threading.local()  # per-thread work arrays: no page faults on each call


def _work_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    bufs = getattr(_BUFFERS, "arrays", None)
    if bufs is None:
        n = _FFT_SIZE
        bufs = (np.zeros((n, n)), np.empty((n, n // 2 + 1), dtype=np.complex128), np.empty((SIZE, n)),
                np.empty((N_FILTERS, SIZE, SIZE // GABOR_BLOCK)))
        _BUFFERS.arrays = bufs
    return bufs


_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"  # numpy.fft functions take out=


# Error bound of the FFT energies (see _gabor_energies): |E_fft - E| <= _FFT_ERROR * ||v||_2 + tiny.
# Double-precision FFT convolution: ||f_fft - f||_2 <= 5 log2(288^2) u ||H||_inf ||v||_2 with
# u = 2^-53, ||H||_inf < 0.54 (the filters' peak gain), and a block's RMS error is at most
# ||f_fft - f||_2 / 16: about 3e-16 ||v||_2. The margin is 100 times that; measured errors are
# another 100 times smaller. The 1e-12 E term covers the rounding of the block sums and the sqrt.
_FFT_ERROR = 3e-14


def _gabor_energies(value: np.ndarray) -> np.ndarray:
    """RMS energy of each 16 x 16 block for each filter, (12, 256), banding exactly as GIFT.

    The filters run as FFT convolutions (double precision); blocks whose energy lies within the
    FFT's error bound of a band limit are recomputed with GIFT's arithmetic
    (:func:`_exact_block_energies`), so ``band(E)`` is GIFT's band for every block.
    """
    n = _FFT_SIZE
    v = np.asarray(value, dtype=np.float64)
    padded, prod, filtered, sums = _work_arrays()
    padded[:SIZE, :SIZE] = v  # the rest stays 0
    spec = np.fft.rfft2(padded)
    spectra = _filter_spectra()
    for i in range(N_FILTERS):
        np.multiply(spec, spectra[i], out=prod)
        if _FFT_OUT:
            np.fft.ifft(prod, axis=0, out=prod)
            np.fft.irfft(prod[:SIZE], n=n, axis=1, out=filtered)
            f = filtered
        else:  # pragma: no cover - numpy < 2
            f = np.fft.irfft(np.fft.ifft(prod, axis=0)[:SIZE], n=n, axis=1)
        blocks = f[:, :SIZE].reshape(SIZE, SIZE // GABOR_BLOCK, GABOR_BLOCK)
        np.einsum("ybx,ybx->yb", blocks, blocks, out=sums[i])  # sum of squares along each block row
    total = sums.reshape(N_FILTERS, SIZE // GABOR_BLOCK, GABOR_BLOCK, SIZE // GABOR_BLOCK).sum(axis=2)
    energy = np.sqrt(np.maximum(total, 0.0) / (GABOR_BLOCK * GABOR_BLOCK)).reshape(N_FILTERS, N_GABOR_BLOCKS)
    tol = _FFT_ERROR * float(np.sqrt(np.sum(v * v))) + 1e-12 * energy
    near = np.abs(energy[..., np.newaxis] - BAND_LIMITS).min(axis=-1) <= tol
    if near.any():
        fi, bi = np.nonzero(near)
        energy[fi, bi] = _exact_block_energies(v, fi, bi)
    return energy


def _exact_block_energies(value: np.ndarray, filters: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """GIFT's block energies, computed GIFT's way, for the given (filter, block) pairs."""
    pad = max(KERNEL_SIZES) // 2
    vp = np.pad(np.asarray(value, dtype=np.float64), pad)
    out = np.empty(len(filters))
    scales = filters // N_ORIENTATIONS
    for s in np.unique(scales):
        sel = np.flatnonzero(scales == s)
        c = KERNEL_SIZES[s] // 2
        span = GABOR_BLOCK + 2 * c
        by, bx = np.divmod(blocks[sel], SIZE // GABOR_BLOCK)
        rows = (by * GABOR_BLOCK + pad - c)[:, None] + np.arange(span)
        cols = (bx * GABOR_BLOCK + pad - c)[:, None] + np.arange(span)
        windows = vp[rows[:, :, None], cols[:, None, :]]
        f = _filter_windows(windows, filters[sel])
        sq = (f * f).reshape(len(sel), -1)
        # gabor_mean += square(f) pixel by pixel, row by row: a sequential sum, as in C
        total = np.add.accumulate(sq, axis=1)[:, -1]
        out[sel] = np.sqrt(total / (GABOR_BLOCK * GABOR_BLOCK))
    return out


def energy_bands(energy: np.ndarray) -> np.ndarray:
    """Band (0..9) of Gabor block energies: the number of :data:`BAND_LIMITS` ``<= E``."""
    return np.searchsorted(BAND_LIMITS, energy, side="right").astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# the feature set
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class GiftFeatures:
    """GIFT's features of one 256 x 256 image.

    Attributes
    ----------
    block_colours : ndarray of int16, shape (340,)
        Most frequent colour of each block, GIFT's block order: 256 blocks of 16 x 16 px, 64 of
        32 x 32, 16 of 64 x 64, 4 of 128 x 128, each scale row by row.
    colour_counts : ndarray of int64, shape (n_colours,)
        Pixels of each colour (they sum to 65536).
    gabor_energies : ndarray of float64, shape (3, 4, 256)
        RMS energy of each filter ``[scale, orientation]`` in each 16 x 16 block (row by row).
        Within about 1e-12 of GIFT's (FFT filtering); exactly GIFT's near a band limit.
    gabor_bands : ndarray of uint8, shape (3, 4, 256)
        Band of each energy (0..9), equal to GIFT's.
    grey_levels : int
        Number of grey colours (GIFT: 4).
    """

    block_colours: np.ndarray
    colour_counts: np.ndarray
    gabor_energies: np.ndarray
    gabor_bands: np.ndarray
    grey_levels: int = GREY_LEVELS

    @property
    def n_colours(self) -> int:
        return N_CHROMATIC + self.grey_levels

    @property
    def layout(self) -> IdLayout:
        return IdLayout(self.n_colours)

    @property
    def colour_histogram(self) -> np.ndarray:
        """Fraction of the pixels of each colour, ``n / 65536`` (float64, exact)."""
        return self.colour_counts / float(SIZE * SIZE)

    @property
    def gabor_band_counts(self) -> np.ndarray:
        """Blocks in each band per filter, int64 (3, 4, 10)."""
        flat = self.gabor_bands.reshape(N_FILTERS, N_GABOR_BLOCKS).astype(np.intp)
        offs = np.arange(N_FILTERS)[:, None] * N_BANDS
        return np.bincount((flat + offs).ravel(), minlength=N_FILTERS * N_BANDS).reshape(
            N_SCALES, N_ORIENTATIONS, N_BANDS)

    @property
    def gabor_histograms(self) -> np.ndarray:
        """Fraction of the 256 blocks in each band per filter, ``n / 256``, (3, 4, 10)."""
        return self.gabor_band_counts / float(N_GABOR_BLOCKS)

    def to_sparse(self) -> tuple[np.ndarray, np.ndarray]:
        """GIFT's ``(ids, values)``, see :func:`to_sparse`."""
        return to_sparse(self)

    def dense(self) -> np.ndarray:
        """The features as a dense float32 vector over GIFT's id space, see :func:`dense_vector`."""
        return dense_vector(self)

    def row(self) -> dict[str, float]:
        """The features as a row of named columns, see :func:`feature_row`."""
        return feature_row(self)


def gift_features(rgb: np.ndarray, grey_levels: int = GREY_LEVELS) -> GiftFeatures:
    """GIFT's features of a 256 x 256 8-bit image.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (256, 256, 3) or (256, 256)
        The image as GIFT reads it (after :func:`resize_to_gift`); a 2-D array is a grey image
        (``R = G = B``).
    grey_levels : int
        Grey bins (default 4, GIFT's; any other value is *not* GIFT-compatible).

    Returns
    -------
    GiftFeatures
    """
    g = _check_grey_levels(grey_levels)
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise ValueError(f"gift_features needs uint8 pixels, got {arr.dtype}; see to_uint8()")
    if arr.shape not in ((SIZE, SIZE, 3), (SIZE, SIZE)):
        raise ValueError(f"gift_features needs a 256 x 256 (x 3) image, got shape {arr.shape}; see resize_to_gift()")
    nc = N_CHROMATIC + g
    if arr.ndim == 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        arr = arr[..., 0]  # a grey picture stored as RGB: same colours, computed faster
    if arr.ndim == 2:  # grey: h = s = 0, v = the byte
        colours = _colour_luts(g)[1][arr, arr]
        value = arr
    else:
        colours = quantize_colours(arr, g)
        value = np.maximum(np.maximum(arr[..., 0], arr[..., 1]), arr[..., 2])  # rint(255 V) == max byte
    levels = colour_block_counts(colours, nc)
    modes = np.concatenate([lv.reshape(-1, nc).argmax(axis=1) for lv in levels]).astype(np.int16)
    counts = levels[-1].sum(axis=(0, 1)).astype(np.int64)
    energy = _gabor_energies(value)
    return GiftFeatures(block_colours=modes, colour_counts=counts,
                        gabor_energies=energy.reshape(N_SCALES, N_ORIENTATIONS, N_GABOR_BLOCKS),
                        gabor_bands=energy_bands(energy).reshape(N_SCALES, N_ORIENTATIONS, N_GABOR_BLOCKS),
                        grey_levels=g)


def _quantised(count: np.ndarray, total: int) -> np.ndarray:
    """GIFT's frequencies: ``(float)rint(255 n / total) / (float)255`` as float32."""
    q = np.rint(FREQ_MAX * count.astype(np.float64) / float(total))
    return q.astype(np.float32) / np.float32(FREQ_MAX), q


def _sparse_parts(block_colours, colour_counts, bands, n_colours) -> tuple[np.ndarray, np.ndarray]:
    lay = IdLayout(n_colours)
    bands = np.asarray(bands, dtype=np.intp).reshape(N_FILTERS * N_GABOR_BLOCKS)
    block_ids = np.arange(N_BLOCKS) * n_colours + np.asarray(block_colours, dtype=np.intp)
    hist_vals, hist_q = _quantised(np.asarray(colour_counts), SIZE * SIZE)
    hist_keep = np.flatnonzero(hist_q != 0)
    gab_keep = np.flatnonzero(bands != 0)
    gab_ids = lay.gabor_blocks + gab_keep * N_BANDS + bands[gab_keep]
    band_counts = np.bincount(bands + np.repeat(np.arange(N_FILTERS) * N_BANDS, N_GABOR_BLOCKS),
                              minlength=N_FILTERS * N_BANDS)
    gh_vals, _ = _quantised(band_counts, N_GABOR_BLOCKS)
    gh_keep = np.flatnonzero(band_counts != 0)
    ids = np.concatenate([block_ids, lay.colour_hist + hist_keep, gab_ids, lay.gabor_hist + gh_keep])
    one = np.float32(1.0)
    values = np.concatenate([np.full(N_BLOCKS, one), hist_vals[hist_keep], np.full(gab_keep.size, one),
                             gh_vals[gh_keep]])
    return ids.astype(np.int32), values.astype(np.float32)


def to_sparse(features: GiftFeatures) -> tuple[np.ndarray, np.ndarray]:
    """The features as GIFT writes them: ids ascending, float32 values.

    Returns
    -------
    ids : ndarray of int32
        All 340 colour-block ids, the colour-histogram ids with ``rint(255 n / 65536) > 0``, the
        Gabor-block ids of bands above 0, the Gabor-histogram ids of non-empty bands.
    values : ndarray of float32
        1.0 for blocks; ``rint(255 n / N) / 255`` (float32 division) for histograms.
    """
    return _sparse_parts(features.block_colours, features.colour_counts, features.gabor_bands,
                         features.n_colours)


def dense_vector(features: GiftFeatures) -> np.ndarray:
    """The features as a float32 vector over GIFT's whole id space (87446 for 4 greys), zero
    where GIFT writes no feature: ``dense[ids] = values``."""
    ids, values = to_sparse(features)
    out = np.zeros(features.layout.n_features, dtype=np.float32)
    out[ids] = values
    return out


# ---------------------------------------------------------------------------------------------
# .fts files
# ---------------------------------------------------------------------------------------------
_RECORD = np.dtype([("id", "<i4"), ("value", "<f4")])


def fts_bytes(ids: np.ndarray, values: np.ndarray) -> bytes:
    """GIFT's ``.fts`` encoding: little-endian int32 count, then (int32 id, float32 value) pairs."""
    ids = np.asarray(ids)
    values = np.asarray(values)
    if ids.shape != values.shape or ids.ndim != 1:
        raise ValueError(f"ids and values must be 1-D of one length, got {ids.shape} and {values.shape}")
    rec = np.empty(ids.size, dtype=_RECORD)
    rec["id"] = ids
    rec["value"] = values
    return np.array([ids.size], dtype="<i4").tobytes() + rec.tobytes()


def write_fts(path: str | os.PathLike, ids: np.ndarray, values: np.ndarray) -> None:
    """Write a GIFT feature file (see :func:`fts_bytes`); replaced atomically."""
    data = fts_bytes(ids, values)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_fts(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a GIFT feature file: ``(ids int32, values float32)`` in file order.

    Raises
    ------
    InputError
        Missing file, or a size that does not match the count it starts with.
    """
    from medfeat.errors import InputError

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) < 4:
        raise InputError(path, "not a GIFT .fts file (shorter than its 4-byte count)")
    n = int(np.frombuffer(data, dtype="<i4", count=1)[0])
    if n < 0 or len(data) != 4 + 8 * n:
        raise InputError(path, f"not a GIFT .fts file: it announces {n} features but holds "
                               f"{len(data) - 4} bytes after the count")
    rec = np.frombuffer(data, dtype=_RECORD, offset=4, count=n)
    return rec["id"].astype(np.int32), rec["value"].astype(np.float32)


# ---------------------------------------------------------------------------------------------
# getting an image into GIFT's shape
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# feature columns (medfeat's wide tables) and back
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def feature_defs(grey_levels: int = GREY_LEVELS) -> tuple[FeatureDef, ...]:
    """The gift family's columns, in order (3698 for 4 greys).

    ``gift.block.NNN`` (340): colour index of block NNN (GIFT's block number); ``gift.hist.CCC``
    (``nc``): fraction of the pixels of colour CCC; ``gift.gabor.S.O.BBB`` (3072): band 0..9 of
    filter (scale S, orientation O) in 16 x 16 block BBB; ``gift.gabor_hist.S.O.N`` (120):
    fraction of the 256 blocks in band N. GIFT has no IBSI codes: the code is empty.
    """
    nc = N_CHROMATIC + _check_grey_levels(grey_levels)
    defs = []
    for k in range(N_BLOCKS):
        side, first = _block_scale(k)
        defs.append(FeatureDef(f"gift.block.{k:03d}", "", f"colour of block {k} ({side}x{side} px, #{k - first})"))
    for c in range(nc):
        defs.append(FeatureDef(f"gift.hist.{c:03d}", "", f"fraction of pixels of colour {c}"))
    for s in range(N_SCALES):
        for o in range(N_ORIENTATIONS):
            for b in range(N_GABOR_BLOCKS):
                defs.append(FeatureDef(f"gift.gabor.{s}.{o}.{b:03d}", "",
                                       f"Gabor band, scale {s}, orientation {45 * o} deg, block {b}"))
    for s in range(N_SCALES):
        for o in range(N_ORIENTATIONS):
            for n in range(N_BANDS):
                defs.append(FeatureDef(f"gift.gabor_hist.{s}.{o}.{n}", "",
                                       f"fraction of blocks in Gabor band {n}, scale {s}, orientation {45 * o} deg"))
    return tuple(defs)


def _block_scale(k: int) -> tuple[int, int]:
    first = 0
    for side, n in zip(BLOCK_SIDES, BLOCKS_PER_SCALE):
        if k < first + n:
            return side, first
        first += n
    raise ValueError(k)


FEATURES: tuple[FeatureDef, ...] = feature_defs(GREY_LEVELS)
#: The columns by group, for listings (``medfeat families``).
FEATURE_GROUPS: tuple[FeatureDef, ...] = (
    FeatureDef("gift.block.NNN", "", "colour (0..165) of block NNN = 000..339: 256 of 16x16 px, 64 of 32x32, "
               "16 of 64x64, 4 of 128x128"),
    FeatureDef("gift.hist.CCC", "", "fraction of the pixels of colour CCC = 000..165 (162 + gift_grey_levels)"),
    FeatureDef("gift.gabor.S.O.BBB", "", "Gabor band (0..9) of 16x16 block BBB = 000..255, scale S = 0..2, "
               "orientation O = 0..3 (x 45 deg)"),
    FeatureDef("gift.gabor_hist.S.O.N", "", "fraction of the 256 blocks in Gabor band N = 0..9, scale S, "
               "orientation O"),
)


@lru_cache(maxsize=None)
def column_names(grey_levels: int = GREY_LEVELS) -> tuple[str, ...]:
    """Column names of :func:`feature_defs` (``gift_block_000``, ...)."""
    return tuple(column(f.tag) for f in feature_defs(grey_levels))


def feature_row(features: GiftFeatures) -> dict[str, float]:
    """The features as ``{column: value}`` (see :func:`feature_defs`); :func:`features_of_row`
    rebuilds GIFT's exact sparse form from it."""
    values = np.concatenate([
        features.block_colours.astype(np.float64),
        features.colour_histogram,
        features.gabor_bands.ravel().astype(np.float64),
        features.gabor_histograms.ravel(),
    ])
    return dict(zip(column_names(features.grey_levels), values.tolist()))


def features_of_row(row: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """GIFT's ``(ids, values)`` from a row of gift columns (an :func:`medfeat.extract` result, or
    a row of a features table); the number of ``gift_hist_*`` columns gives the grey levels.

    Raises
    ------
    ValueError
        Missing gift columns or missing values (an image that failed).
    """
    nc = sum(1 for k in row if k.startswith("gift_hist_"))
    if nc <= N_CHROMATIC:
        raise ValueError("the row has no gift_hist_* columns: not a gift-family row")
    names = column_names(nc - N_CHROMATIC)
    try:
        vals = np.array([row[k] for k in names], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"the row lacks gift column {exc.args[0]}") from None
    except TypeError:
        raise ValueError("the row has missing gift values (a failed image?)") from None
    if not np.isfinite(vals).all():
        raise ValueError("the row has missing gift values (a failed image?)")
    blocks = vals[:N_BLOCKS]
    counts = np.rint(vals[N_BLOCKS:N_BLOCKS + nc] * (SIZE * SIZE))
    bands = vals[N_BLOCKS + nc:N_BLOCKS + nc + N_FILTERS * N_GABOR_BLOCKS]
    return _sparse_parts(blocks.astype(np.intp), counts, bands.astype(np.intp), nc)
