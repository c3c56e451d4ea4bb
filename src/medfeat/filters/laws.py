"""Laws kernels and their texture energy maps (IBSI chapter 2, filter code JTXT).

A Laws kernel is the separable product of 1D kernels named by letters and lengths, normalised to
unit L2 norm (IBSI 2, 3.3):

=====  ==========================  =====  ==========================
L5     [1, 4, 6, 4, 1] / sqrt(70)  L3     [1, 2, 1] / sqrt(6)
E5     [-1, -2, 0, 2, 1] / sqrt(10) E3    [-1, 0, 1] / sqrt(2)
S5     [-1, 0, 2, 0, -1] / sqrt(6) S3     [-1, 2, -1] / sqrt(6)
W5     [-1, 2, 0, -2, 1] / sqrt(10)
R5     [1, -4, 6, -4, 1] / sqrt(70)
=====  ==========================  =====  ==========================

The letters go in IBSI's axis order x, y, z (NIfTI i, j, k): ``E5L5S5`` is E5 along x (medfeat
axis 2), L5 along y (axis 1) and S5 along z (axis 0). A 2D name has two parts (x, y) and is applied
in the axial plane of every slice. The kernels are convolved (not correlated): IBSI's map 3.a.1 has
``+255 * (2/sqrt 10) * (6/sqrt 70) * (2/sqrt 6) = +94.43`` one voxel past the impulse along x.

Rotation invariance (IBSI 2, 2.3) pools the response over the right-angle rotations of
:func:`medfeat.filters.boundary.rotations` (24 in 3D, 4 in the axial plane in 2D). Filtering the
rotated image and rotating the response back equals filtering the image with the rotated kernel
(the boundary conditions are symmetric and the kernels have odd lengths), and a rotated separable
kernel is again separable -- its 1D kernels permuted over the axes and some of them reversed. So
each distinct rotated kernel is applied once to the unrotated image, with the 1D passes they share
computed once (reversing a symmetric kernel changes nothing, an antisymmetric one only its sign):
E5L5S5 needs 15 1D passes instead of 72, and the result equals
:func:`medfeat.filters.boundary.rotation_invariant` (tested).

The energy map is the mean of ``|response|`` over a ``(2 delta + 1)`` voxel cube (3D) or axial
square (2D) with the same boundary condition, computed on the pooled response (as MIRP).

References
----------
.. [1] Depeursinge A. et al., "Standardised convolutional filtering for radiomics", IBSI chapter 2
       reference manual, arXiv:2006.05470 (v9, 2024), section 3.3 "Laws kernels" (JTXT) and 2.3
       (rotation invariance); phase 1 tests 3.a.1-3.c.3, phase 2 configurations 4.A/4.B.
.. [2] Laws K.I., "Rapid texture identification", Proc. SPIE 0238 (1980) 376-381.
"""
from __future__ import annotations

import math
import numbers
import re

import numpy as np

from medfeat.errors import InputError
from medfeat.filters.boundary import POOLINGS, convolve1d, rotations
from medfeat.filters.boundary import check_inputs, restore_shape
from medfeat.filters.mean import box_mean

__all__ = ["LAWS_KERNELS", "laws_filter", "laws_kernels_1d"]

#: The 1D Laws kernels, unit L2 norm.
LAWS_KERNELS: dict[str, np.ndarray] = {
    name: np.asarray(taps, dtype=float) / math.sqrt(sum(t * t for t in taps))
    for name, taps in {
        "L3": (1, 2, 1), "E3": (-1, 0, 1), "S3": (-1, 2, -1),
        "L5": (1, 4, 6, 4, 1), "E5": (-1, -2, 0, 2, 1), "S5": (-1, 0, 2, 0, -1),
        "W5": (-1, 2, 0, -2, 1), "R5": (1, -4, 6, -4, 1),
    }.items()
}
_PART = re.compile(r"[LESWR][35]")


def laws_kernels_1d(kernel: str) -> list[np.ndarray]:
    """The 1D kernels of a Laws kernel name, in the name's (x, y[, z]) order."""
    name = kernel.upper() if isinstance(kernel, str) else ""
    parts = _PART.findall(name)
    if not parts or "".join(parts) != name or any(p not in LAWS_KERNELS for p in parts):
        raise InputError("laws_filter", f"kernel must be 2 or 3 of {', '.join(LAWS_KERNELS)} (e.g. 'E5L5S5'), "
                                        f"not {kernel!r}")
    return [LAWS_KERNELS[p] for p in parts]


def _canonical(k: np.ndarray) -> tuple[np.ndarray, float]:
    """``k = sign * c`` with the first non-zero tap of ``c`` positive."""
    first = k[np.flatnonzero(k)[0]]
    return (k, 1.0) if first > 0 else (-k, -1.0)


def _rotated_kernels(kernels: dict[int, np.ndarray], perm, flips) -> dict[int, np.ndarray]:
    """The 1D kernels (axis -> kernel) of the separable kernel equivalent to filtering the rotated
    image ``_rotate(image, perm, flips)`` with ``kernels`` and rotating the response back: axis
    ``j`` of the rotated image is original axis ``perm[j]``, reversed when ``flips[j]``."""
    return {int(perm[j]): (k[::-1] if flips[j] else k) for j, k in kernels.items()}


