"""What every IBSI chapter-2 filter shares: boundary conditions, axes, 2D slice-wise application and
rotation invariance by right-angle rotations with pooling.

Axes. medfeat arrays are ``(z, y, x)``; IBSI's x, y, z are the NIfTI voxel axes i, j, k, i.e.
medfeat's axes 2, 1, 0. A kernel named along (x, y, z) -- Laws ``E5L5S5``, a wavelet sub-band
``LHL`` -- is applied with its first letter along axis 2, its second along axis 1, its third along
axis 0. "2D" filters act in the axial (x, y) plane, slice by slice: axes 2 and 1, never along 0.

Boundary conditions (IBSI 2, 2.2): ``zero`` (constant 0), ``nearest`` (edge value repeated),
``periodic`` (wrap-around) and ``mirror`` (symmetric reflection, the edge voxel repeated:
``d c b a | a b c d``), i.e. scipy.ndimage's ``constant``, ``nearest``, ``wrap`` and ``reflect``.

Convolution, not correlation (checked on IBSI's map 3.a.1): :func:`convolve1d` places tap ``n`` of
an ``m``-tap kernel at offset ``n - m // 2`` from the output voxel, as ``scipy.ndimage.convolve1d``
with ``origin=0`` does.

Rotation invariance (IBSI 2, 2.3): the filter is applied to every right-angle rotation of the
image (24 in 3D, 4 in the axial plane in 2D), each response is rotated back, and the responses are
pooled voxel-wise (``max``, ``mean`` or ``min``).
"""
from __future__ import annotations

import itertools
import numbers
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage

from medfeat.errors import InputError

BOUNDARIES = {"zero": "constant", "nearest": "nearest", "periodic": "wrap", "mirror": "reflect"}
POOLINGS = ("max", "mean", "min")


def scipy_mode(boundary: str) -> str:
    """scipy.ndimage's ``mode`` for an IBSI boundary condition."""
    try:
        return BOUNDARIES[boundary]
    except KeyError:
        raise InputError("filter", f"boundary must be one of {', '.join(BOUNDARIES)}, not {boundary!r}") from None


def numpy_pad_mode(boundary: str) -> str:
    """numpy.pad's ``mode`` for an IBSI boundary condition (``constant`` pads zeros)."""
    scipy_mode(boundary)  # one check, one message
    return {"zero": "constant", "nearest": "edge", "periodic": "wrap", "mirror": "symmetric"}[boundary]


