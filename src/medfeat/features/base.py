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
        name += "_" + AGGREGATIONS[aggregation]
    return name


def check_aggregations(aggregations) -> tuple[str, ...]:
    aggs = tuple(aggregations)
    for a in aggs:
        if a not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation method {a!r}; expected one of {list(AGGREGATIONS)}")
    return aggs


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