def _pool(acc: np.ndarray | None, r: np.ndarray, signs: list[float], pooling: str) -> np.ndarray:
    """Pool the responses ``s * r`` (``s`` in ``signs``) into ``acc`` (a sum for ``mean``)."""
    if pooling == "mean":
        total = sum(signs)
        term = total * r
    elif len(set(signs)) == 2:  # +r and -r: max is |r|, min is -|r|
        term = np.abs(r) if pooling == "max" else -np.abs(r)
    else:
        term = signs[0] * r
    if acc is None:
        return np.array(term, dtype=float, copy=True)
    if pooling == "mean":
        acc += term
    else:
        (np.maximum if pooling == "max" else np.minimum)(acc, term, out=acc)
    return acc


def _laws(image: np.ndarray, parts: list[np.ndarray], dimension: str, boundary: str, invariant: bool,
          pooling: str) -> np.ndarray:
    axes = (2, 1, 0) if dimension == "3d" else (2, 1)
    kernels = dict(zip(axes, parts))
    if not invariant:
        out = image
        for axis in axes:
            out = convolve1d(out, kernels[axis], axis, boundary)
        return out
    # Distinct rotated kernels, as a tree over the passes along axes 2, 1 (, 0); each leaf keeps
    # the signs its rotations carry (a reversed antisymmetric kernel is the negated kernel).
    tree: dict = {}
    count = 0
    for perm, flips in rotations(dimension):
        rotated = _rotated_kernels(kernels, perm, flips)
        sign, path = 1.0, []
        for axis in axes:
            c, s = _canonical(rotated[axis])
            sign *= s
            path.append(c.tobytes())
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], []).append(sign)
        count += 1

    def walk(arr, node, depth, acc):  # depth-first: at most one partial result per axis alive
        axis = axes[depth]
        for key, child in node.items():
            r = convolve1d(arr, np.frombuffer(key), axis, boundary)
            acc = _pool(acc, r, child, pooling) if depth == len(axes) - 1 else walk(r, child, depth + 1, acc)
        return acc

    acc = walk(image, tree, 0, None)
    return acc / count if pooling == "mean" else acc


def laws_filter(image, kernel: str = "E5L5S5", dimension: str = "3d", boundary: str = "zero",
                rotation_invariant: bool = False, pooling: str = "max", energy_delta: int | None = None) -> np.ndarray:
    """Laws kernel filter and texture energy map (IBSI 2 filter code JTXT).

    Parameters
    ----------
    image : array_like
        Intensities, ``(z, y, x)`` (IBSI's x, y, z are axes 2, 1, 0), or one slice ``(y, x)``.
    kernel : str
        Laws kernel name, 1D kernels in IBSI's x, y, z order: three parts in 3D (``"E5L5S5"``:
        E5 along x = axis 2, L5 along y = axis 1, S5 along z = axis 0), two in 2D (``"L5S5"``).
        Parts: L3 E3 S3 L5 E5 S5 W5 R5 (unit L2 norm).
    dimension : {"3d", "2d"}
        ``"2d"`` filters each axial slice on its own.
    boundary : {"zero", "nearest", "periodic", "mirror"}
        Image extension beyond its edges (mirror = scipy.ndimage's ``reflect``); also used by
        the energy map.
    rotation_invariant : bool
        Pool the responses of the kernel under the right-angle rotations (24 in 3D, the 4
        in-plane rotations in 2D).
    pooling : {"max", "mean", "min"}
        Voxel-wise pooling of the rotated responses (IBSI uses ``"max"``).
    energy_delta : int or None
        When given, return the energy map: the mean of ``|response|`` (of the pooled response)
        over a ``2 delta + 1`` voxel cube (3D) or axial square (2D), same boundary condition.

    Returns
    -------
    ndarray
        float64 response (or energy) map of the image's shape.

    Raises
    ------
    InputError
        A bad setting or image (one-line message).

    References
    ----------
    Depeursinge A. et al., "Standardised convolutional filtering for radiomics", arXiv:2006.05470,
    sections 3.3 (Laws, JTXT) and 2.3; IBSI 2 tests 3.a.1-3.a.3 (E5L5S5), 3.b.1-3.b.3 (E3W5R5),
    3.c.1-3.c.3 (2D L5S5), energy delta = 7.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((5, 5, 5)); x[2, 2, 2] = 255.0
    >>> round(float(laws_filter(x, "E5L5S5")[2, 2, 3]), 2)  # one voxel past the impulse along x
    94.43
    """
    name = "laws_filter"
    arr, ndim = check_inputs(name, image, dimension, boundary)
    dim = dimension.lower()
    parts = laws_kernels_1d(kernel)
    if len(parts) != (3 if dim == "3d" else 2):
        raise InputError(name, f"a {dim} Laws kernel has {3 if dim == '3d' else 2} parts, {kernel!r} has {len(parts)}")
    if not isinstance(rotation_invariant, (bool, np.bool_)):
        raise InputError(name, f"rotation_invariant must be True or False, not {rotation_invariant!r}")
    if pooling not in POOLINGS:
        raise InputError(name, f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if energy_delta is not None and (isinstance(energy_delta, bool) or not isinstance(energy_delta, numbers.Integral)
                                     or energy_delta < 0):
        raise InputError(name, f"energy_delta must be None or a non-negative integer (voxels), not {energy_delta!r}")
    out = _laws(arr, parts, dim, boundary, bool(rotation_invariant), pooling)
    if energy_delta is not None:
        out = box_mean(np.abs(out), 2 * int(energy_delta) + 1, dim, boundary)
    return restore_shape(out, ndim)
