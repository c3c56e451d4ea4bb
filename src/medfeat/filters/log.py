r"""Laplacian of Gaussian filter (IBSI chapter 2, filter code L6PA).

The kernel is the plain (not scale-normalised) Laplacian of a Gaussian, in voxel units:

.. math::

    h(\mathbf{n}) = \sum_a \frac{n_a^2 - \sigma_a^2}{\sigma_a^4} \prod_b g_b(n_b), \qquad
    g_b(n) = \frac{1}{\sqrt{2\pi}\,\sigma_b} e^{-n^2 / (2\sigma_b^2)},

sampled at the integer offsets ``n`` with ``sigma_a = sigma_mm / spacing_a`` voxels along each
filtered axis ``a`` (three axes in 3D, the two axial axes in 2D). For an isotropic grid its centre
value is ``-d / ((2 pi)^(d/2) sigma^(d+2))``: ``-3 / ((2 pi)^1.5 sigma^5)`` in 3D (IBSI 2.a:
``-6.3965`` for 255 at ``sigma`` = 1.5 voxels). The support along axis ``a`` is
``M_a = 1 + 2 floor(truncate sigma_a + 0.5)`` voxels (IBSI's formula; ``truncate`` is the
manual's ``d``, 4 in every IBSI test), the same radius as ``scipy.ndimage.gaussian_laplace`` with
the same ``truncate`` (whose Gaussian taps are renormalised to sum 1; here they are not).

Each term of the sum is a separable product of 1D kernels, so the 3D kernel is applied with seven
1D passes and no ``M^3`` kernel: ``x: g, g''``; ``y: g, g'', g``; ``z: g'', g`` on the partial sums.
On an anisotropic grid the second derivatives are in voxel units along each axis (as
``scipy.ndimage.gaussian_laplace`` with ``sigma`` in voxels); IBSI only tests isotropic grids.

References
----------
.. [1] Depeursinge A. et al., "Standardised convolutional filtering for radiomics", IBSI chapter 2
       reference manual, arXiv:2006.05470 (v9, 2024), section 3.2 "Laplacian of Gaussian" (L6PA);
       phase 1 tests 2.a, 2.b, 2.c; phase 2 configurations 3.A/3.B.
"""
from __future__ import annotations

import math

import numpy as np

from medfeat.filters.boundary import convolve1d
from medfeat.filters.boundary import check_inputs, positive, restore_shape, voxel_spacing

__all__ = ["log_filter", "log_kernels_1d"]


def log_kernels_1d(sigma: float, truncate: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """The sampled 1D Gaussian ``g`` and its second derivative ``g''`` for ``sigma`` in voxels,
    each with ``M = 1 + 2 floor(truncate sigma + 0.5)`` taps (centre tap in the middle)."""
    radius = int(math.floor(truncate * sigma + 0.5))
    n = np.arange(-radius, radius + 1, dtype=float)
    g = np.exp(-0.5 * (n / sigma) ** 2) / (math.sqrt(2.0 * math.pi) * sigma)
    return g, g * (n * n - sigma * sigma) / sigma ** 4


def log_filter(image, sigma_mm: float, spacing, truncate: float = 4.0, dimension: str = "3d",
               boundary: str = "zero") -> np.ndarray:
    """Laplacian of Gaussian filter (IBSI 2 filter code L6PA), plain, in voxel units.

    Parameters
    ----------
    image : array_like
        Intensities, ``(z, y, x)`` (IBSI's x, y, z are axes 2, 1, 0), or one slice ``(y, x)``.
    sigma_mm : float
        Gaussian standard deviation in mm; divided by ``spacing`` per axis to get it in voxels.
    spacing : float or sequence of float
        Voxel size in mm: one number, ``(z, y, x)`` (as :attr:`medfeat.Image.spacing`), or
        ``(y, x)`` for a 2D image.
    truncate : float
        Kernel half-width in sigmas (the IBSI manual's ``d``): the support is
        ``M = 1 + 2 floor(truncate sigma + 0.5)`` voxels along each axis, ``sigma`` in voxels.
    dimension : {"3d", "2d"}
        ``"2d"`` applies the 2D LoG to each axial slice (nothing is mixed along z).
    boundary : {"zero", "nearest", "periodic", "mirror"}
        Image extension beyond its edges (mirror = scipy.ndimage's ``reflect``).

    Returns
    -------
    ndarray
        float64 response map of the image's shape.

    Raises
    ------
    InputError
        A bad setting or image (one-line message).

    References
    ----------
    Depeursinge A. et al., "Standardised convolutional filtering for radiomics", arXiv:2006.05470,
    section 3.2 (LoG, L6PA); IBSI 2 tests 2.a (3D, sigma 3 mm on 2 mm voxels: M = 13), 2.b and 2.c
    (sigma 5 mm: M = 21).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((13, 13, 13)); x[6, 6, 6] = 1.0
    >>> bool(np.isclose(log_filter(x, 3.0, 2.0)[6, 6, 6], -3 / ((2 * np.pi) ** 1.5 * 1.5 ** 5)))
    True
    """
    name = "log_filter"
    arr, ndim = check_inputs(name, image, dimension, boundary)
    sigma_mm = positive(name, "sigma_mm", sigma_mm)
    truncate = positive(name, "truncate", truncate)
    sigma = sigma_mm / voxel_spacing(name, spacing, ndim)  # voxels, (z, y, x)
    g = [log_kernels_1d(s, truncate) for s in sigma]  # per axis: (g, g'')
    if dimension.lower() == "2d":  # g''_x g_y + g_x g''_y
        out = convolve1d(convolve1d(arr, g[2][1], 2, boundary), g[1][0], 1, boundary)
        out += convolve1d(convolve1d(arr, g[2][0], 2, boundary), g[1][1], 1, boundary)
        return restore_shape(out, ndim)
    gx = convolve1d(arr, g[2][0], 2, boundary)
    dx = convolve1d(arr, g[2][1], 2, boundary)
    gxgy = convolve1d(gx, g[1][0], 1, boundary)
    plane = convolve1d(gx, g[1][1], 1, boundary)  # g_x g''_y + g''_x g_y
    plane += convolve1d(dx, g[1][0], 1, boundary)
    out = convolve1d(gxgy, g[0][1], 0, boundary)  # g_x g_y g''_z
    out += convolve1d(plane, g[0][0], 0, boundary)
    return restore_shape(out, ndim)
