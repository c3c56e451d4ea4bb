r"""Riesz transforms (IBSI chapter 2, filter code AYRS) of a response map, of a Laplacian of
Gaussian and of a Simoncelli wavelet, in the Fourier domain.

The Riesz transform of order ``l = (l1, l2, l3)`` (counts along x, y, z = NIfTI i, j, k =
medfeat axes 2, 1, 0; ``L = l1 + l2 + l3``) multiplies the spectrum by

.. math::

    \hat R^{(l)}(\omega) = (-j)^L \sqrt{\frac{L!}{l_1!\, l_2!\, l_3!}}\,
    \frac{\omega_x^{l_1} \omega_y^{l_2} \omega_z^{l_3}}{\|\omega\|^L}, \qquad \hat R^{(l)}(0) = 0,

and the response is the real part of the inverse FFT (so odd orders lose the Nyquist bins). Order
(1, 0, 0) is a derivative-like, antisymmetric operator along x: IBSI map 9.a (the Riesz (1,0,0)
transform of a LoG of the impulse) is antisymmetric along x about the impulse, positive at
``x - 1`` (the LoG is negative at its centre; the transform of a bare impulse is positive at
``x + 1``), and symmetric along y and z. A 2D order ``(l1, l2)`` acts on each axial slice.

Map 9.a is, to 4e-6 of its range, the mean of this transform on the DFT grid (``frequency_grid =
"dft"``, the default, exactly antisymmetric) and on the IBSI reference implementation's grid
(``"ibsi"``, see :mod:`medfeat.filters.simoncelli`); each is within 0.05 % of it.

The FFT makes the input periodic. :func:`riesz_log` pads the image by the LoG kernel's radius with
the chosen boundary condition first (as the IBSI reference implementation, MIRP, does), filters the
padded image and crops. :func:`riesz_simoncelli` multiplies both transfer functions on one
frequency grid (see :mod:`medfeat.filters.simoncelli` for the ``"ibsi"`` grid).

Aligned (steered) Riesz transforms (IBSI tests 9.b.2, 10.b.2) are not implemented: the
structure-tensor width they need is not stated in any IBSI source.

References
----------
.. [1] Depeursinge A. et al., "Standardised convolutional filtering for radiomics", IBSI chapter 2
       reference manual, arXiv:2006.05470 (v9, 2024), section 3.7 "Riesz transform" (AYRS);
       phase 1 tests 9.a, 9.b.1 (Riesz-LoG), 10.a, 10.b.1 (Riesz-Simoncelli).
.. [2] Unser M., Van De Ville D., "Wavelet steerability and the higher-order Riesz transform",
       IEEE Trans. Image Process. 19 (2010) 636-652.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from medfeat.errors import InputError
from medfeat.filters.boundary import numpy_pad_mode
from medfeat.filters.log import log_filter
from medfeat.filters.simoncelli import (check_frequency_grid, fft_filter, frequency_coordinates, pad_for_fft,
                                        simoncelli_transfer)
from medfeat.filters.boundary import (check_boundary, check_dimension, check_image, check_level, positive,
                                      restore_shape, voxel_spacing)

__all__ = ["riesz_filter", "riesz_log", "riesz_simoncelli", "riesz_transfer"]


def _order(name: str, order, dimension: str | None = None) -> tuple[int, ...]:
    try:
        values = tuple(order)
    except TypeError:
        values = ()
    want = {None: (2, 3), "3d": (3,), "2d": (2,)}[dimension]
    if (len(values) not in want
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in values)):
        n = " or ".join(map(str, want))
        raise InputError(name, f"order must be {n} non-negative integers along x, y(, z) (e.g. (1, 0, 0)), "
                               f"not {order!r}")
    return tuple(int(v) for v in values)


def riesz_transfer(shape: tuple[int, ...], order: tuple[int, ...], frequency_grid: str = "dft") -> np.ndarray:
    """The Riesz multiplier over a full FFT grid of ``shape`` (``(z, y, x)`` or ``(y, x)``, FFT
    order) for ``order`` along x, y(, z); complex, 0 at DC."""
    ndim = len(shape)
    coords = [frequency_coordinates(n, frequency_grid) for n in shape]
    r2 = np.zeros(shape)
    num = np.ones(shape, dtype=float)
    for axis, c in enumerate(coords):
        c = c.reshape([shape[a] if a == axis else 1 for a in range(ndim)])
        r2 = r2 + c ** 2
        power = order[ndim - 1 - axis]  # order is (x, y, z): x is the last axis
        if power:
            num = num * c ** power
    total = sum(order)
    factor = (-1j) ** total * math.sqrt(math.factorial(total) / math.prod(math.factorial(v) for v in order))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = num / np.sqrt(r2) ** total
    h[r2 == 0] = 0.0
    return factor * h


def riesz_filter(response, order=(1, 0, 0), frequency_grid: str = "dft") -> np.ndarray:
    """Riesz transform of a (filter) response map, periodic, in the Fourier domain.

    Parameters
    ----------
    response : array_like
        A response map ``(z, y, x)`` (or ``(y, x)`` for a 2D order on one slice).
    order : tuple of int
        ``(l1, l2, l3)`` along x, y, z (3D), or ``(l1, l2)`` along x, y applied to each axial slice.
        All zeros returns the input.
    frequency_grid : {"dft", "ibsi"}
        Frequencies sampled at the DFT bins, or on the IBSI reference implementation's grid (see
        :mod:`medfeat.filters.simoncelli`).

    Returns
    -------
    ndarray
        float64 real part of the transformed map, the input's shape.

    Raises
    ------
    InputError
        A bad setting or image (one-line message).

    References
    ----------
    Depeursinge A. et al., "Standardised convolutional filtering for radiomics", arXiv:2006.05470,
    section 3.7 (Riesz, AYRS).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((8, 8, 8)); x[4, 4, 4] = 1.0
    >>> r = riesz_filter(x, (1, 0, 0))
    >>> bool(np.isclose(r[4, 4, 3], -r[4, 4, 5]) and r[4, 4, 5] > 0)  # like 1 / (pi x) along x
    True
    """
    name = "riesz_filter"
    arr, ndim = check_image(name, response)
    orders = _order(name, order)
    grid = check_frequency_grid(name, frequency_grid)
    if len(orders) == 3 and ndim == 2:
        raise InputError(name, "a 3D order (l1, l2, l3) needs a 3D response map")
    if not any(orders):
        return restore_shape(arr.copy(), ndim)
    axes = (0, 1, 2) if len(orders) == 3 else (1, 2)
    transfer = riesz_transfer(tuple(arr.shape[a] for a in axes), orders, grid)
    return restore_shape(fft_filter(arr, transfer, axes), ndim)


def riesz_log(image, sigma_mm: float, spacing, order=(1, 0, 0), truncate: float = 4.0, dimension: str = "3d",
              boundary: str = "zero", frequency_grid: str = "dft") -> np.ndarray:
    """Riesz transform of the Laplacian of Gaussian response (IBSI 2 Riesz-LoG, tests 9.x).

    The LoG is :func:`medfeat.filters.log.log_filter` (plain, voxel units, support
    ``1 + 2 floor(truncate sigma + 0.5)``). The image is padded by the kernel radius with
    ``boundary`` (none for periodic), filtered by the LoG with the same boundary, Riesz-transformed
    periodically on the padded grid, and cropped.

    Parameters
    ----------
    image : array_like
        Intensities, ``(z, y, x)``, or one slice ``(y, x)``.
    sigma_mm, spacing, truncate :
        As :func:`medfeat.filters.log.log_filter` (IBSI 9.x: sigma 3 mm on 2 mm voxels, truncate 4).
    order : tuple of int
        Riesz order along x, y, z (3D) or x, y (2D).
    dimension : {"3d", "2d"}
        ``"2d"``: 2D LoG and 2D Riesz transform of each axial slice.
    boundary : {"zero", "nearest", "periodic", "mirror"}
        Image extension for the LoG and the padding.
    frequency_grid : {"dft", "ibsi"}
        Frequency sampling of the Riesz multiplier (each matches IBSI map 9.a to 0.05 % of its range).

    Returns
    -------
    ndarray
        float64 response map of the image's shape.

    References
    ----------
    Depeursinge A. et al., "Standardised convolutional filtering for radiomics", arXiv:2006.05470,
    sections 3.2 (LoG) and 3.7 (Riesz); IBSI 2 tests 9.a (impulse, order (1,0,0)) and 9.b.1
    (sphere, order (0,2,0)), zero boundary.
    """
    name = "riesz_log"
    dim = check_dimension(name, dimension)
    boundary = check_boundary(name, boundary)
    arr, ndim = check_image(name, image)
    orders = _order(name, order, dim)
    grid = check_frequency_grid(name, frequency_grid)
    sigma_mm = positive(name, "sigma_mm", sigma_mm)
    truncate = positive(name, "truncate", truncate)
    spacing3 = voxel_spacing(name, spacing, ndim)
    axes = (0, 1, 2) if dim == "3d" else (1, 2)
    if boundary == "periodic":
        padded, crop = arr, (slice(None),) * 3
    else:  # pad by the LoG kernel's radius along each filtered axis
        widths = [(r, r) for r in np.floor(truncate * sigma_mm / spacing3 + 0.5).astype(int)]
        widths = [w if a in axes else (0, 0) for a, w in enumerate(widths)]
        padded = np.pad(arr, widths, mode=numpy_pad_mode(boundary))
        crop = tuple(slice(w[0], w[0] + n) for w, n in zip(widths, arr.shape))
    try:
        response = log_filter(padded, sigma_mm, tuple(spacing3), truncate, dim, boundary)
    except InputError as err:
        raise InputError(name, err.reason) from None
    if any(orders):
        transfer = riesz_transfer(tuple(padded.shape[a] for a in axes), orders, grid)
        response = fft_filter(response, transfer, axes)
    return restore_shape(np.ascontiguousarray(response[crop]), ndim)


def riesz_simoncelli(image, level: int = 1, order=(1, 0, 0), dimension: str = "3d", boundary: str = "periodic",
                     frequency_grid: str = "ibsi") -> np.ndarray:
    """Riesz transform of the Simoncelli band-pass map (IBSI 2 Riesz-Simoncelli, tests 10.x).

    Both transfer functions are multiplied on one frequency grid and applied in one FFT; the
    response is the real part. Boundaries as :func:`medfeat.filters.simoncelli.simoncelli_filter`
    (periodic; others pad by ``2^(level+3)`` voxels).

    Parameters
    ----------
    image : array_like
        Intensities, ``(z, y, x)``, or one slice ``(y, x)``.
    level : int
        Simoncelli decomposition level >= 1.
    order : tuple of int
        Riesz order along x, y, z (3D) or x, y (2D).
    dimension : {"3d", "2d"}
        ``"2d"`` filters each axial slice.
    boundary : {"periodic", "zero", "nearest", "mirror"}
        See :func:`medfeat.filters.simoncelli.simoncelli_filter`.
    frequency_grid : {"ibsi", "dft"}
        Frequency sampling of both filters (``"ibsi"`` matches the Simoncelli reference maps).

    Returns
    -------
    ndarray
        float64 response map of the image's shape.

    References
    ----------
    Depeursinge A. et al., "Standardised convolutional filtering for radiomics", arXiv:2006.05470,
    sections 3.6 (Simoncelli) and 3.7 (Riesz); IBSI 2 tests 10.a (impulse, level 1, order
    (1,0,0)) and 10.b.1 (pattern_1, level 1, order (0,2,0)).
    """
    name = "riesz_simoncelli"
    dim = check_dimension(name, dimension)
    boundary = check_boundary(name, boundary)
    arr, ndim = check_image(name, image)
    lev = check_level(name, level)
    orders = _order(name, order, dim)
    grid = check_frequency_grid(name, frequency_grid)
    axes = (0, 1, 2) if dim == "3d" else (1, 2)
    padded, crop = pad_for_fft(arr, axes, boundary, 2 ** (lev + 3))
    shape = tuple(padded.shape[a] for a in axes)
    transfer = simoncelli_transfer(shape, lev, grid)
    if any(orders):
        transfer = transfer * riesz_transfer(shape, orders, grid)
    return restore_shape(np.ascontiguousarray(fft_filter(padded, transfer, axes)[crop]), ndim)
