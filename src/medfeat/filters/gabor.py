r"""Gabor filter (IBSI chapter 2, filter code Q88H).

A 2D complex kernel, in mm:

.. math::

    h(x, y) = \exp\left(-\frac{x'^2 + \gamma^2 y'^2}{2\sigma^2}\right) \exp\left(i \frac{2\pi x'}{\lambda}\right),
    \qquad x' = x\cos\theta + y\sin\theta,\quad y' = -x\sin\theta + y\cos\theta,

with ``(x, y)`` the in-plane offsets from the centre voxel in mm (voxel offsets times the
spacing), ``theta`` the angle of the kernel's ``x'`` axis from +x (NIfTI i, medfeat axis 2)
towards +y (NIfTI j, axis 1), ``gamma`` the aspect ratio (the envelope is ``1/gamma`` times longer
along ``y'``) and ``lambda`` the wavelength. No normalisation constant: the centre value is 1. The
response is the modulus of the convolution. IBSI's map 4.a.1 (an impulse of 255) is ``255 |h|``
over the whole slice: its maximum is 255 and its long axis lies at ``theta + 90`` deg.

Support: ``truncate`` envelope standard deviations along the longer envelope axis,
``max(sigma, sigma / gamma)``, i.e. a square of ``1 + 2 ceil(truncate max(sigma, sigma/gamma) /
spacing)`` voxels per in-plane axis (4 by default; the envelope there is below ``exp(-8)``). IBSI's
4.a.1 is the untruncated envelope over the whole 64 x 64 slice (offsets up to 32 voxels, 3.2 long
standard deviations): it fails below about 2.7 and passes from there on; 4 matches both shared maps
(4.a.1, 4.b.2).

Rotation invariance averages (``pooling``) the modulus over the given angles; ``theta`` and
``theta + pi`` give the same modulus (the kernels are complex conjugates and the image is real), so
each such pair is filtered once. ``planes="orthogonal"`` also pools over the axial (x, y), coronal
(x, z) and sagittal (y, z) planes ("2.5D", MIRP's "invar"): in the coronal plane ``theta`` turns
from +x towards +z, in the sagittal plane from +y towards +z. (With an angle set symmetric under
``theta -> -theta``, as IBSI's uniform steps from 0 are, this choice does not matter.)

The convolutions run by FFT: each plane stack is padded once with the boundary condition
(``numpy.pad``; the padding is as wide as the kernel's radius, so no circular wrap reaches the
output) and transformed once; each angle then costs one kernel transform and one inverse transform.

References
----------
.. [1] Depeursinge A. et al., "Standardised convolutional filtering for radiomics", IBSI chapter 2
       reference manual, arXiv:2006.05470 (v9, 2024), section 3.4 "Gabor filters" (Q88H); phase 1
       tests 4.a.1, 4.a.2, 4.b.1, 4.b.2; phase 2 configurations 5.A/5.B.
.. [2] Petkov N., Kruizinga P., "Computational models of visual neurons specialised in the
       detection of periodic and aperiodic oriented visual stimuli", Biol. Cybern. 76 (1997) 83-96.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import fft as sfft

from medfeat.errors import InputError
from medfeat.filters.boundary import POOLINGS, numpy_pad_mode
from medfeat.filters.boundary import check_inputs, positive, restore_shape, voxel_spacing

__all__ = ["gabor_filter", "gabor_kernel"]

PLANES = ("axial", "orthogonal")
# (axes of the plane as (y role, x role) in (z, y, x), axis left alone): theta turns from x to y
_PLANE_AXES = {"axial": (1, 2, 0), "coronal": (0, 2, 1), "sagittal": (0, 1, 2)}


def gabor_kernel(sigma_mm: float, wavelength_mm: float, gamma: float, theta: float,
                 spacing_yx=(1.0, 1.0), truncate: float = 4.0) -> np.ndarray:
    """The complex 2D Gabor kernel ``(y, x)`` (centre in the middle, value 1 there); ``spacing_yx``
    is the in-plane voxel size in mm, ``(y, x)``."""
    sy, sx = (float(s) for s in spacing_yx)
    reach = truncate * max(sigma_mm, sigma_mm / gamma)  # mm
    ry, rx = math.ceil(reach / sy - 1e-9), math.ceil(reach / sx - 1e-9)
    y = np.arange(-ry, ry + 1)[:, None] * sy
    x = np.arange(-rx, rx + 1)[None, :] * sx
    c, s = math.cos(theta), math.sin(theta)
    xr = x * c + y * s
    yr = -x * s + y * c
    envelope = -(xr * xr + (gamma * gamma) * yr * yr) / (2.0 * sigma_mm * sigma_mm)
    return np.exp(envelope + 1j * (2.0 * math.pi / wavelength_mm) * xr)


def _distinct_angles(thetas: list[float]) -> list[tuple[float, int]]:
    """Angles modulo pi (theta and theta + pi give the same modulus) with their multiplicities."""
    out: list[list] = []
    for t in thetas:
        r = math.fmod(t, math.pi)
        r = r + math.pi if r < 0 else r
        for item in out:
            d = abs(item[0] - r)
            if min(d, math.pi - d) < 1e-9:
                item[1] += 1
                break
        else:
            out.append([r, 1])
    return [(t, n) for t, n in out]


def _thetas(name: str, theta) -> list[float]:
    """``theta`` as a non-empty list of finite angles (one angle or a sequence)."""
    if isinstance(theta, numbers.Real) and not isinstance(theta, bool):
        values = [theta]
    else:
        try:
            values = list(theta)
        except TypeError:
            values = []
    if not values or not all(isinstance(t, numbers.Real) and not isinstance(t, bool) and math.isfinite(t)
                             for t in values):
        raise InputError(name, f"theta must be a finite angle (radians) or a non-empty sequence of them, not {theta!r}")
    return [float(t) for t in values]


def _plane_responses(stack: np.ndarray, spacing_yx, sigma_mm, wavelength_mm, gamma, angles, boundary, truncate,
                     pooling) -> np.ndarray:
    """The modulus responses of a ``(n, y, x)`` stack of planes, pooled over ``angles`` (a sum
    weighted by the multiplicities for ``mean``)."""
    kernels = [(gabor_kernel(sigma_mm, wavelength_mm, gamma, t, spacing_yx, truncate), n) for t, n in angles]
    ry, rx = (k // 2 for k in kernels[0][0].shape)
    nz, ny, nx = stack.shape
    shape = (sfft.next_fast_len(ny + 2 * ry), sfft.next_fast_len(nx + 2 * rx))
    rows, cols = np.arange(-ry, ry + 1) % shape[0], np.arange(-rx, rx + 1) % shape[1]
    spectra = []
    for kernel, n in kernels:  # kernel centre at index (0, 0) of the FFT grid
        wrapped = np.zeros(shape, dtype=complex)
        wrapped[np.ix_(rows, cols)] = kernel
        spectra.append((sfft.fft2(wrapped, overwrite_x=True), n))
    out = np.empty(stack.shape)
    mode = numpy_pad_mode(boundary)
    # a few planes at a time: bounded memory (a CT's coronal stack is large), warmer caches
    chunk = max(1, int(2 ** 18 // (shape[0] * shape[1])))
    for start in range(0, nz, chunk):
        part = stack[start:start + chunk]
        padded = np.pad(part, ((0, 0), (ry, ry), (rx, rx)), mode=mode)
        fimg = sfft.fft2(padded, s=shape, axes=(1, 2), workers=-1)
        acc = out[start:start + chunk]
        for i, (spectrum, n) in enumerate(spectra):
            resp = sfft.ifft2(fimg * spectrum, axes=(1, 2), workers=-1, overwrite_x=True)
            mod = np.abs(resp[:, ry:ry + ny, rx:rx + nx])
            if i == 0:
                acc[...] = n * mod if pooling == "mean" else mod
            elif pooling == "mean":
                acc += n * mod
            else:
                (np.maximum if pooling == "max" else np.minimum)(acc, mod, out=acc)
    return out


def gabor_filter(image, sigma_mm: float, wavelength_mm: float, gamma: float, theta, spacing,
                 dimension: str = "2d", boundary: str = "zero", planes: str = "axial", pooling: str = "mean",
                 truncate: float = 4.0) -> np.ndarray:
    """Gabor filter (IBSI 2 filter code Q88H): modulus of the complex 2D Gabor response, pooled
    over angles (and planes).

    Parameters
    ----------
    image : array_like
        Intensities, ``(z, y, x)`` (IBSI's x, y, z are axes 2, 1, 0), or one slice ``(y, x)``.
    sigma_mm : float
        Standard deviation of the Gaussian envelope along the kernel's ``x'`` axis, mm.
    wavelength_mm : float
        Wavelength ``lambda`` of the complex sinusoid along ``x'``, mm.
    gamma : float
        Spatial aspect ratio: the envelope's standard deviation along ``y'`` is ``sigma / gamma``.
    theta : float or sequence of float
        Orientation(s) in radians, of ``x'`` from +x (axis 2) towards +y (axis 1). Several angles:
        the responses are pooled (IBSI's rotation invariance: ``np.arange(0, 2 * np.pi, step)``).
    spacing : float or sequence of float
        Voxel size in mm: one number, ``(z, y, x)``, or ``(y, x)`` for a 2D image.
    dimension : {"2d"}
        The Gabor filter is 2D; use ``planes="orthogonal"`` for the 3D (2.5D) variant.
    boundary : {"zero", "nearest", "periodic", "mirror"}
        Image extension beyond its edges (mirror = numpy's ``symmetric`` = scipy's ``reflect``).
    planes : {"axial", "orthogonal"}
        ``"axial"``: each axial slice. ``"orthogonal"``: also every coronal and sagittal slice,
        pooled with the axial responses (IBSI 4.a.2, 4.b.2, phase 2 configuration 5.B).
    pooling : {"mean", "max", "min"}
        Voxel-wise pooling over angles and planes (IBSI uses the mean).
    truncate : float
        Kernel half-width in standard deviations of the envelope's long axis.

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
    section 3.4 (Gabor, Q88H); IBSI 2 tests 4.a.1 (sigma 10 mm, lambda 4 mm, gamma 1/2,
    theta pi/3), 4.a.2, 4.b.1, 4.b.2 (16 angles, 3 planes).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((1, 9, 9)); x[0, 4, 4] = 1.0
    >>> round(float(gabor_filter(x, 2.0, 4.0, 0.5, 0.0, 1.0)[0, 4, 4]), 12)
    1.0
    """
    name = "gabor_filter"
    if isinstance(dimension, str) and dimension.lower() == "3d":
        raise InputError(name, "dimension must be '2d' (the Gabor filter is 2D; planes='orthogonal' gives 2.5D)")
    arr, ndim = check_inputs(name, image, dimension, boundary, dimensions=("2d",))
    sigma_mm = positive(name, "sigma_mm", sigma_mm)
    wavelength_mm = positive(name, "wavelength_mm", wavelength_mm)
    gamma = positive(name, "gamma", gamma)
    truncate = positive(name, "truncate", truncate)
    spacing = voxel_spacing(name, spacing, ndim)
    thetas = _thetas(name, theta)
    if planes not in PLANES:
        raise InputError(name, f"planes must be one of {', '.join(PLANES)}, not {planes!r}")
    if pooling not in POOLINGS:
        raise InputError(name, f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    angles = _distinct_angles(thetas)
    acc = None
    plane_names = ("axial",) if planes == "axial" else ("axial", "coronal", "sagittal")
    for plane in plane_names:
        ay, ax, other = _PLANE_AXES[plane]
        stack = np.transpose(arr, (other, ay, ax))  # (n, y role, x role)
        part = _plane_responses(stack, (spacing[ay], spacing[ax]), sigma_mm, wavelength_mm, gamma, angles, boundary,
                                truncate, pooling)
        part = np.transpose(part, np.argsort((other, ay, ax)))
        if acc is None:
            acc = part
        elif pooling == "mean":
            acc += part
        else:
            (np.maximum if pooling == "max" else np.minimum)(acc, part, out=acc)
    if pooling == "mean":
        acc = acc / (len(thetas) * len(plane_names))
    return restore_shape(np.ascontiguousarray(acc), ndim)
