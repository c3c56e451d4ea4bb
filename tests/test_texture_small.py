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


def test_glrlm_matrix_and_features_by_hand():
    levels = np.array([[[1, 1, 2, 2], [1, 1, 1, 2], [3, 3, 3, 3]]])
    m, nv, grey = glrlm.run_length_matrices(levels)
    # direction (0, 0, 1): runs 1x2, 2x2 | 1x3, 2x1 | 3x4
    expected = np.zeros((3, 4))
    expected[0, 1] = expected[0, 2] = 1
    expected[1, 0] = expected[1, 1] = 1
    expected[2, 3] = 1
    assert m[0, 0, :, :4].tolist() == expected.tolist() and m[0, 0, :, 4:].sum() == 0
    assert nv[0, 0] == 12
    f = glrlm.features_of_matrices(m[0, :1].copy(), nv[0, :1], grey)
    assert f["rlm.sre"][0] == pytest.approx((1 + 2 / 4 + 1 / 9 + 1 / 16) / 5)
    assert f["rlm.lre"][0] == pytest.approx((1 + 2 * 4 + 9 + 16) / 5)
    assert f["rlm.glnu"][0] == pytest.approx((2**2 + 2**2 + 1**2) / 5)
    assert f["rlm.rlnu"][0] == pytest.approx((1**2 + 2**2 + 1**2 + 1**2) / 5)
    assert f["rlm.r.perc"][0] == pytest.approx(5 / 12)


def test_glrlm_runs_are_broken_by_the_roi_boundary():
    m, _, _ = glrlm.run_length_matrices(np.array([[[1, 1, 0, 1, 1]]]))
    assert m[0, 0, 0].tolist()[:2] == [0, 2]  # two runs of length 2, not one of length 4


def test_glrlm_3d_cube_and_long_runs():
    m, nv, _ = glrlm.run_length_matrices(np.ones((2, 2, 2), dtype=int), three_d=True)
    runs = m[:, 0, :]  # (13 directions, lengths)
    # axis directions: 4 runs of length 2; face diagonals: 2 of length 2 + 4 of length 1; space diagonals: 1 + 6
    assert sorted(tuple(r) for r in runs.tolist()) == sorted([(0, 4)] * 3 + [(4, 2)] * 6 + [(6, 1)] * 4)
    assert nv.tolist() == [8] * 13
    long = np.ones((1, 1, 200), dtype=int)  # longer than the first guess of the length axis
    m, _, _ = glrlm.run_length_matrices(long)
    assert m[0, 0, 0, 199] == 1 and m[0, 0, 0].sum() == 1


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
