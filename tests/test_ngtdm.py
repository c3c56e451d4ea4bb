"""NGTDM (IBSI 3.10): hand-computed cases, a loop-by-loop reference on random ROIs, invariances, edge cases.

The IBSI digital phantom and CT configuration A rows are in test_ibsi_reference.py.
"""
from __future__ import annotations

import itertools
from fractions import Fraction as Fr

import numpy as np
import pytest

import medfeat
from medfeat import InputError, Settings
from medfeat.columns import feature_columns
from medfeat.families import FAMILIES
from medfeat.features import ngtdm
from medfeat.features.base import column
from medfeat.features.ngtdm import FEATURES, ngtdm_features, ngtdm_matrices

ALL = ("2D", "2.5D", "3D")
TAGS = [f.tag for f in FEATURES]

# 3x3 image, every pixel in the ROI. Neighbour averages (ROI neighbours only, centre excluded):
#   (0,0)=1: {1,1,2} -> 4/3   |1-4/3| = 1/3      (0,1)=1: {1,2,1,2,2} -> 8/5  |1-8/5| = 3/5
#   (0,2)=2: {1,2,2} -> 5/3   |2-5/3| = 1/3      (1,0)=1: {1,1,2,3,3} -> 2    |1-2|   = 1
#   (1,1)=2: all 8   -> 15/8  |2-15/8| = 1/8     (1,2)=2: {1,2,2,3,2} -> 2    |2-2|   = 0
#   (2,0)=3: {1,2,3} -> 2     |3-2| = 1          (2,1)=3: {1,2,2,3,2} -> 2    |3-2|   = 1
#   (2,2)=2: {2,2,3} -> 7/3   |2-7/3| = 1/3
# n = (3, 4, 2), s = (1/3 + 3/5 + 1, 1/3 + 1/8 + 0 + 1/3, 1 + 1) = (29/15, 19/24, 2), N_vc = 9.
SMALL = np.array([[1, 1, 2],
                  [1, 2, 2],
                  [3, 3, 2]])
SMALL_N = (3, 4, 2)
SMALL_S = (Fr(29, 15), Fr(19, 24), Fr(2))


def _small_expected() -> dict[str, float]:
    """The five features of SMALL, from its matrix by the IBSI formulas in exact fractions."""
    n_vc = sum(SMALL_N)
    p = [Fr(n, n_vc) for n in SMALL_N]
    s = SMALL_S
    lv = (1, 2, 3)
    pairs = list(itertools.product(range(3), repeat=2))  # ordered pairs, all levels present
    ps = sum(pi * si for pi, si in zip(p, s))
    # by hand: sum p s = 29/45 + 19/54 + 4/9 = 389/270
    assert ps == Fr(389, 270)
    contrast = (Fr(1, 3 * 2) * sum(p[a] * p[b] * (lv[a] - lv[b]) ** 2 for a, b in pairs)
                * sum(s) / n_vc)
    busy = ps / sum(abs(lv[a] * p[a] - lv[b] * p[b]) for a, b in pairs)
    complexity = sum(abs(lv[a] - lv[b]) * (p[a] * s[a] + p[b] * s[b]) / (p[a] + p[b]) for a, b in pairs) / n_vc
    strength = sum((p[a] + p[b]) * (lv[a] - lv[b]) ** 2 for a, b in pairs) / sum(s)
    # the same, simplified by hand
    assert (contrast, busy, strength) == (Fr(77, 810), Fr(389, 600), Fr(880, 567))
    assert complexity == 2 * (Fr(269, 210) + Fr(98, 25) + Fr(43, 36)) / 9
    return {"ngt.coarseness": float(1 / ps), "ngt.contrast": float(contrast), "ngt.busyness": float(busy),
            "ngt.complexity": float(complexity), "ngt.strength": float(strength)}


def test_small_image_matrix_by_hand():
    m, grey = ngtdm_matrices(SMALL)
    assert m.shape == (1, 2, 3)
    np.testing.assert_array_equal(grey, [1, 2, 3])
    np.testing.assert_array_equal(m[0, 0], SMALL_N)
    np.testing.assert_allclose(m[0, 1], [float(x) for x in SMALL_S], rtol=1e-15)


def test_small_image_features_by_hand():
    expected = _small_expected()
    out = ngtdm_features(SMALL[np.newaxis], ALL)
    for agg in ALL:  # one slice: 2D, 2.5D and 3D coincide
        for tag, v in expected.items():
            assert out[column(tag, agg)] == pytest.approx(v, rel=1e-12), (tag, agg)


