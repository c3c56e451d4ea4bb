"""What every feature family shares: feature definitions, column names, directions.

A feature is identified by its IBSI tag (e.g. ``cm.joint.max``), its IBSI code
(e.g. ``GYBY``) and, for texture families, the aggregation method. Its column
name in medfeat's tables is the tag with dots replaced by underscores, followed
by a short aggregation suffix: ``cm_joint_max_2d_avg``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

# IBSI's names for the texture aggregation methods, and medfeat's column suffixes.
AGGREGATIONS: dict[str, str] = {
    "2D, averaged": "2d_avg",
    "2D, slice-merged": "2d_smrg",
    "2.5D, direction-merged": "25d_dmrg",
    "2.5D, merged": "25d_mrg",
    "3D, averaged": "3d_avg",
    "3D, merged": "3d_mrg",
}
AGGREGATIONS_2D = ("2D, averaged", "2D, slice-merged", "2.5D, direction-merged", "2.5D, merged")
AGGREGATIONS_3D = ("3D, averaged", "3D, merged")

# Families whose matrices have no direction (GLSZM, GLDZM, NGTDM, NGLDM) have three IBSI methods:
# "2D" (a matrix per slice, features averaged over slices), "2.5D" (the slices' matrices merged) and
# "3D" (one matrix of the volume). Their column suffixes, and the method each directional one stands for.
UNDIRECTED_AGGREGATIONS: dict[str, str] = {"2D": "2d", "2.5D": "25d", "3D": "3d"}
UNDIRECTED_OF: dict[str, str] = {
    "2D, averaged": "2D", "2D, slice-merged": "2D", "2.5D, direction-merged": "2.5D", "2.5D, merged": "2.5D",
    "3D, averaged": "3D", "3D, merged": "3D", "2D": "2D", "2.5D": "2.5D", "3D": "3D",
}


@dataclass(frozen=True)
class FeatureDef:
    """One feature: IBSI tag, IBSI identifier code and human name."""

    tag: str
    code: str
    name: str


def mean_over(values) -> float:
    """Mean of a feature over matrices (slices, directions), as ``float(np.mean(values))`` gives
    it (the same sum, then one division) without np.mean's overhead: it runs once per feature."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(v[0]) if v.size == 1 else float(v.sum() / v.size)


def column(tag: str, aggregation: str | None = None) -> str:
    """Stable column name of a feature: ``column("cm.joint.max", "2D, averaged") == "cm_joint_max_2d_avg"``."""
    name = tag.replace(".", "_")
    if aggregation:
        name += "_" + (AGGREGATIONS[aggregation] if aggregation in AGGREGATIONS
                       else UNDIRECTED_AGGREGATIONS[aggregation])
    return name


def check_aggregations(aggregations) -> tuple[str, ...]:
    aggs = tuple(aggregations)
    for a in aggs:
        if a not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation method {a!r}; expected one of {list(AGGREGATIONS)}")
    return aggs


def undirected_aggregations(aggregations) -> tuple[str, ...]:
    """The methods of a family without directions that these IBSI methods ask for, in the order
    ``2D, 2.5D, 3D``: ``("2D, averaged", "2D, slice-merged", "3D, merged") -> ("2D", "3D")``."""
    wanted = set()
    for a in aggregations:
        if a not in UNDIRECTED_OF:
            raise ValueError(f"unknown aggregation method {a!r}; expected one of {list(UNDIRECTED_OF)}")
        wanted.add(UNDIRECTED_OF[a])
    return tuple(a for a in UNDIRECTED_AGGREGATIONS if a in wanted)


def directions_2d() -> np.ndarray:
    """The 4 unique in-plane neighbour directions ``(dz, dy, dx)`` (0 deg, 45 deg, 90 deg, 135 deg)."""
    return np.array([(0, 0, 1), (0, 1, 1), (0, 1, 0), (0, 1, -1)], dtype=np.int64)


