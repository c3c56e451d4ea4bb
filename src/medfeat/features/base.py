"""What every feature family shares: feature definitions, column names, directions, the checks of
the texture families' inputs (:func:`check_levels`, :func:`check_distance`). The texture
aggregation methods themselves are applied by :mod:`medfeat.features.aggregation`.

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


def check_positive_int(name: str, value) -> int:
    """``value`` as an ``int``; a ``ValueError`` unless it is a positive integer (``1``, ``2.0``)."""
    v = int(value)
    if v != value or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return v


def check_distance(distance) -> int:
    """A texture family's neighbour distance (Chebyshev, voxels): a positive integer."""
    return check_positive_int("distance", distance)


def check_levels(levels, n_levels=None) -> np.ndarray:
    """A texture family's discretised image, checked: the array, ``(z, y, x)`` (a 2D image is one slice).

    ``levels`` must hold integers (or booleans): 0 outside the ROI, grey levels ``1..n_levels``
    inside it (below ``2**31``). ``n_levels``, the number of grey levels, when given, must be a
    positive integer. Raises ``ValueError`` (``TypeError`` for a non-integer array).
    """
    levels = np.asarray(levels)
    if levels.ndim == 2:
        levels = levels[np.newaxis]
    if levels.ndim != 3:
        raise ValueError(f"levels must be a (z, y, x) array, got shape {levels.shape}")
    top = np.iinfo(np.int32).max if n_levels is None else check_positive_int("n_levels", n_levels)
    if levels.size:
        if levels.dtype.kind not in "iub":
            raise TypeError(f"levels must be an integer array, got dtype {levels.dtype}")
        if levels.min() < 0:
            raise ValueError("grey levels must be >= 0 (0 outside the ROI)")
        hi = levels.max()
        if hi > top or hi > np.iinfo(np.int32).max:
            raise ValueError(f"grey levels must be in 1..{top} inside the ROI, got {hi}")
    return levels


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


def flatten(results: dict[str, dict[str, float] | None], features, aggregations) -> dict[str, float]:
    """``{aggregation: {tag: value}}`` -> ``{column: value}`` in stable order; NaN where nothing was computed."""
    row = {}
    for a in aggregations:
        res = results.get(a)
        for f in features:
            row[column(f.tag, a)] = float("nan") if res is None else res[f.tag]
    return row