def test_ibsi_manual_example_neighbourhood_averages():
    """IBSI's 2D example: the four centre pixels' neighbour averages 19/8, 19/8, 21/8, 17/8."""
    img = np.array([[1, 2, 2, 3],
                    [1, 2, 3, 3],
                    [4, 2, 4, 1],
                    [4, 1, 2, 3]])[np.newaxis]

    def box_sum(a):  # the compiled running-sum windows along x, then y (3 x 3 box, zero border)
        a = np.ascontiguousarray(a, dtype=np.int64)
        nz, ny, nx = a.shape
        along_x, along_y = np.empty_like(a), np.empty_like(a)
        ngtdm._window_sums(a.reshape(nz * ny, nx, 1), 1, along_x.reshape(nz * ny, nx, 1))
        ngtdm._window_sums(along_x, 1, along_y)
        return along_y

    sums, counts = box_sum(img) - img, box_sum(img > 0) - 1
    centre = (slice(None), slice(1, 3), slice(1, 3))
    np.testing.assert_array_equal(counts[centre], 8)
    np.testing.assert_array_equal(sums[centre][0], [[19, 19], [21, 17]])
    # the IBSI example's s_i (only these four pixels have complete neighbourhoods there)
    avg = sums[centre][0] / 8
    lv = img[centre][0]
    s = {i: float(np.abs(i - avg[lv == i]).sum()) for i in (2, 3, 4)}
    assert s == pytest.approx({2: 1.0, 3: 0.625, 4: 1.875})


# --------------------------------------------------------------------------------------------------
# A literal implementation of IBSI's definitions, loops and all, for random ROIs
# --------------------------------------------------------------------------------------------------

def _reference_matrix(levels: np.ndarray, distance: int, three_d: bool, slice_index: int | None = None):
    """{level: [n_i, s_i]} by loops over voxels and their neighbourhoods."""
    nz, ny, nx = levels.shape
    out: dict[int, list[float]] = {}
    zs = range(nz) if slice_index is None else [slice_index]
    r = range(-distance, distance + 1)
    offsets = [m for m in itertools.product(r if three_d else (0,), r, r) if m != (0, 0, 0)]
    for z, y, x in itertools.product(zs, range(ny), range(nx)):
        i = levels[z, y, x]
        if i == 0:
            continue
        vals = [levels[z + a, y + b, x + c] for a, b, c in offsets
                if 0 <= z + a < nz and 0 <= y + b < ny and 0 <= x + c < nx and levels[z + a, y + b, x + c] > 0]
        if not vals:
            continue
        e = out.setdefault(int(i), [0, 0.0])
        e[0] += 1
        e[1] += abs(i - sum(vals) / len(vals))
    return out


def _reference_features(mat: dict[int, list[float]]) -> dict[str, float] | None:
    if not mat:
        return None
    lv = sorted(mat)
    n_vc = sum(mat[i][0] for i in lv)
    p = {i: mat[i][0] / n_vc for i in lv}
    s = {i: mat[i][1] for i in lv}
    ngp = len(lv)
    pairs = list(itertools.product(lv, repeat=2))
    ps = sum(p[i] * s[i] for i in lv)
    coarse = min(1 / ps, 1e6) if ps > 0 else 1e6
    if ngp > 1:
        contrast = (sum(p[a] * p[b] * (a - b) ** 2 for a, b in pairs) / (ngp * (ngp - 1))
                    * sum(s.values()) / n_vc)
        den = sum(abs(a * p[a] - b * p[b]) for a, b in pairs)
        busy = ps / den if den > 1e-12 else 0.0
    else:
        contrast = busy = 0.0
    complexity = sum(abs(a - b) * (p[a] * s[a] + p[b] * s[b]) / (p[a] + p[b]) for a, b in pairs) / n_vc
    ssum = sum(s.values())
    strength = sum((p[a] + p[b]) * (a - b) ** 2 for a, b in pairs) / ssum if ssum > 0 else 0.0
    return {"ngt.coarseness": coarse, "ngt.contrast": contrast, "ngt.busyness": busy,
            "ngt.complexity": complexity, "ngt.strength": strength}


def _reference(levels: np.ndarray, distance: int = 1) -> dict[str, float]:
    out = {}
    per_slice = [_reference_matrix(levels, distance, False, z) for z in range(levels.shape[0])]
    feats = [f for f in map(_reference_features, per_slice) if f is not None]
    merged: dict[int, list[float]] = {}
    for m in per_slice:
        for i, (n, s) in m.items():
            e = merged.setdefault(i, [0, 0.0])
            e[0] += n
            e[1] += s
    three = _reference_features(_reference_matrix(levels, distance, True))
    res = {"2D": {t: float(np.mean([f[t] for f in feats])) for t in TAGS} if feats else None,
           "2.5D": _reference_features(merged), "3D": three}
    for agg, r in res.items():
        for t in TAGS:
            out[column(t, agg)] = float("nan") if r is None else r[t]
    return out


