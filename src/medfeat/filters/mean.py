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
from medfeat.filters.boundary import check_inputs, restore_shape, separable

__all__ = ["mean_filter"]



def _odd_support(name: str, what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1 or value % 2 == 0:
        raise InputError(name, f"{what} must be an odd positive integer (voxels), not {value!r}")
    return int(value)


def box_mean(image: np.ndarray, support: int, dimension: str, boundary: str) -> np.ndarray:
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
    arr, ndim = check_inputs("mean_filter", image, dimension, boundary)
    m = _odd_support("mean_filter", "support", support)
    return restore_shape(box_mean(arr, m, dimension.lower(), boundary), ndim)
