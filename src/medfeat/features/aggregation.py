"""IBSI's texture aggregation methods, for every texture family: which matrices are merged (summed
element-wise) and over which the features are averaged.

A family builds its matrices as a *stack* with leading axes: ``(direction, slice)`` for the 2D
matrices (one per in-plane direction and slice) and ``(direction,)`` for the 3D ones (one per
volumetric direction). A family without directions (GLSZM, GLDZM, NGTDM, NGLDM) has a single
direction: ``(1, slices)`` and ``(1,)``. Each method merges its stack over some of these axes
(:data:`PLAN`) and averages the features of the merged matrices that are not empty:

=============================  ======  ==============  ===============================================
method (IBSI code)             stack   axes merged     features averaged over
=============================  ======  ==============  ===============================================
2D, averaged (BTW3)            2D      --              slices and directions
2D, slice-merged (SUJT)        2D      direction       slices (each slice's directions merged)
2.5D, direction-merged (JJUI)  2D      slice           directions (each merged over the slices)
2.5D, merged (ZW7Z)            2D      both            -- (one matrix)
3D, averaged (ITBB)            3D      --              directions
3D, merged (IAZD)              3D      direction       -- (one matrix)
2D (8QNN), no directions       2D      --              slices
2.5D (62GR), no directions     2D      both            -- (the slices' matrices merged)
3D (KOBO), no directions       3D      --              -- (one matrix of the volume)
=============================  ======  ==============  ===============================================

Empty matrices (a slice without ROI voxels or without any pair) are left out of the averages; a
method without any non-empty matrix has no features (``None``, NaN columns after
:func:`medfeat.features.base.flatten`).

:func:`aggregate` is the one implementation: a family gives it the methods wanted, its feature
function and two builders (the 2D and the 3D stack, each built only when a method needs it).
Dense stacks (an array, or a tuple of arrays whose first holds the matrices and the others
per-matrix quantities such as voxel counts, merged alike) are merged by :func:`merge_arrays`;
a family whose matrices are not dense (zone lists) passes its own ``merge``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


#: For each method, the stack it is computed from (``"2D"``: leading axes ``(direction, slice)``,
#: ``"3D"``: ``(direction,)``) and the leading axes merged; in the order batches are computed.
PLAN: dict[str, tuple[str, tuple[int, ...]]] = {
    "2D, averaged": ("2D", ()),
    "2D, slice-merged": ("2D", (0,)),
    "2.5D, direction-merged": ("2D", (1,)),
    "2.5D, merged": ("2D", (0, 1)),
    "3D, averaged": ("3D", ()),
    "3D, merged": ("3D", (0,)),
    "2D": ("2D", ()),
    "2.5D": ("2D", (0, 1)),
    "3D": ("3D", ()),
}

#: Leading (stack) axes of each stack.
LEADING_AXES = {"2D": 2, "3D": 1}


def merge_arrays(stack, axes: tuple[int, ...], lead: int):
    """Merge a dense stack over its leading ``axes`` and leave out the empty merged matrices.

    Parameters
    ----------
    stack : ndarray or tuple of ndarray
        Matrices with ``lead`` leading stack axes, or a tuple whose first array holds them and
        the others per-matrix quantities with the same leading axes (voxel counts), summed alike.
    axes : tuple of int
        Leading axes to merge (element-wise sum).
    lead : int
        Number of leading axes.

    Returns
    -------
    batch, n
        The non-empty merged matrices flattened to one batch axis (same type as ``stack``) and
        their number.
    """
    arrays = stack if isinstance(stack, tuple) else (stack,)
    count = 1  # matrices after the merge (not -1 in reshape: matrices may have no element)
    for k, size in enumerate(arrays[0].shape[:lead]):
        if k not in axes:
            count *= size
    merged = []
    for a in arrays:
        m = a.sum(axis=axes) if axes else a
        merged.append(m.reshape((count,) + a.shape[lead:]))
    first = merged[0]
    keep = first.reshape(first.shape[0], -1).any(axis=1)
    n = int(keep.sum())
    if n < keep.size:
        merged = [m[keep] for m in merged]
    return (tuple(merged) if isinstance(stack, tuple) else merged[0]), n


def feature_means(values: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, float]:
    """``{tag: mean of values[tag][lo:hi]}``, as ``float(np.mean(values[tag][lo:hi]))`` gives it (the
    same sum, from 0.0, then one division), for every feature in one reduction."""
    if hi - lo == 1:  # one matrix: (0.0 + x) / 1 (a lone -0.0 gives 0.0, as np.mean)
        return {tag: float(v[lo]) + 0.0 for tag, v in values.items()}
    rows = np.array([v[lo:hi] for v in values.values()], dtype=np.float64)
    return dict(zip(values, (rows.sum(axis=1) / (hi - lo)).tolist()))


def aggregate(methods: Sequence[str], features: Callable[[Any], dict[str, np.ndarray]],
              build2d: Callable[[], Any], build3d: Callable[[], Any], *,
              merge: Callable[[Any, tuple[int, ...], int], tuple[Any, int]] = merge_arrays,
              joint: bool = False) -> dict[str, dict[str, float] | None]:
    """Features of a texture family in the IBSI aggregation methods ``methods``.

    Parameters
    ----------
    methods : sequence of str
        Keys of :data:`PLAN`, already checked by the family (the six directional methods, or
        ``"2D"``, ``"2.5D"``, ``"3D"`` for a family without directions).
    features : callable
        ``features(batch) -> {tag: values (n,)}``, the features of a batch of ``n`` non-empty
        matrices (as ``merge`` returns it). With ``joint``, ``features(batches)`` receives the
        batches of every method at once (a list, in :data:`PLAN` order, those with ``n == 0``
        left out) and returns the values of their concatenation.
    build2d, build3d : callable
        ``() -> stack``: the 2D stack (leading axes ``(direction, slice)``) and the 3D stack
        (``(direction,)``); each is called at most once, and only when a method needs it.
    merge : callable
        ``merge(stack, axes, lead) -> (batch, n)``: :func:`merge_arrays` for dense stacks.
    joint : bool
        Compute the features of every method's matrices in one call (one pass through the feature
        code for all of them; the 2D and 3D batches must then be concatenable).

    Returns
    -------
    dict
        ``{method: {tag: mean over the method's non-empty matrices} or None}`` for every method.
    """
    for m in methods:
        if m not in PLAN:
            raise ValueError(f"unknown aggregation method {m!r}; expected one of {list(PLAN)}")
    out: dict[str, dict[str, float] | None] = {m: None for m in methods}
    batches: list[tuple[str, Any, int]] = []  # with ``joint``: (method, batch, n) of every method
    for dim, build in (("2D", build2d), ("3D", build3d)):
        wanted = [m for m, (d, _) in PLAN.items() if d == dim and m in out]
        if not wanted:
            continue
        stack = build()
        for m in wanted:
            batch, n = merge(stack, PLAN[m][1], LEADING_AXES[dim])
            if joint:
                batches.append((m, batch, n))
            elif n:
                out[m] = feature_means(features(batch), 0, n)
        del stack
    batches = [b for b in batches if b[2]]
    if batches:
        values = features([batch for _, batch, _ in batches])
        lo = 0
        for m, _, n in batches:
            out[m] = feature_means(values, lo, lo + n)
            lo += n
    return out