def _random_roi(rng, shape, n_levels, fill=0.7):
    lv = rng.integers(1, n_levels + 1, size=shape)
    lv[rng.random(shape) > fill] = 0
    return lv


@pytest.mark.parametrize("seed,shape,n_levels,fill,distance", [
    (0, (3, 6, 7), 4, 0.7, 1),
    (1, (4, 5, 5), 6, 0.5, 1),
    (2, (2, 8, 6), 3, 0.9, 2),
    (3, (5, 4, 4), 8, 0.35, 1),  # sparse: isolated voxels without neighbours
    (4, (3, 5, 6), 12, 1.0, 1),
])
def test_random_rois_match_the_literal_definition(seed, shape, n_levels, fill, distance):
    rng = np.random.default_rng(seed)
    lv = _random_roi(rng, shape, n_levels, fill)
    lv[lv == 2] = 5  # a level absent from the ROI in the middle of the range
    got = ngtdm_features(lv, ALL, distance)
    ref = _reference(lv, distance)
    assert list(got) == list(ref)
    for k, v in ref.items():
        if np.isnan(v):
            assert np.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(v, rel=1e-10, abs=1e-12), k


@pytest.mark.parametrize("three_d,distance", [(False, 1), (True, 1), (True, 2)])
def test_slab_by_slab_sums_equal_the_whole_volume(monkeypatch, three_d, distance):
    # a large ROI is summed in slabs along z with `distance` slices of neighbours: slabs of one
    # or a few slices must give the matrices of one pass over the volume
    rng = np.random.default_rng(7)
    lv = _random_roi(rng, (9, 6, 5), 6, 0.8)
    whole, grey = ngtdm_matrices(lv, distance, three_d)
    for cells in (1, 120, 210):  # slabs of 1 to 7 slices (30 voxels each), neighbours included
        monkeypatch.setattr(ngtdm, "SLAB_CELLS", cells)
        slabs, grey2 = ngtdm_matrices(lv, distance, three_d)
        np.testing.assert_array_equal(grey2, grey)
        np.testing.assert_allclose(slabs, whole, rtol=1e-13, atol=0)


# --------------------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------------------

def _assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-12, nan_ok=True), k


def test_in_plane_rotations_and_flips_change_nothing():
    rng = np.random.default_rng(7)
    lv = _random_roi(rng, (4, 9, 7), 6, 0.8)
    ref = ngtdm_features(lv, ALL)
    _assert_same(ref, ngtdm_features(np.rot90(lv, 1, axes=(1, 2)), ALL))
    _assert_same(ref, ngtdm_features(np.rot90(lv, 2, axes=(1, 2)), ALL))
    _assert_same(ref, ngtdm_features(lv[:, ::-1], ALL))
    _assert_same(ref, ngtdm_features(lv[::-1], ALL))  # slice order


def test_3d_rotation_changes_nothing_in_3d():
    rng = np.random.default_rng(8)
    lv = _random_roi(rng, (5, 6, 7), 5, 0.8)
    ref = ngtdm_features(lv, ("3D",))
    _assert_same(ref, ngtdm_features(np.rot90(lv, 1, axes=(0, 2)), ("3D",)))
    _assert_same(ref, ngtdm_features(lv.transpose(1, 2, 0), ("3D",)))


def test_padding_with_outside_voxels_and_level_dtype_change_nothing():
    rng = np.random.default_rng(9)
    lv = _random_roi(rng, (3, 5, 6), 7, 0.8)
    ref = ngtdm_features(lv, ALL)
    _assert_same(ref, ngtdm_features(np.pad(lv, 2), ALL))
    _assert_same(ref, ngtdm_features(lv.astype(np.uint8), ALL))
    _assert_same(ref, ngtdm_features(np.asfortranarray(lv.astype(np.int64)), ALL))


def test_directional_methods_stand_for_the_undirected_ones():
    lv = _random_roi(np.random.default_rng(10), (3, 5, 5), 4)
    assert list(ngtdm_features(lv, ("2D, averaged", "2D, slice-merged", "3D, merged"))) == [
        column(f.tag, a) for a in ("2D", "3D") for f in FEATURES]
    with pytest.raises(ValueError, match="unknown aggregation"):
        ngtdm_features(lv, ("4D",))


# --------------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------------

