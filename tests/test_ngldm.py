"""NGLDM (IBSI 3.11): hand-computed cases, a loop-by-loop reference on random ROIs, invariances, edge cases.

The IBSI digital phantom and CT configuration A rows are in test_ibsi_reference.py.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import medfeat
from medfeat import InputError, Settings
from medfeat.columns import feature_columns
from medfeat.families import FAMILIES
from medfeat.features import ngldm
from medfeat.features.base import column
from medfeat.features.ngldm import FEATURES, dependence_counts, ngldm_features, ngldm_matrices

ALL = ("2D", "2.5D", "3D")
TAGS = [f.tag for f in FEATURES]

# 3x3 image, every pixel in the ROI, alpha = 0. Dependence = 1 + same-level ROI neighbours:
#   (0,0)=1: {1,1,2} -> 3     (0,1)=1: {1,2,1,2,2} -> 3        (0,2)=2: {1,2,2} -> 3
#   (1,0)=1: {1,1,2,3,3} -> 3 (1,1)=2: {1,1,2,1,2,3,3,2} -> 4  (1,2)=2: {1,2,2,3,2} -> 4
#   (2,0)=3: {1,2,3} -> 2     (2,1)=3: {1,2,2,3,2} -> 2        (2,2)=2: {2,2,3} -> 3
SMALL = np.array([[1, 1, 2],
                  [1, 2, 2],
                  [3, 3, 2]])
SMALL_J = np.array([[3, 3, 3],
                    [3, 4, 4],
                    [2, 2, 3]])
# s_ij, rows i = 1, 2, 3, columns j = 1..4
SMALL_S = np.array([[0, 0, 3, 0],
                    [0, 0, 2, 2],
                    [0, 2, 0, 0]])


def test_small_image_dependences_and_matrix_by_hand():
    np.testing.assert_array_equal(dependence_counts(SMALL)[0], SMALL_J)
    m, grey = ngldm_matrices(SMALL)
    np.testing.assert_array_equal(grey, [1, 2, 3])
    np.testing.assert_array_equal(m[0], SMALL_S)


def test_small_image_features_by_hand():
    out = ngldm_features(SMALL[np.newaxis], ALL)
    # N_s = 9, s_.j = (0, 2, 5, 2), s_i. = (3, 4, 2)
    expected = {
        "ngl.lde": (2 / 4 + 5 / 9 + 2 / 16) / 9,              # = 85/648
        "ngl.hde": (2 * 4 + 5 * 9 + 2 * 16) / 9,              # = 85/9
        "ngl.lgce": (3 / 1 + 4 / 4 + 2 / 9) / 9,
        "ngl.hgce": (3 * 1 + 4 * 4 + 2 * 9) / 9,              # = 37/9
        "ngl.ldlge": (3 / 9 + 2 / (4 * 9) + 2 / (4 * 16) + 2 / (9 * 4)) / 9,
        "ngl.ldhge": (3 / 9 + 4 * 2 / 9 + 4 * 2 / 16 + 9 * 2 / 4) / 9,
        "ngl.hdlge": (9 * 3 + 9 * 2 / 4 + 16 * 2 / 4 + 4 * 2 / 9) / 9,
        "ngl.hdhge": (9 * 3 + 4 * 9 * 2 + 4 * 16 * 2 + 9 * 4 * 2) / 9,
        "ngl.glnu": (9 + 16 + 4) / 9,
        "ngl.glnu.norm": (9 + 16 + 4) / 81,
        "ngl.dcnu": (4 + 25 + 4) / 9,
        "ngl.dcnu.norm": (4 + 25 + 4) / 81,
        "ngl.dc.perc": 1.0,
        "ngl.gl.var": (3 * (1 - 17 / 9) ** 2 + 4 * (2 - 17 / 9) ** 2 + 2 * (3 - 17 / 9) ** 2) / 9,  # = 44/81
        "ngl.dc.var": (2 * (2 - 3) ** 2 + 5 * 0 + 2 * (4 - 3) ** 2) / 9,  # mean dependence 27/9 = 3
        "ngl.dc.entr": -(3 / 9 * math.log2(3 / 9) + 3 * (2 / 9 * math.log2(2 / 9))),
        "ngl.dc.energy": (9 + 4 + 4 + 4) / 81,
    }
    assert sorted(expected) == sorted(TAGS)
    for agg in ALL:  # one slice: 2D, 2.5D and 3D coincide
        for tag, v in expected.items():
            assert out[column(tag, agg)] == pytest.approx(v, rel=1e-12), (tag, agg)


def test_coarseness_alpha_widens_dependence():
    # alpha = 1: levels 1-2 and 2-3 depend, 1-3 do not
    j = dependence_counts(SMALL, alpha=1)[0]
    #   (0,0)=1: {1,1,2} all -> 4; (2,0)=3: {1,2,3} -> 3; (1,1)=2: all 8 -> 9
    assert (j[0, 0], j[2, 0], j[1, 1]) == (4, 3, 9)
    assert dependence_counts(SMALL, alpha=2).max() == 9


# --------------------------------------------------------------------------------------------------
# A literal implementation of IBSI's definitions, loops and all, for random ROIs
# --------------------------------------------------------------------------------------------------

def _reference_matrix(levels, distance, alpha, three_d, slice_index=None):
    """{(level, dependence): count} by loops over voxels and their neighbourhoods."""
    nz, ny, nx = levels.shape
    out: dict[tuple[int, int], int] = {}
    zs = range(nz) if slice_index is None else [slice_index]
    r = range(-distance, distance + 1)
    offsets = [m for m in itertools.product(r if three_d else (0,), r, r) if m != (0, 0, 0)]
    for z, y, x in itertools.product(zs, range(ny), range(nx)):
        i = int(levels[z, y, x])
        if i == 0:
            continue
        j = 1 + sum(1 for a, b, c in offsets
                    if 0 <= z + a < nz and 0 <= y + b < ny and 0 <= x + c < nx
                    and levels[z + a, y + b, x + c] > 0 and abs(i - int(levels[z + a, y + b, x + c])) <= alpha)
        out[(i, j)] = out.get((i, j), 0) + 1
    return out


def _reference_features(mat):
    if not mat:
        return None
    n_s = sum(mat.values())
    si, sj = {}, {}
    for (i, j), c in mat.items():
        si[i] = si.get(i, 0) + c
        sj[j] = sj.get(j, 0) + c
    p = {k: c / n_s for k, c in mat.items()}
    mu_i = sum(i * v for (i, _), v in p.items())
    mu_j = sum(j * v for (_, j), v in p.items())
    return {
        "ngl.lde": sum(c / j**2 for j, c in sj.items()) / n_s,
        "ngl.hde": sum(c * j**2 for j, c in sj.items()) / n_s,
        "ngl.lgce": sum(c / i**2 for i, c in si.items()) / n_s,
        "ngl.hgce": sum(c * i**2 for i, c in si.items()) / n_s,
        "ngl.ldlge": sum(c / (i**2 * j**2) for (i, j), c in mat.items()) / n_s,
        "ngl.ldhge": sum(c * i**2 / j**2 for (i, j), c in mat.items()) / n_s,
        "ngl.hdlge": sum(c * j**2 / i**2 for (i, j), c in mat.items()) / n_s,
        "ngl.hdhge": sum(c * i**2 * j**2 for (i, j), c in mat.items()) / n_s,
        "ngl.glnu": sum(c**2 for c in si.values()) / n_s,
        "ngl.glnu.norm": sum(c**2 for c in si.values()) / n_s**2,
        "ngl.dcnu": sum(c**2 for c in sj.values()) / n_s,
        "ngl.dcnu.norm": sum(c**2 for c in sj.values()) / n_s**2,
        "ngl.dc.perc": 1.0,
        "ngl.gl.var": sum((i - mu_i) ** 2 * v for (i, _), v in p.items()),
        "ngl.dc.var": sum((j - mu_j) ** 2 * v for (_, j), v in p.items()),
        "ngl.dc.entr": -sum(v * math.log2(v) for v in p.values()),
        "ngl.dc.energy": sum(v**2 for v in p.values()),
    }


def _reference(levels, distance=1, alpha=0):
    per_slice = [_reference_matrix(levels, distance, alpha, False, z) for z in range(levels.shape[0])]
    feats = [f for f in map(_reference_features, per_slice) if f is not None]
    merged: dict = {}
    for m in per_slice:
        for k, c in m.items():
            merged[k] = merged.get(k, 0) + c
    res = {"2D": {t: float(np.mean([f[t] for f in feats])) for t in TAGS} if feats else None,
           "2.5D": _reference_features(merged),
           "3D": _reference_features(_reference_matrix(levels, distance, alpha, True))}
    return {column(t, a): (float("nan") if r is None else r[t]) for a, r in res.items() for t in TAGS}


def _random_roi(rng, shape, n_levels, fill=0.7):
    lv = rng.integers(1, n_levels + 1, size=shape)
    lv[rng.random(shape) > fill] = 0
    return lv


@pytest.mark.parametrize("seed,shape,n_levels,fill,distance,alpha", [
    (0, (3, 6, 7), 3, 0.8, 1, 0),
    (1, (4, 5, 5), 6, 0.5, 1, 0),
    (2, (2, 8, 6), 3, 0.9, 2, 0),
    (3, (3, 6, 5), 8, 0.8, 1, 2),
    (4, (2, 1, 9), 2, 1.0, 1, 0),   # a single row per slice
    (5, (5, 4, 4), 4, 0.3, 1, 1),   # sparse
])
def test_random_rois_match_the_literal_definition(seed, shape, n_levels, fill, distance, alpha):
    rng = np.random.default_rng(seed)
    lv = _random_roi(rng, shape, n_levels, fill)
    got = ngldm_features(lv, ALL, distance, alpha)
    ref = _reference(lv, distance, alpha)
    assert list(got) == list(ref)
    for k, v in ref.items():
        if np.isnan(v):
            assert np.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(v, rel=1e-10, abs=1e-12), k


# --------------------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------------------

def _assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-12, nan_ok=True), k


def test_in_plane_rotations_and_flips_change_nothing():
    rng = np.random.default_rng(7)
    lv = _random_roi(rng, (4, 9, 7), 3, 0.8)
    ref = ngldm_features(lv, ALL)
    _assert_same(ref, ngldm_features(np.rot90(lv, 1, axes=(1, 2)), ALL))
    _assert_same(ref, ngldm_features(np.rot90(lv, 3, axes=(1, 2)), ALL))
    _assert_same(ref, ngldm_features(lv[:, :, ::-1], ALL))
    _assert_same(ref, ngldm_features(lv[::-1], ALL))  # slice order


def test_3d_rotation_changes_nothing_in_3d():
    rng = np.random.default_rng(8)
    lv = _random_roi(rng, (5, 6, 7), 3, 0.8)
    ref = ngldm_features(lv, ("3D",))
    _assert_same(ref, ngldm_features(np.rot90(lv, 1, axes=(0, 1)), ("3D",)))
    _assert_same(ref, ngldm_features(lv.transpose(2, 0, 1), ("3D",)))


def test_padding_level_dtype_and_shift_of_levels():
    rng = np.random.default_rng(9)
    lv = _random_roi(rng, (3, 5, 6), 4, 0.8)
    ref = ngldm_features(lv, ALL)
    _assert_same(ref, ngldm_features(np.pad(lv, 2), ALL))
    _assert_same(ref, ngldm_features(lv.astype(np.uint8), ALL))
    _assert_same(ref, ngldm_features(np.asfortranarray(lv.astype(np.int64)), ALL))
    # dependence only sees level differences: shifting every level keeps the dependence features
    shifted = ngldm_features(np.where(lv > 0, lv + 40000, 0), ALL)  # also past int16
    for t in ("ngl.lde", "ngl.hde", "ngl.dcnu", "ngl.dc.var", "ngl.dc.entr", "ngl.dc.energy", "ngl.gl.var"):
        for a in ALL:
            assert shifted[column(t, a)] == pytest.approx(ref[column(t, a)], rel=1e-9)


# --------------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------------

def test_single_voxel():
    lv = np.zeros((1, 3, 3), dtype=int)
    lv[0, 1, 1] = 4
    m, grey = ngldm_matrices(lv)
    np.testing.assert_array_equal(m, [[[1]]])
    out = ngldm_features(lv, ALL)
    for a in ALL:
        assert out[column("ngl.lde", a)] == out[column("ngl.hde", a)] == 1.0
        assert out[column("ngl.hgce", a)] == 16.0
        assert out[column("ngl.dc.energy", a)] == 1.0 and out[column("ngl.dc.perc", a)] == 1.0
        assert out[column("ngl.gl.var", a)] == out[column("ngl.dc.var", a)] == out[column("ngl.dc.entr", a)] == 0.0


def test_one_grey_level():
    # a full 3x4 slice of one level: corner pixels depend on 3 neighbours, edges 5, inner 8
    out = ngldm_features(np.full((1, 3, 4), 2), ("2D",))
    # dependences: 4 corners j=4, 6 edge pixels j=6, 2 inner pixels j=9
    assert out["ngl_hde_2d"] == pytest.approx((4 * 16 + 6 * 36 + 2 * 81) / 12)
    assert out["ngl_lde_2d"] == pytest.approx((4 / 16 + 6 / 36 + 2 / 81) / 12)
    assert out["ngl_gl_var_2d"] == 0.0 and out["ngl_glnu_norm_2d"] == 1.0
    assert out["ngl_lgce_2d"] == pytest.approx(0.25) and out["ngl_hgce_2d"] == pytest.approx(4.0)


def test_empty_slices_are_left_out_of_the_2d_average():
    lv = np.zeros((3, 4, 4), dtype=int)
    lv[1] = np.random.default_rng(12).integers(1, 4, size=(4, 4))
    _assert_same(ngldm_features(lv, ("2D",)), ngldm_features(lv[1:2], ("2D",)))


def test_empty_roi_and_bad_input():
    assert all(np.isnan(v) for v in ngldm_features(np.zeros((2, 3, 3), dtype=int), ALL).values())
    with pytest.raises(TypeError):
        ngldm_features(np.ones((2, 2, 2)), ALL)
    with pytest.raises(ValueError, match="alpha"):
        ngldm_features(np.ones((2, 2, 2), dtype=int), ALL, alpha=-1)
    with pytest.raises(ValueError, match="distance"):
        ngldm_features(np.ones((2, 2, 2), dtype=int), ALL, distance=0)


# --------------------------------------------------------------------------------------------------
# Through medfeat.extract
# --------------------------------------------------------------------------------------------------

def test_family_is_registered_with_undirected_columns():
    fam = FAMILIES["ngldm"]
    assert fam.features == FEATURES and ngldm.FAMILY == "ngldm"
    assert len({f.code for f in FEATURES}) == len(FEATURES) == 17
    for preset in ("default-2d", "default-3d", "ibsi-phantom", "ibsi-a"):
        assert "ngldm" in Settings.preset(preset).families
    cols = [c.name for c in feature_columns("default-3d", ["ngldm"])]
    assert cols == [column(f.tag, "3D") for f in FEATURES]


def test_extract_uses_alpha_and_distance_settings():
    rng = np.random.default_rng(11)
    img = medfeat.Image(rng.integers(0, 60, size=(3, 9, 9)).astype(float))
    s = Settings.preset("default-2d").replace(bin_number=8)
    row = medfeat.extract(img, None, s, families=["ngldm"])
    assert list(row) == [column(f.tag, a) for a in ("2D", "2.5D") for f in FEATURES]
    wide = medfeat.extract(img, None, s.replace(ngldm_alpha=1), families=["ngldm"])
    far = medfeat.extract(img, None, s.replace(ngldm_distance=2), families=["ngldm"])
    assert wide["ngl_hde_2d"] > row["ngl_hde_2d"] and far["ngl_hde_2d"] > row["ngl_hde_2d"]
    with pytest.raises(InputError, match="ngldm_alpha"):
        s.replace(ngldm_alpha=-1)
    # a single voxel is a valid NGLDM (dependence 1)
    mask = np.zeros((3, 9, 9), dtype=bool)
    mask[1, 4, 4] = True
    one = medfeat.extract(img, mask, s, families=["ngldm"])
    assert one["ngl_lde_2d"] == 1.0
