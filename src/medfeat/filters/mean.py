"""Mean filter (IBSI chapter 2, filter code S60F).

The response at a voxel is the average of the ``M`` voxels (2D: ``M x M`` in the axial plane,
3D: ``M x M x M``) of the box centred on it, the image being extended beyond its edges by the
boundary condition. It is a separable convolution with the 1D kernel ``ones(M) / M`` along each
filtered axis (:func:`medfeat.filters.boundary.separable`).

This module also holds the input checks the other IBSI 2 filters of this package share
(:func:`_prepare`, :func:`_spacing`, :func:`_restore`): every public filter checks its input once,
at the edge, and raises :class:`~medfeat.errors.InputError` with a one-line message.

References
----------
.. [1] Depeursinge A., Andrearczyk V., Whybra P., et al. "Standardised convolutional filtering for
       radiomics", IBSI chapter 2 reference manual, arXiv:2006.05470 (v9, 2024): section 2.2
       (boundary conditions), 3.1 "Mean filter" (S60F); phase 1 tests 1.a.1-1.a.4 and 1.b.1,
       phase 2 configurations 2.A/2.B.
"""
from __future__ import annotations

import numbers

import numpy as np

from medfeat.errors import InputError
from medfeat.filters.boundary import as_float, scipy_mode, separable

__all__ = ["mean_filter"]

DIMENSIONS = ("2d", "3d")


# -- shared input checks (used by log, laws and gabor too) ----------------------------------------
def _prepare(name: str, image, dimension: str, boundary: str, dimensions=DIMENSIONS) -> tuple[np.ndarray, int]:
    """Check the common inputs of filter ``name`` once; return the image as float64 ``(z, y, x)``
    and the caller's number of dimensions (2 or 3) to give the result back in."""
    if not isinstance(dimension, str) or dimension.lower() not in dimensions:
        raise InputError(name, f"dimension must be one of {', '.join(map(repr, dimensions))}, not {dimension!r}")
    try:
        scipy_mode(boundary)
    except InputError as err:
        raise InputError(name, err.reason) from None
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise InputError(name, f"image must hold real numbers, not {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InputError(name, f"image must be a 2D (y, x) or 3D (z, y, x) array, not {arr.ndim}D")
    if arr.size == 0:
        raise InputError(name, f"image is empty (shape {arr.shape})")
    ndim = arr.ndim
    return as_float(arr), ndim


def _restore(out: np.ndarray, ndim: int) -> np.ndarray:
    """The result in the caller's shape: a 2D input gets a 2D answer."""
    return out[0] if ndim == 2 else out


def _positive(name: str, what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise InputError(name, f"{what} must be a positive finite number, not {value!r}")
    return float(value)


def _spacing(name: str, spacing, ndim: int) -> np.ndarray:
    """Voxel spacing in mm as a ``(z, y, x)`` float array, from a number, ``(y, x)`` for a 2D
    image, or ``(z, y, x)``."""
    if isinstance(spacing, numbers.Real) and not isinstance(spacing, bool):
        values = [spacing] * 3
    else:
        try:
            values = [v for v in spacing]
        except TypeError:
            raise InputError(name, f"spacing must be a number or a sequence of numbers, not {spacing!r}") from None
        if len(values) == 2 and ndim == 2:
            values = [1.0] + values
        if len(values) != 3:
            want = "2 (y, x) or 3 (z, y, x)" if ndim == 2 else "3 (z, y, x)"
            raise InputError(name, f"spacing must have {want} values, not {len(values)}")
    return np.array([_positive(name, "spacing", v) for v in values])


def _odd_support(name: str, what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1 or value % 2 == 0:
        raise InputError(name, f"{what} must be an odd positive integer (voxels), not {value!r}")
    return int(value)


def _box(image: np.ndarray, support: int, dimension: str, boundary: str) -> np.ndarray:
    """The box mean of a float ``(z, y, x)`` array (no checks)."""
    k = np.full(support, 1.0 / support)
    axes = (2, 1) if dimension == "2d" else (2, 1, 0)
    return separable(image, {a: k for a in axes}, boundary)


# -- public ----------------------------------------------------------------------------------------
def mean_filter(image, support: int, dimension: str = "3d", boundary: str = "zero") -> np.ndarray:
    """Mean filter (IBSI 2 filter code S60F).

    Parameters
    ----------
    image : array_like
        Intensities, ``(z, y, x)`` (medfeat's axes; IBSI's x, y, z are axes 2, 1, 0), or one
        slice ``(y, x)``.
    support : int
        Filter support ``M`` in voxels, odd: the box is ``M x M x M`` (3D) or ``M x M`` in the
        axial plane (2D), centred on the voxel.
    dimension : {"3d", "2d"}
        ``"2d"`` filters each axial slice on its own (nothing is mixed along z).
    boundary : {"zero", "nearest", "periodic", "mirror"}
        How the image is extended beyond its edges (IBSI 2, 2.2; mirror repeats the edge voxel,
        scipy.ndimage's ``reflect``).

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
    section 3.1 (mean filter, S60F); IBSI 2 tests 1.a.1-1.a.4 (3D, M = 15) and 1.b.1 (2D).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((3, 3, 3)); x[1, 1, 1] = 27.0
    >>> float(mean_filter(x, 3)[0, 0, 0])
    1.0
    """
    arr, ndim = _prepare("mean_filter", image, dimension, boundary)
    m = _odd_support("mean_filter", "support", support)
    return _restore(_box(arr, m, dimension.lower(), boundary), ndim)