def test_single_voxel_has_no_neighbourhood():
    lv = np.zeros((1, 3, 3), dtype=int)
    lv[0, 1, 1] = 4
    out = ngtdm_features(lv, ALL)
    assert all(np.isnan(v) for v in out.values())
    m, grey = ngtdm_matrices(lv)
    np.testing.assert_array_equal(m, 0)
    np.testing.assert_array_equal(grey, [4])


def test_isolated_voxels_are_left_out():
    """Voxels without a ROI neighbour leave n_i and s_i untouched; a slice of them leaves the 2D average."""
    lv = np.zeros((2, 5, 5), dtype=int)
    lv[0, :2, :2] = [[1, 2], [2, 2]]
    lv[0, 4, 4] = 3  # isolated: level 3 never enters the matrix
    lv[1, 2, 2] = 1  # a slice with a single voxel: no matrix
    m, _ = ngtdm_matrices(lv)
    np.testing.assert_array_equal(m[:, 0], [[1, 3, 0], [0, 0, 0]])
    only = ngtdm_features(lv[:1, :2, :2], ("2D",))
    out = ngtdm_features(lv, ("2D", "2.5D"))
    for f in FEATURES:
        assert out[column(f.tag, "2D")] == pytest.approx(only[column(f.tag, "2D")])
        assert out[column(f.tag, "2.5D")] == pytest.approx(only[column(f.tag, "2D")])


def test_one_grey_level():
    lv = np.full((2, 4, 4), 3)
    out = ngtdm_features(lv, ALL)
    for agg in ALL:
        assert out[column("ngt.coarseness", agg)] == ngtdm.COARSENESS_MAX
        for tag in ("ngt.contrast", "ngt.busyness", "ngt.complexity", "ngt.strength"):
            assert out[column(tag, agg)] == 0.0


def test_busyness_with_a_vanishing_denominator_is_zero():
    # levels 1 (two voxels) and 2 (one voxel): 1 * n_1 = 2 * n_2, so sum |i1 p1 - i2 p2| = 0
    out = ngtdm_features(np.array([[[1, 2, 1]]]), ("2D",))
    assert out["ngt_busyness_2d"] == 0.0
    assert out["ngt_contrast_2d"] > 0


def test_empty_roi_and_bad_input():
    assert all(np.isnan(v) for v in ngtdm_features(np.zeros((2, 3, 3), dtype=int), ALL).values())
    with pytest.raises(TypeError):
        ngtdm_features(np.ones((2, 2, 2)), ALL)
    with pytest.raises(ValueError, match="distance"):
        ngtdm_features(np.ones((2, 2, 2), dtype=int), ALL, distance=0)
    with pytest.raises(ValueError, match="shape"):
        ngtdm_features(np.ones((2, 2, 2, 2), dtype=int), ALL)


# --------------------------------------------------------------------------------------------------
# Through medfeat.extract
# --------------------------------------------------------------------------------------------------

def test_family_is_registered_with_undirected_columns():
    fam = FAMILIES["ngtdm"]
    assert fam.features == FEATURES and ngtdm.FAMILY == "ngtdm"
    assert [f.code for f in FEATURES] == ["QCDE", "65HE", "NQ30", "HDEZ", "1X9X"]
    for preset in ("default-2d", "default-3d", "ibsi-phantom", "ibsi-a"):
        assert "ngtdm" in Settings.preset(preset).families
    cols = [c.name for c in feature_columns("default-2d", ["ngtdm"])]
    assert cols == [column(f.tag, a) for a in ("2D", "2.5D") for f in FEATURES]
    cols = [c.name for c in feature_columns("ibsi-phantom", ["ngtdm"])]
    assert cols == [column(f.tag, a) for a in ALL for f in FEATURES]


def test_extract_uses_the_distance_setting_and_refuses_one_voxel():
    rng = np.random.default_rng(11)
    img = medfeat.Image(rng.integers(0, 60, size=(3, 9, 9)).astype(float))
    s = Settings.preset("default-3d")
    row = medfeat.extract(img, None, s, families=["ngtdm"])
    assert list(row) == [column(f.tag, "3D") for f in FEATURES]
    far = medfeat.extract(img, None, s.replace(ngtdm_distance=2), families=["ngtdm"])
    assert far["ngt_coarseness_3d"] != row["ngt_coarseness_3d"]
    with pytest.raises(InputError, match="ngtdm_distance"):
        s.replace(ngtdm_distance=0)
    mask = np.zeros((3, 9, 9), dtype=bool)
    mask[1, 4, 4] = True
    with pytest.raises(InputError, match="ngtdm needs at least 2"):
        medfeat.extract(img, mask, s, families=["ngtdm"])
