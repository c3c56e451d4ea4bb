"""GLRLM family: IBSI digital phantom reference values, hand-computed run length matrices,
an independent brute-force run counter, and invariances."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from medfeat.features import glrlm
from medfeat.features.base import AGGREGATIONS, AGGREGATIONS_2D, AGGREGATIONS_3D, column, directions_2d, directions_3d
from medfeat.features.glrlm import FEATURES, _features_of_matrices, _run_length_matrices, glrlm_features

from conftest import IBSI, digital_phantom_levels, ibsi_reference, matches_reference

ALL = tuple(AGGREGATIONS)


def _phantom_rows():
    if not (IBSI / "reference_values.csv").exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason="needs ../shared/data/ibsi (CI has it)"))]
    return [pytest.param(r, id=f"{r['tag']}[{r['aggregation']}]") for r in ibsi_reference("rlm.", "dig. phantom")]


# --------------------------------------------------------------------------------------------
# IBSI digital phantom
# --------------------------------------------------------------------------------------------

_PHANTOM: dict[str, float] = {}


def _phantom_features() -> dict[str, float]:
    if not _PHANTOM:
        _PHANTOM.update(glrlm_features(digital_phantom_levels(), 6, ALL))
    return _PHANTOM


@pytest.mark.parametrize("row", _phantom_rows())
def test_digital_phantom_reference(row):
    got = _phantom_features()[column(row["tag"], row["aggregation"])]
    assert matches_reference(got, row["value"], row["tolerance"]), (
        f"{row['tag']} [{row['aggregation']}] = {got!r}, IBSI {row['value']} +/- {row['tolerance']}")


def test_digital_phantom_rows_all_present():
    rows = ibsi_reference("rlm.", "dig. phantom")
    assert len(rows) == 16 * 6
    assert {r["aggregation"] for r in rows} == set(AGGREGATIONS)


def test_feature_definitions_match_reference_table():
    rows = ibsi_reference("rlm.", "dig. phantom")
    table = {r["tag"]: (r["ibsi_code"], r["feature"]) for r in rows}
    assert [f.tag for f in FEATURES] == list(dict.fromkeys(r["tag"] for r in rows))  # IBSI order
    for f in FEATURES:
        assert table[f.tag] == (f.code, f.name)
    assert glrlm.FAMILY == "glrlm"


# --------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------

def test_columns_and_validation():
    lv = np.array([[[1, 2], [2, 2]]])
    out = glrlm_features(lv, 2, ALL)
    assert list(out) == [column(f.tag, a) for a in ALL for f in FEATURES]
    assert len(out) == 16 * 6 and all(isinstance(v, float) for v in out.values())
    assert list(glrlm_features(lv, 2)) == [column(f.tag, a) for a in AGGREGATIONS_3D for f in FEATURES]
    with pytest.raises(ValueError):
        glrlm_features(lv, 2, ("3D, everything",))


def test_empty_roi_gives_nan():
    out = glrlm_features(np.zeros((2, 3, 3), dtype=np.int32), 4, ALL)
    assert len(out) == 96 and all(math.isnan(v) for v in out.values())


def test_single_voxel():
    lv = np.zeros((3, 3, 3), dtype=np.int32)
    lv[1, 1, 1] = 3
    out = glrlm_features(lv, 3, ALL)
    for a in ALL:
        # one run of length 1 per direction: N_s = 1 per matrix, N_v = 1 per matrix
        assert out[column("rlm.sre", a)] == 1.0 and out[column("rlm.lre", a)] == 1.0
        assert out[column("rlm.hgre", a)] == 9.0
        assert out[column("rlm.r.perc", a)] == 1.0
        assert out[column("rlm.rl.entr", a)] == 0.0 and out[column("rlm.gl.var", a)] == 0.0


# --------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------

# One slice, 3 x 4, grey levels 1, 2, 3 (rows of the matrices), run lengths 1..3 (columns).
SLICE = np.array([[[1, 1, 2, 2],
                   [1, 2, 2, 2],
                   [3, 3, 3, 1]]])

# directions_2d() order: (0,0,1) along x, (0,1,1) diagonal, (0,1,0) along y, (0,1,-1) anti-diagonal
SLICE_RUNS = np.array([
    # along x: rows "11|22", "1|222", "333|1"
    [[2, 1, 0],   # level 1: "1" (row 1), "1" (row 2); "11" (row 0)
     [0, 1, 1],   # level 2: "22" (row 0); "222" (row 1)
     [0, 0, 1]],  # level 3: "333" (row 2)
    # diagonal (dy=1, dx=1), lines x - y = -2..3: "3", "1|3", "1|2|3", "1|2|1", "22", "2"
    [[4, 0, 0],
     [3, 1, 0],
     [3, 0, 0]],
    # along y, columns: "11|3", "1|2|3", "22|3", "22|1"
    [[2, 1, 0],
     [1, 2, 0],
     [3, 0, 0]],
    # anti-diagonal (dy=1, dx=-1), lines x + y = 0..5: "1", "11", "22|3", "22|3", "2|3", "1"
    [[2, 1, 0],
     [1, 2, 0],
     [3, 0, 0]],
], dtype=float)


def test_hand_slice_matrices():
    m, nv, grey = _run_length_matrices(SLICE, three_d=False)
    assert m.shape == (4, 1, 3, 3)
    np.testing.assert_array_equal(m[:, 0], SLICE_RUNS)
    np.testing.assert_array_equal(nv, np.full((4, 1), 12.0))
    np.testing.assert_array_equal(grey, [1.0, 2.0, 3.0])
    # every run accounts for its voxels: sum_j j r_.j = N_v = 12 in every direction
    np.testing.assert_array_equal(m[:, 0].sum(axis=1) @ np.arange(1, 4), [12, 12, 12, 12])


def test_hand_slice_features():
    b = glrlm.RunLengthBatch.of(SLICE_RUNS, np.full(4, 12.0), np.array([1.0, 2.0, 3.0]))
    # N_s per direction: x 6, diagonal 11, y 9, anti-diagonal 9
    np.testing.assert_array_equal(b.n_s, [6, 11, 9, 9])
    # r_.j: x [2, 2, 2], diagonal [10, 1, 0], y [6, 3, 0], anti-diagonal [6, 3, 0]
    # SRE = sum_j r_.j / j^2 / N_s: x (2 + 2/4 + 2/9)/6 = 49/108; diag (10 + 1/4)/11 = 41/44;
    #       y and anti-diag (6 + 3/4)/9 = 3/4
    sre = [49 / 108, 41 / 44, 3 / 4, 3 / 4]
    np.testing.assert_allclose(glrlm.short_runs_emphasis(b), sre, rtol=1e-14)
    # LRE = sum_j j^2 r_.j / N_s: x (2 + 8 + 18)/6 = 14/3; diag (10 + 4)/11 = 14/11; y, anti (6 + 12)/9 = 2
    lre = [14 / 3, 14 / 11, 2, 2]
    np.testing.assert_allclose(glrlm.long_runs_emphasis(b), lre, rtol=1e-14)
    # r_i.: x [3, 2, 1], diag [4, 4, 3], y and anti [3, 3, 3];
    # GLNU = sum_i r_i.^2 / N_s: x 14/6 = 7/3; diag 41/11; y, anti 27/9 = 3
    glnu = [7 / 3, 41 / 11, 3, 3]
    np.testing.assert_allclose(glrlm.grey_level_non_uniformity(b), glnu, rtol=1e-14)
    # run percentage N_s / N_v: 6/12, 11/12, 9/12, 9/12
    rp = [6 / 12, 11 / 12, 9 / 12, 9 / 12]
    np.testing.assert_allclose(glrlm.run_percentage(b), rp, rtol=1e-14)

    out = glrlm_features(SLICE, 3, AGGREGATIONS_2D)
    # 2D, averaged: mean over the 4 directional matrices of the (only) slice
    assert out["rlm_sre_2d_avg"] == pytest.approx(np.mean(sre), rel=1e-14)
    assert out["rlm_lre_2d_avg"] == pytest.approx(np.mean(lre), rel=1e-14)
    assert out["rlm_glnu_2d_avg"] == pytest.approx(np.mean(glnu), rel=1e-14)
    assert out["rlm_r_perc_2d_avg"] == pytest.approx(35 / 48, rel=1e-14)  # (6 + 11 + 9 + 9) / 48
    # merged over the 4 directions: r_.j = [24, 9, 2], N_s = 35, N_v = 4 x 12 = 48 (IBSI: N_v summed)
    # SRE = (24 + 9/4 + 2/9) / 35 = 953/1260; LRE = (24 + 36 + 18) / 35 = 78/35
    # r_i. = [3+4+3+3, 2+4+3+3, 1+3+3+3] = [13, 12, 10]: GLNU = (169 + 144 + 100) / 35 = 413/35;
    # run percentage 35/48
    for a in ("2D, slice-merged", "2.5D, merged"):  # one slice: both merge the 4 directions
        assert out[column("rlm.sre", a)] == pytest.approx(953 / 1260, rel=1e-14)
        assert out[column("rlm.lre", a)] == pytest.approx(78 / 35, rel=1e-14)
        assert out[column("rlm.glnu", a)] == pytest.approx(413 / 35, rel=1e-14)
        assert out[column("rlm.r.perc", a)] == pytest.approx(35 / 48, rel=1e-14)
    # one slice: merging each direction over slices changes nothing -> equals 2D, averaged
    for f in FEATURES:
        same = out[column(f.tag, "2D, averaged")]
        assert out[column(f.tag, "2.5D, direction-merged")] == pytest.approx(same, rel=1e-13)


def test_hole_breaks_runs():
    row = np.array([[[2, 2, 0, 2, 2]]])  # the 0 is outside the ROI
    m, nv, grey = _run_length_matrices(row, three_d=False)
    np.testing.assert_array_equal(grey, [2.0])
    # along x: two runs of length 2, not one of length 4 (or 5)
    np.testing.assert_array_equal(m[0, 0], [[0, 2]])
    # the other in-plane directions cross the single row: 4 runs of length 1
    for d in (1, 2, 3):
        np.testing.assert_array_equal(m[d, 0], [[4, 0]])
    np.testing.assert_array_equal(nv, np.full((4, 1), 4.0))  # the hole is not a voxel of the ROI
    full = _run_length_matrices(np.full((1, 1, 5), 2), three_d=False)[0]
    np.testing.assert_array_equal(full[0, 0], [[0, 0, 0, 0, 1]])

    # a 3 x 3 ring: the hole in the centre splits the middle row, the middle column and the two
    # corner-to-corner diagonals
    ring = np.full((1, 3, 3), 1)
    ring[0, 1, 1] = 0
    m = _run_length_matrices(ring, three_d=False)[0][:, 0, 0]
    np.testing.assert_array_equal(m[0], [2, 0, 2])  # x: rows "111", "1|1", "111"
    np.testing.assert_array_equal(m[2], [2, 0, 2])  # y: same by symmetry
    np.testing.assert_array_equal(m[1], [4, 2, 0])  # diagonal: "1", "11", "1|1", "11", "1"
    np.testing.assert_array_equal(m[3], [4, 2, 0])  # anti-diagonal: likewise
    # 3D: the same hole splits the runs along x (direction (0, 0, 1))
    m3 = _run_length_matrices(row, three_d=True)[0]
    np.testing.assert_array_equal(m3[0], [[0, 2]])


def _kind(d) -> str:
    return {1: "axis", 2: "face", 3: "body"}[int(np.count_nonzero(d))]


def test_cube_2x2x2_3d():
    cube = np.full((2, 2, 2), 1)
    m, nv, grey = _run_length_matrices(cube, three_d=True)
    assert m.shape == (13, 1, 2)
    np.testing.assert_array_equal(nv, np.full(13, 8.0))
    # along an axis: 4 lines of 2 voxels; along a face diagonal, in each of the 2 planes one line
    # of 2 and two single voxels; along a body diagonal one line of 2 and 6 single voxels.
    expected = {"axis": [0, 4], "face": [4, 2], "body": [6, 1]}
    for d, mat in zip(directions_3d(), m):
        np.testing.assert_array_equal(mat[0], expected[_kind(d)], err_msg=str(d))

    out = glrlm_features(cube, 1, AGGREGATIONS_3D)
    # 3D, averaged SRE: axis 4 (1/4) / 4 = 1/4; face (4 + 2/4) / 6 = 3/4; body (6 + 1/4) / 7 = 25/28;
    # (3 * 1/4 + 6 * 3/4 + 4 * 25/28) / 13 = (247/28) / 13 = 19/28
    assert out["rlm_sre_3d_avg"] == pytest.approx(19 / 28, rel=1e-14)
    # merged: r_.1 = 6*4 + 4*6 = 48, r_.2 = 3*4 + 6*2 + 4*1 = 28, N_s = 76; SRE = (48 + 28/4)/76 = 55/76
    assert out["rlm_sre_3d_mrg"] == pytest.approx(55 / 76, rel=1e-14)
    # LRE merged (48 + 4 * 28) / 76 = 160/76
    assert out["rlm_lre_3d_mrg"] == pytest.approx(160 / 76, rel=1e-14)
    # run percentage: merged 76 / (13 x 8) (N_v summed over the 13 merged directions); averaged
    # (3 * 4/8 + 6 * 6/8 + 4 * 7/8) / 13 = 76/104 as well
    assert out["rlm_r_perc_3d_mrg"] == pytest.approx(76 / 104, rel=1e-14)
    assert out["rlm_r_perc_3d_avg"] == pytest.approx(76 / 104, rel=1e-14)

    # checkerboard (levels 1 and 2 by parity): neighbours along axes and body diagonals differ
    # (every voxel a run of 1), face-diagonal neighbours agree (same counts as above, split by level)
    checker = (np.indices((2, 2, 2)).sum(axis=0) % 2 + 1)
    m = _run_length_matrices(checker, three_d=True)[0]
    for d, mat in zip(directions_3d(), m):
        want = [[2, 1], [2, 1]] if _kind(d) == "face" else [[4, 0], [4, 0]]
        np.testing.assert_array_equal(mat, want, err_msg=str(d))


def test_all_voxels_one_level():
    lv = np.full((2, 3, 4), 5)
    out = glrlm_features(lv, 5, ALL)
    for a in ALL:
        c = lambda tag: out[column(tag, a)]  # noqa: E731
        assert c("rlm.gl.var") == 0.0
        assert c("rlm.glnu.norm") == 1.0
        assert c("rlm.lgre") == pytest.approx(1 / 25) and c("rlm.hgre") == pytest.approx(25)
        assert c("rlm.srhge") == pytest.approx(25 * c("rlm.sre"))
        assert c("rlm.lrlge") == pytest.approx(c("rlm.lre") / 25)
        assert c("rlm.glnu") == pytest.approx(c("rlm.r.perc") * _nv(a, lv))  # GLNU = N_s when one level
    # along x every row is one run of 4: SRE 1/16, LRE 16, one matrix cell -> entropy 0
    m = _run_length_matrices(lv, three_d=False)[0]
    np.testing.assert_array_equal(m[0, :, 0], [[0, 0, 0, 3], [0, 0, 0, 3]])
    feats = _features_of_matrices(m[0], np.full(2, 12.0), np.array([5.0]))
    np.testing.assert_allclose(feats["rlm.sre"], 1 / 16)
    np.testing.assert_allclose(feats["rlm.lre"], 16)
    np.testing.assert_allclose(feats["rlm.rl.entr"], 0.0)
    np.testing.assert_allclose(feats["rlm.rl.var"], 0.0)
    np.testing.assert_allclose(feats["rlm.r.perc"], 3 / 12)


def _nv(aggregation, lv):
    """N_v of one matrix of the aggregation, for a box-shaped ROI (all matrices alike)."""
    per_slice = lv.shape[1] * lv.shape[2]
    return {"2D, averaged": per_slice, "2D, slice-merged": 4 * per_slice,
            "2.5D, direction-merged": lv.size, "2.5D, merged": 4 * lv.size,
            "3D, averaged": lv.size, "3D, merged": 13 * lv.size}[aggregation]


@pytest.mark.parametrize("chunk", [7, 2048])
def test_long_runs_beyond_dense_2d_columns(monkeypatch, chunk):
    # 2D matrices keep short runs dense and list longer ones separately: both must land right,
    # also when the sweep's chunks cut the runs
    monkeypatch.setattr(glrlm, "_CHUNK", chunk)
    n = 3 * glrlm._CAP_2D + 5
    lv = np.ones((2, 2, n), dtype=np.int32)
    lv[1, 0, 10] = 2
    m = _run_length_matrices(lv, three_d=False)[0]
    assert m.shape == (4, 2, 2, n)
    np.testing.assert_array_equal(np.nonzero(m[0, 0, 0])[0] + 1, [n])
    assert m[0, 0, 0, n - 1] == 2
    np.testing.assert_array_equal(np.nonzero(m[0, 1, 0])[0] + 1, [10, n - 11, n])
    np.testing.assert_array_equal(_naive_matrices(lv, directions_2d(), per_slice=True)[..., :n], m)


# --------------------------------------------------------------------------------------------
# Brute force: walk every line, for random ROIs
# --------------------------------------------------------------------------------------------

def _naive_matrices(lv, dirs, per_slice):
    grey = np.unique(lv[lv > 0])
    row = {g: k for k, g in enumerate(grey)}
    nz = lv.shape[0]
    length_max = max(lv.shape)
    out = np.zeros((len(dirs), nz if per_slice else 1, grey.size, length_max))
    inside = lambda p: all(0 <= c < s for c, s in zip(p, lv.shape))  # noqa: E731
    for k, d in enumerate(dirs):
        for p in itertools.product(*map(range, lv.shape)):
            a = lv[p]
            prev = tuple(np.subtract(p, d))
            if a <= 0 or (inside(prev) and lv[prev] == a):
                continue
            length, q = 1, tuple(np.add(p, d))
            while inside(q) and lv[q] == a:
                length, q = length + 1, tuple(np.add(q, d))
            out[k, p[0] if per_slice else 0, row[a], length - 1] += 1
    return out if per_slice else out[:, 0]


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 7, size=3))
    lv = rng.integers(1, 4, size=shape)
    if seed % 2:
        lv = np.sort(lv, axis=int(rng.integers(0, 3)))  # longer runs
    lv[rng.random(shape) < 0.25] = 0
    lv[0, 0, 0] = 1  # never empty
    for three_d, dirs in ((False, directions_2d()), (True, directions_3d())):
        m, nv, grey = _run_length_matrices(lv, three_d=three_d)
        want = _naive_matrices(lv, dirs, per_slice=not three_d)
        if not three_d:  # the builder keeps the slices of the ROI's bounding box
            zs = np.nonzero((lv > 0).any(axis=(1, 2)))[0]
            want = want[:, zs[0]: zs[-1] + 1]
            np.testing.assert_array_equal(nv[0], (lv[zs[0]: zs[-1] + 1] > 0).sum(axis=(1, 2)))
        else:
            np.testing.assert_array_equal(nv, np.full(13, (lv > 0).sum()))
        np.testing.assert_array_equal(m, want[..., : m.shape[-1]])
        assert not want[..., m.shape[-1]:].any()
        np.testing.assert_array_equal(grey, np.unique(lv[lv > 0]))


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_chunked_sweep_and_absent_levels(monkeypatch, chunk):
    """The sweep takes each slice in chunks (runs cross chunk boundaries), and levels absent from the
    ROI take the look-up path of _prepare: both must leave the matrices unchanged."""
    monkeypatch.setattr(glrlm, "_CHUNK", chunk)
    rng = np.random.default_rng(7)
    lv = rng.choice(np.array([0, 2, 5, 9]), size=(4, 9, 11), p=[0.2, 0.5, 0.2, 0.1])
    lv[:, 3] = 5  # long runs along x and across chunks
    for three_d, dirs in ((False, directions_2d()), (True, directions_3d())):
        m, nv, grey = _run_length_matrices(lv, three_d=three_d)
        want = _naive_matrices(lv, dirs, per_slice=not three_d)
        np.testing.assert_array_equal(m, want[..., : m.shape[-1]])
        assert not want[..., m.shape[-1]:].any()
        np.testing.assert_array_equal(grey, [2.0, 5.0, 9.0])


def test_merged_run_percentage_sums_voxels():
    # IBSI: N_v of a merged matrix is the sum over the merged matrices. Hence merging the four
    # directions of each slice leaves the averaged run percentage unchanged, and so does merging
    # every direction over the slices with respect to the fully merged matrix.
    rng = np.random.default_rng(7)
    lv = rng.integers(1, 6, size=(4, 9, 11))
    lv[rng.random(lv.shape) < 0.3] = 0
    lv[2] = 0  # an empty slice is skipped
    out = glrlm_features(lv, 5, ALL)
    assert out["rlm_r_perc_2d_smrg"] == pytest.approx(out["rlm_r_perc_2d_avg"], rel=1e-13)
    assert out["rlm_r_perc_25d_dmrg"] == pytest.approx(out["rlm_r_perc_25d_mrg"], rel=1e-13)
    assert out["rlm_r_perc_3d_mrg"] == pytest.approx(out["rlm_r_perc_3d_avg"], rel=1e-13)
    # and the merged value is all runs over 4 N_v (13 N_v in 3D)
    m2, _, _ = _run_length_matrices(lv, three_d=False)
    m3, _, _ = _run_length_matrices(lv, three_d=True)
    n_v = (lv > 0).sum()
    assert out["rlm_r_perc_25d_mrg"] == pytest.approx(m2.sum() / (4 * n_v), rel=1e-13)
    assert out["rlm_r_perc_3d_mrg"] == pytest.approx(m3.sum() / (13 * n_v), rel=1e-13)
    assert all(np.isfinite(v) for v in out.values())


def test_input_dtypes_agree():
    rng = np.random.default_rng(3)
    lv = rng.integers(0, 5, size=(3, 6, 7))
    ref = glrlm_features(lv, 4, ALL)
    for dt in (np.int32, np.uint8, np.int16):
        assert glrlm_features(lv.astype(dt), 4, ALL) == ref
    assert glrlm_features(np.asfortranarray(lv), 4, ALL) == ref
    assert glrlm_features(lv[:, :, ::-1][:, :, ::-1], 4, ALL) == ref  # non-contiguous view


# --------------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------------

def _random_roi(seed):
    rng = np.random.default_rng(seed)
    lv = rng.integers(1, 7, size=(5, 8, 8))
    lv = np.where(rng.random(lv.shape) < 0.6, np.sort(lv, axis=2), lv)  # a mix of short and long runs
    lv[rng.random(lv.shape) < 0.2] = 0
    return lv


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-12, abs=1e-12), k


@pytest.mark.parametrize("seed", range(3))
def test_transpose_yx_invariance(seed):
    lv = _random_roi(seed)
    _assert_same(glrlm_features(lv, 6, ALL), glrlm_features(lv.transpose(0, 2, 1), 6, ALL))


@pytest.mark.parametrize("seed", range(3))
def test_flip_invariance(seed):
    lv = _random_roi(seed)
    ref = glrlm_features(lv, 6, ALL)
    _assert_same(ref, glrlm_features(lv[:, :, ::-1], 6, ALL))  # flip x
    _assert_same(ref, glrlm_features(lv[:, ::-1, :], 6, ALL))  # flip y
    _assert_same(ref, glrlm_features(lv[::-1], 6, ALL))        # reverse the slice order


def test_wide_cell_indices_give_the_same_histograms():
    # histograms of 2**31 cells or more index them with int64 (a separate compiled specialisation)
    rng = np.random.default_rng(11)
    lv = rng.integers(0, 4, size=(3, 7, 9))
    lv[0, 0, 0] = 1
    padded, grey, _ = glrlm._prepared(lv)
    for offsets, per_slice, cap in ((directions_3d(), False, 0), (directions_2d(), True, 3)):
        narrow = np.empty((len(offsets), glrlm._CHUNK + glrlm._PAD), np.int32)
        wide = np.empty_like(narrow, dtype=np.int64)
        h32, o32 = glrlm._count_runs(padded, offsets, grey.size, per_slice, cap, narrow)
        h64, o64 = glrlm._count_runs(padded, offsets, grey.size, per_slice, cap, wide)
        np.testing.assert_array_equal(h32, h64)
        np.testing.assert_array_equal(o32, o64)
