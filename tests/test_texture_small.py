"""GLCM and GLRLM on images small enough to count by hand."""
from __future__ import annotations

import numpy as np
import pytest

from medfeat.features import glcm, glrlm
from medfeat.features.base import AGGREGATIONS, column

ALL = tuple(AGGREGATIONS)


def test_glcm_matrix_and_features_by_hand():
    levels = np.array([[[1, 2, 2], [3, 1, 2]]])
    m, grey = glcm.cooccurrence_matrices(levels)
    assert grey.tolist() == [1, 2, 3]
    # direction (0, 0, 1): pairs (1,2) (2,2) in row 0, (3,1) (1,2) in row 1; counted both ways
    expected = np.array([[0, 2, 1], [2, 2, 0], [1, 0, 0]])
    assert m[0, 0].tolist() == expected.tolist()
    f = glcm.features_of_matrices(m[0, :1].copy(), grey, 3)
    assert f["cm.joint.max"][0] == pytest.approx(2 / 8)
    assert f["cm.contrast"][0] == pytest.approx((2 * 1 + 2 * 1 + 1 * 4 + 1 * 4) / 8)   # 1.5
    assert f["cm.energy"][0] == pytest.approx((4 + 4 + 4 + 1 + 1) / 64)
    assert f["cm.joint.entr"][0] == pytest.approx(3 * 0.25 * 2 + 2 * 0.125 * 3)      # 2.25
    assert f["cm.dissimilarity"][0] == pytest.approx((2 + 2 + 2 + 2) / 8)            # |i-j|: 1,1,2,2
    # joint average: sum_i i p_i. with p_1. = 3/8, p_2. = 4/8, p_3. = 1/8
    assert f["cm.joint.avg"][0] == pytest.approx((3 + 8 + 3) / 8)


def test_glcm_pairs_never_cross_the_roi_boundary_and_distance_counts():
    levels = np.array([[[1, 0, 1]]])
    m, _ = glcm.cooccurrence_matrices(levels)
    assert m[0].sum() == 0  # the hole separates the two voxels
    m2, _ = glcm.cooccurrence_matrices(levels, distance=2)
    assert m2[0, 0].tolist() == [[2.0]]  # at distance 2 they are neighbours


def test_glcm_3d_directions_on_a_cube():
    cube = np.ones((2, 2, 2), dtype=int)
    m, _ = glcm.cooccurrence_matrices(cube, three_d=True)
    # 8 voxels; each of the 13 directions sees: 4 pairs (axis), 2 (face diagonal), 1 (space diagonal)
    per_dir = m[:, 0, 0] / 2
    assert sorted(per_dir.tolist()) == sorted([4] * 3 + [2] * 6 + [1] * 4)


def test_glcm_single_level():
    f = glcm.glcm_features(np.full((1, 4, 4), 3), 5, ALL)
    for a in ALL:
        assert f[column("cm.joint.max", a)] == 1 and f[column("cm.contrast", a)] == 0
        assert f[column("cm.joint.entr", a)] == 0


@pytest.mark.parametrize("module,fn", [(glcm, glcm.glcm_features), (glrlm, glrlm.glrlm_features)])
def test_texture_is_invariant_to_transposition_and_flips(module, fn):
    rng = np.random.default_rng(7)
    levels = rng.integers(1, 6, size=(3, 9, 11))
    levels[1, 2:5, 3:7] = 0  # a hole in the ROI
    ref = fn(levels, 5, ALL)
    for other in (levels.transpose(0, 2, 1), levels[:, :, ::-1], levels[:, ::-1], levels[::-1]):
        got = fn(np.ascontiguousarray(other), 5, ALL)
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, rel=1e-10, abs=1e-12), k
