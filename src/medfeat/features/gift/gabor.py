"""GIFT's Gabor texture (``gabor.c``): the kernels, GIFT's exact filtering, the fast FFT block
energies with their exact recomputation near a band limit, and the energy bands.
See :mod:`medfeat.features.gift` for the definitions and the exactness argument."""
from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

from medfeat.features.gift.constants import (
    BAND_LIMITS,
    GABOR_BLOCK,
    KERNEL_SIZES,
    N_FILTERS,
    N_GABOR_BLOCKS,
    N_ORIENTATIONS,
    N_SCALES,
    SIZE,
)


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


# Error bound of the FFT energies (see gabor_energies): |E_fft - E| <= FFT_ERROR * ||v||_2 + tiny.
# Double-precision FFT convolution: ||f_fft - f||_2 <= 5 log2(288^2) u ||H||_inf ||v||_2 with
# u = 2^-53, ||H||_inf < 0.54 (the filters' peak gain), and a block's RMS error is at most
# ||f_fft - f||_2 / 16: about 3e-16 ||v||_2. The margin is 100 times that; measured errors are
# another 100 times smaller. The 1e-12 E term covers the rounding of the block sums and the sqrt.
# Read at each call: a test widens it (monkeypatch on this module) to force the exact path.
FFT_ERROR = 3e-14


def gabor_energies(value: np.ndarray) -> np.ndarray:
    """RMS energy of each 16 x 16 block for each filter, (12, 256), banding exactly as GIFT.

    The filters run as FFT convolutions (double precision); blocks whose energy lies within the
    FFT's error bound of a band limit are recomputed with GIFT's arithmetic
    (:func:`exact_block_energies`), so ``band(E)`` is GIFT's band for every block.
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
    tol = FFT_ERROR * float(np.sqrt(np.sum(v * v))) + 1e-12 * energy
    near = np.abs(energy[..., np.newaxis] - BAND_LIMITS).min(axis=-1) <= tol
    if near.any():
        fi, bi = np.nonzero(near)
        energy[fi, bi] = exact_block_energies(v, fi, bi)
    return energy


def exact_block_energies(value: np.ndarray, filters: np.ndarray, blocks: np.ndarray) -> np.ndarray:
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