def directions_3d() -> np.ndarray:
    """The 13 unique 3D neighbour directions ``(dz, dy, dx)``: one of each +/- pair."""
    dirs = []
    for d in itertools.product((-1, 0, 1), repeat=3):
        if d > (0, 0, 0):  # lexicographically positive half of the 26-neighbourhood
            dirs.append(d)
    return np.array(dirs, dtype=np.int64)


def level_counts(levels: np.ndarray, top: int, offset: int = 0) -> np.ndarray:
    """``np.bincount(levels.ravel() - offset, minlength=top + 1)[:top + 1]`` (values under
    ``offset`` counted at 0, values above ``top + offset`` left out), counted block by block:
    bincount converts its input to int64 first, a 520 MB copy of a 65 M-voxel int32 box."""
    flat = np.asarray(levels).reshape(-1)
    counts = np.zeros(top + 1, np.int64)
    for i in range(0, flat.size, 1 << 20):
        block = flat[i:i + (1 << 20)]
        if offset:
            block = (block - offset).clip(0)
        counts += np.bincount(block, minlength=top + 1)[:top + 1]
    return counts


def aggregate(compute, aggregations, build2d=None, build3d=None) -> dict[str, dict[str, float]]:
    """Apply IBSI's texture aggregation methods.

    Parameters
    ----------
    compute : callable
        ``compute(matrices (n, ...), n_voxels (n,)) -> {tag: values (n,)}`` features of a batch of
        matrices; ``n_voxels`` is each matrix's voxel count (GLRLM's run percentage needs it).
    aggregations : sequence of str
        IBSI aggregation methods wanted.
    build2d : callable
        ``() -> (matrices (directions, slices, ...), n_voxels (directions, slices))``.
    build3d : callable
        ``() -> (matrices (directions, ...), n_voxels (directions,))``.

    Returns
    -------
    dict
        ``{aggregation: {tag: value}}``. Empty matrices (an empty slice) are left out of averages.
    """
    out: dict[str, dict[str, float]] = {}

    def averaged(mats, nv):
        n = mats.shape[0]
        keep = mats.reshape(n, -1).sum(axis=1) > 0
        if not keep.any():
            return None
        feats = compute(mats[keep], nv[keep])
        return {tag: mean_over(v) for tag, v in feats.items()}

    need2d = [a for a in aggregations if a in AGGREGATIONS_2D]
    need3d = [a for a in aggregations if a in AGGREGATIONS_3D]
    if need2d:
        m, nv = build2d()
        d, z = m.shape[:2]
        for a in need2d:
            if a == "2D, averaged":
                res = averaged(m.reshape((d * z,) + m.shape[2:]), nv.reshape(d * z))
            elif a == "2D, slice-merged":
                # IBSI: the directional matrices of each slice are merged; features averaged over slices
                res = averaged(m.sum(axis=0), nv.sum(axis=0))
            elif a == "2.5D, direction-merged":
                # IBSI: each direction's matrices are merged over the slices; features averaged over directions
                res = averaged(m.sum(axis=1), nv.sum(axis=1))
            else:  # "2.5D, merged"
                res = averaged(m.sum(axis=(0, 1))[np.newaxis], np.array([nv.sum()]))
            out[a] = res
    if need3d:
        m, nv = build3d()
        for a in need3d:
            if a == "3D, averaged":
                out[a] = averaged(m, nv)
            else:
                out[a] = averaged(m.sum(axis=0)[np.newaxis], np.array([nv.sum()]))
    return out


def flatten(results: dict[str, dict[str, float] | None], features, aggregations) -> dict[str, float]:
    """``{aggregation: {tag: value}}`` -> ``{column: value}`` in stable order; NaN where nothing was computed."""
    row = {}
    for a in aggregations:
        res = results.get(a)
        for f in features:
            row[column(f.tag, a)] = float("nan") if res is None else res[f.tag]
    return row
