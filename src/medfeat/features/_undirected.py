"""Aggregation of texture matrices without directions (NGTDM, NGLDM): IBSI's "2D", "2.5D" and "3D".

IBSI (reference manual, sections 3.10.1 and 3.11.1): "2D" computes the features of each slice's
matrix and averages them over the slices (**8QNN**); "2.5D" merges the slices' matrices into one
(element-wise sum) and computes the features of that matrix (**62GR**); "3D" computes them from
one matrix of the whole volume (**KOBO**). Slices without a matrix (no ROI voxel, or for the
NGTDM no voxel with a neighbour) are left out of the average; a method without any matrix gives
NaN features.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from medfeat.features.base import mean_over, undirected_aggregations


def aggregate_undirected(compute: Callable[[np.ndarray], dict[str, np.ndarray]], aggregations,
                         build2d: Callable[[], np.ndarray],
                         build3d: Callable[[], np.ndarray]) -> dict[str, dict[str, float] | None]:
    """Apply IBSI's aggregation methods to a family whose matrices have no direction.

    Parameters
    ----------
    compute : callable
        ``compute(matrices (n, ...)) -> {tag: values (n,)}``, features of a batch of non-empty
        matrices. Whatever the features need beyond the matrix (voxel counts...) is part of it.
    aggregations : sequence of str
        Requested methods: ``"2D"``, ``"2.5D"``, ``"3D"`` or any directional IBSI method, which
        stands for the undirected method of its dimension (``"2D, averaged"`` -> ``"2D"``).
    build2d : callable
        ``() -> matrices (slices, ...)``, one per slice.
    build3d : callable
        ``() -> matrix (...)`` of the volume.

    Returns
    -------
    dict
        ``{method: {tag: value} or None}`` for the methods of :func:`undirected_aggregations`.
    """
    methods = undirected_aggregations(aggregations)
    out: dict[str, dict[str, float] | None] = {}

    def of(mats):
        keep = mats.reshape(mats.shape[0], -1).any(axis=1)
        if not keep.any():
            return None
        feats = compute(mats[keep])
        return {tag: mean_over(v) for tag, v in feats.items()}

    if "2D" in methods or "2.5D" in methods:
        m = build2d()
        if "2D" in methods:
            out["2D"] = of(m)
        if "2.5D" in methods:
            out["2.5D"] = of(m.sum(axis=0)[np.newaxis])
    if "3D" in methods:
        out["3D"] = of(build3d()[np.newaxis])
    return out