def as_float(image: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The image as a float array ``(z, y, x)`` (a 2D array is one slice)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise InputError("filter", f"expects a 2D or 3D image, not {arr.ndim}D")
    return arr.astype(dtype, copy=False)


# -- input checks every filter shares (one place, one wording) -----------------------------------
DIMENSIONS = ("3d", "2d")


def check_dimension(name: str, dimension, dimensions=DIMENSIONS) -> str:
    """``dimension`` lower-cased, or a one-line :class:`InputError` naming filter ``name``."""
    if not isinstance(dimension, str) or dimension.lower() not in dimensions:
        raise InputError(name, f"dimension must be one of {', '.join(map(repr, dimensions))}, not {dimension!r}")
    return dimension.lower()


def check_boundary(name: str, boundary) -> str:
    try:
        scipy_mode(boundary)
    except InputError as err:
        raise InputError(name, err.reason) from None
    return boundary


def check_image(name: str, image) -> tuple[np.ndarray, int]:
    """The image as float64 ``(z, y, x)`` and the caller's number of dimensions (2 or 3)."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise InputError(name, f"image must hold real numbers, not {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InputError(name, f"image must be a 2D (y, x) or 3D (z, y, x) array, not {arr.ndim}D")
    if arr.size == 0:
        raise InputError(name, f"image is empty (shape {arr.shape})")
    return as_float(arr), arr.ndim


def check_inputs(name: str, image, dimension: str, boundary: str, dimensions=DIMENSIONS) -> tuple[np.ndarray, int]:
    """Dimension, boundary and image of filter ``name``, checked once: the image as float64
    ``(z, y, x)`` and the caller's number of dimensions (2 or 3) to give the result back in."""
    check_dimension(name, dimension, dimensions)
    check_boundary(name, boundary)
    return check_image(name, image)


def restore_shape(out: np.ndarray, ndim: int) -> np.ndarray:
    """The result in the caller's shape: a 2D input gets a 2D answer."""
    return out[0] if ndim == 2 else out


def positive(name: str, what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise InputError(name, f"{what} must be a positive finite number, not {value!r}")
    return float(value)


def check_level(name: str, level, minimum: int = 1) -> int:
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or level < minimum:
        raise InputError(name, f"level must be an integer >= {minimum}, not {level!r}")
    return int(level)


def check_flag(name: str, what: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(name, f"{what} must be True or False, not {value!r}")
    return bool(value)


def voxel_spacing(name: str, spacing, ndim: int) -> np.ndarray:
    """Voxel spacing in mm as a ``(z, y, x)`` float array, from a number, ``(y, x)`` for a 2D
    image, or ``(z, y, x)``."""
    if isinstance(spacing, numbers.Real) and not isinstance(spacing, bool):
        values = [spacing] * 3
    else:
        try:
            values = list(spacing)
        except TypeError:
            raise InputError(name, f"spacing must be a number or a sequence of numbers, not {spacing!r}") from None
        if len(values) == 2 and ndim == 2:
            values = [1.0] + values
        if len(values) != 3:
            want = "2 (y, x) or 3 (z, y, x)" if ndim == 2 else "3 (z, y, x)"
            raise InputError(name, f"spacing must have {want} values, not {len(values)}")
    return np.array([positive(name, "spacing", v) for v in values])


def convolve1d(image: np.ndarray, kernel: np.ndarray, axis: int, boundary: str, dilation: int = 1) -> np.ndarray:
    """Convolve along ``axis`` with a 1D kernel (``dilation`` > 1 spreads its taps a trous: tap
    ``n`` of ``m`` at offset ``dilation * (n - m // 2)``)."""
    k = np.asarray(kernel, dtype=float)
    if dilation > 1:  # tap n lands at offset dilation * (n - m // 2), as undilated (even m too)
        centre = (len(k) // 2) * dilation
        wide = np.zeros(2 * centre + 1)
        wide[: (len(k) - 1) * dilation + 1: dilation] = k
        k = wide
    return ndimage.convolve1d(image, k, axis=axis, mode=scipy_mode(boundary), cval=0.0)


def separable(image: np.ndarray, kernels: dict[int, np.ndarray], boundary: str, dilation: int = 1) -> np.ndarray:
    """Convolve with a separable kernel: ``kernels`` maps axis -> 1D kernel (axes left out are not
    filtered)."""
    out = image
    for axis, k in kernels.items():
        out = convolve1d(out, k, axis, boundary, dilation)
    return out


def slice_wise(image: np.ndarray, filter2d: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a 2D filter (on ``(y, x)`` arrays) to every axial slice."""
    return np.stack([filter2d(image[z]) for z in range(image.shape[0])])


# -- right-angle rotations ------------------------------------------------------------------------
def rotations_3d() -> list[tuple[tuple[int, int, int], tuple[bool, bool, bool]]]:
    """The 24 proper rotations of the cube as (axis permutation, flips): orientation-preserving
    signed permutation matrices (determinant +1)."""
    out = []
    for perm in itertools.permutations(range(3)):
        parity = np.linalg.det(np.eye(3)[list(perm)])
        for flips in itertools.product((False, True), repeat=3):
            if parity * (-1) ** sum(flips) > 0:
                out.append((perm, flips))
    return out


def _rotate(arr: np.ndarray, perm, flips) -> np.ndarray:
    out = np.transpose(arr, perm)
    for axis, f in enumerate(flips):
        if f:
            out = np.flip(out, axis)
    return out


def _unrotate(arr: np.ndarray, perm, flips) -> np.ndarray:
    for axis, f in enumerate(flips):
        if f:
            arr = np.flip(arr, axis)
    return np.transpose(arr, np.argsort(perm))


def rotations(dimension: str) -> Iterator[tuple]:
    """The right-angle rotations for ``"3d"`` (24) or ``"2d"`` (4, in the axial plane)."""
    if dimension == "3d":
        yield from rotations_3d()
    else:  # in-plane: (y, x) -> (x, -y) four times; z stays
        yield from (((0, 1, 2), (False, False, False)), ((0, 2, 1), (False, False, True)),
                    ((0, 1, 2), (False, True, True)), ((0, 2, 1), (False, True, False)))


def rotation_invariant(image: np.ndarray, apply: Callable[[np.ndarray], np.ndarray], dimension: str,
                       pooling: str) -> np.ndarray:
    """Pool ``apply`` over the right-angle rotations of ``image`` (responses rotated back)."""
    if pooling not in POOLINGS:
        raise InputError("filter", f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    acc = None
    n = 0
    for perm, flips in rotations(dimension):
        r = _unrotate(apply(np.ascontiguousarray(_rotate(image, perm, flips))), perm, flips)
        n += 1
        if acc is None:
            acc = np.array(r, dtype=float, copy=True)
        elif pooling == "max":
            np.maximum(acc, r, out=acc)
        elif pooling == "min":
            np.minimum(acc, r, out=acc)
        else:
            acc += r
    return acc / n if pooling == "mean" else acc
