"""GLCM family (IBSI 3.6): reference values, matrices counted by hand, invariances, degenerate cases."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from medfeat.features import glcm
from medfeat.features.base import AGGREGATIONS, AGGREGATIONS_2D, AGGREGATIONS_3D, column, directions_2d, directions_3d

from conftest import SHARED, digital_phantom_levels, ibsi_reference, matches_reference

ALL = tuple(AGGREGATIONS)
HAVE_IBSI = (SHARED / "data" / "ibsi" / "reference_values.csv").exists()


# --------------------------------------------------------------------------------------------------
# IBSI digital phantom: 25 features x 6 aggregation methods
# --------------------------------------------------------------------------------------------------

def _phantom_rows():
    if not HAVE_IBSI:
        return [pytest.param(None, marks=pytest.mark.skip(reason="needs ../shared/data/ibsi (CI has it)"))]
    return [pytest.param(r, id=f"{r['tag']}[{r['aggregation']}]") for r in ibsi_reference("cm.", "dig. phantom")]


@functools.cache
def _phantom_features() -> dict[str, float]:
    return glcm.glcm_features(digital_phantom_levels(), 6, ALL)  # N_g = 6 (levels 1..6, 2 and 5 absent)


@pytest.mark.parametrize("row", _phantom_rows())
def test_digital_phantom_reference(row):
    got = _phantom_features()[column(row["tag"], row["aggregation"])]
    assert matches_reference(got, row["value"], row["tolerance"]), (
        f"{row['tag']} [{row['aggregation']}] = {got!r}, IBSI {row['value']} +/- {row['tolerance']}")


@pytest.mark.skipif(not HAVE_IBSI, reason="needs ../shared/data/ibsi (CI has it)")
def test_reference_table_covers_every_feature_and_aggregation():
    rows = ibsi_reference("cm.", "dig. phantom")
    assert len(rows) == 150
    assert {(r["tag"], r["aggregation"]) for r in rows} == {(f.tag, a) for f in glcm.FEATURES for a in ALL}
    # FEATURES carries IBSI's tag, code and name, in the table's (IBSI's) order
    table = {}
    for r in rows:
        table.setdefault(r["tag"], (r["tag"], r["ibsi_code"], r["feature"]))
    assert [(f.tag, f.code, f.name) for f in glcm.FEATURES] == list(table.values())


def test_public_api():
    assert glcm.FAMILY == "glcm"
    assert len(glcm.FEATURES) == 25 and len({f.tag for f in glcm.FEATURES}) == 25
    f = glcm.glcm_features(np.ones((1, 3, 3), dtype=np.int32), 2)  # default: the 3D methods
    assert list(f) == [column(x.tag, a) for a in AGGREGATIONS_3D for x in glcm.FEATURES]
    f = glcm.glcm_features(np.ones((1, 3, 3), dtype=np.int32), 2, ["2.5D, merged"], distance=1)
    assert list(f) == [column(x.tag, "2.5D, merged") for x in glcm.FEATURES]
    assert all(isinstance(v, float) for v in f.values())
    with pytest.raises(ValueError, match="unknown aggregation"):
        glcm.glcm_features(np.ones((1, 3, 3), dtype=np.int32), 2, ["2D"])
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="distance"):
            glcm.glcm_features(np.ones((1, 3, 3), dtype=np.int32), 2, distance=bad)


# --------------------------------------------------------------------------------------------------
# Matrices and features counted by hand
# --------------------------------------------------------------------------------------------------

# 1 slice of 3 x 3:        directions_2d() order: 0 deg (0,0,1), 45 deg (0,1,1), 90 deg (0,1,0), 135 deg (0,1,-1)
HAND = np.array([[[1, 2, 3],
                  [1, 1, 2],
                  [3, 2, 1]]])
# 0 deg, pairs along rows: (1,2) (2,3) | (1,1) (1,2) | (3,2) (2,1)  -> {1,2} x3, {2,3} x2, {1,1} x1
# symmetric (each pair both ways): 12 counts
HAND_0 = [[2, 3, 0],
          [3, 0, 2],
          [0, 2, 0]]
# 45 deg, (y,x)-(y+1,x+1): 1-1, 2-2, 1-2, 1-1  -> {1,1} x2, {2,2} x1, {1,2} x1: 8 counts
HAND_45 = [[4, 1, 0],
           [1, 2, 0],
           [0, 0, 0]]
# 90 deg, along columns: (1,1) (1,3) | (2,1) (1,2) | (3,2) (2,1)  -> {1,1}, {1,3}, {1,2} x3, {2,3}: 12 counts
HAND_90 = [[2, 3, 1],
           [3, 0, 1],
           [1, 1, 0]]
# 135 deg, (y,x)-(y+1,x-1): 2-1, 3-1, 1-3, 2-2  -> {1,2}, {1,3} x2, {2,2}: 8 counts
HAND_135 = [[0, 1, 2],
            [1, 2, 0],
            [2, 0, 0]]


def test_in_plane_matrices_by_hand():
    m, grey = glcm.cooccurrence_matrices(HAND)
    assert grey.tolist() == [1, 2, 3]
    assert m.shape == (4, 1, 3, 3)
    for k, expected in enumerate((HAND_0, HAND_45, HAND_90, HAND_135)):
        assert m[k, 0].tolist() == expected, f"direction {directions_2d()[k]}"


def test_features_of_one_matrix_by_hand():
    # 0 deg matrix, p = M / 12
    f = glcm.features_of_matrices(np.array([HAND_0], dtype=float), np.array([1.0, 2.0, 3.0]), 3)
    assert f["cm.joint.max"][0] == pytest.approx(3 / 12)
    # contrast: (i-j)^2 p_ij: |1-2| = 1 on 3 + 3 counts, |2-3| = 1 on 2 + 2 counts -> (6 + 4) / 12
    assert f["cm.contrast"][0] == pytest.approx(10 / 12)
    # energy: (2^2 + 3^2 + 3^2 + 2^2 + 2^2) / 12^2
    assert f["cm.energy"][0] == pytest.approx(30 / 144)
    # joint entropy: three cells of 2/12 = 1/6, two of 3/12 = 1/4 -> 3 (1/6) log2 6 + 2 (1/4) log2 4
    assert f["cm.joint.entr"][0] == pytest.approx(0.5 * math.log2(6) + 1.0)
    # joint average: p_1. = 5/12, p_2. = 5/12, p_3. = 2/12 -> (5 + 10 + 6) / 12
    assert f["cm.joint.avg"][0] == pytest.approx(21 / 12)
    # dissimilarity = difference average: |i-j| = 1 on all 10 off-diagonal counts
    assert f["cm.dissimilarity"][0] == pytest.approx(10 / 12)
    assert f["cm.diff.avg"][0] == pytest.approx(10 / 12)
    # inverse variance: p_{i-j,1} / 1^2
    assert f["cm.inv.var"][0] == pytest.approx(10 / 12)
    # normalised inverse difference, N_g = 3: 2/12 (k = 0) + 10/12 / (1 + 1/3)
    assert f["cm.inv.diff.norm"][0] == pytest.approx(2 / 12 + (10 / 12) / (4 / 3))


def test_aggregations_by_hand():
    f = glcm.glcm_features(HAND, 3, ALL)
    # 2D averaged: mean of the four directional joint maxima 3/12, 4/8, 3/12, 2/8
    assert f[column("cm.joint.max", "2D, averaged")] == pytest.approx((0.25 + 0.5 + 0.25 + 0.25) / 4)
    # 2.5D merged: the four matrices summed, 40 counts: [[8, 8, 3], [8, 4, 3], [3, 3, 0]]
    assert f[column("cm.joint.max", "2.5D, merged")] == pytest.approx(8 / 40)
    # contrast: |i-j| = 1 on 8+8+3+3 counts, 2 on 3+3 counts -> (22 + 4 * 6) / 40
    assert f[column("cm.contrast", "2.5D, merged")] == pytest.approx(46 / 40)
    # with a single slice, merging the slice's directions = merging everything, and merging each
    # direction over the slices changes nothing
    for x in glcm.FEATURES:
        assert f[column(x.tag, "2D, slice-merged")] == pytest.approx(f[column(x.tag, "2.5D, merged")], rel=1e-12)
        assert f[column(x.tag, "2.5D, direction-merged")] == pytest.approx(
            f[column(x.tag, "2D, averaged")], rel=1e-12, abs=1e-15)


def test_pairs_never_cross_a_hole_in_the_roi():
    levels = np.array([[[1, 2, 1],
                        [3, 0, 3],
                        [1, 2, 1]]])
    m, grey = glcm.cooccurrence_matrices(levels)
    assert grey.tolist() == [1, 2, 3]
    # 0 deg: rows 0 and 2 give (1,2) (2,1) each; row 1 has no pair (3-hole, hole-3)
    assert m[0, 0].tolist() == [[0, 4, 0], [4, 0, 0], [0, 0, 0]]
    # 45 deg: 1-hole, 2-3, 3-2, hole-1
    assert m[1, 0].tolist() == [[0, 0, 0], [0, 0, 2], [0, 2, 0]]
    # 90 deg: columns 0 and 2 give (1,3) (3,1); column 1 none (2-hole, hole-2)
    assert m[2, 0].tolist() == [[0, 0, 4], [0, 0, 0], [4, 0, 0]]
    # 135 deg: 2-3, 1-hole, hole-1, 3-2
    assert m[3, 0].tolist() == [[0, 0, 0], [0, 0, 2], [0, 2, 0]]

    # distance 2: the hole is jumped over, the 3s at either side of it are now neighbours
    m2, _ = glcm.cooccurrence_matrices(levels, distance=2)
    assert m2[0, 0].tolist() == [[4, 0, 0], [0, 0, 0], [0, 0, 2]]  # rows: 1-1, 3-3, 1-1
    assert m2[1, 0].tolist() == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]  # (0,0)-(2,2): 1-1
    assert m2[2, 0].tolist() == [[4, 0, 0], [0, 2, 0], [0, 0, 0]]  # columns: 1-1, 2-2, 1-1
    assert m2[3, 0].tolist() == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]  # (0,2)-(2,0): 1-1


def test_two_voxels_separated_by_a_hole():
    levels = np.array([[[1, 0, 1]]])
    assert glcm.cooccurrence_matrices(levels)[0].sum() == 0
    assert all(math.isnan(v) for v in glcm.glcm_features(levels, 1, ALL).values())  # no pair at all
    m2, _ = glcm.cooccurrence_matrices(levels, distance=2)
    assert m2[0, 0].tolist() == [[2.0]]
    f = glcm.glcm_features(levels, 1, ALL, distance=2)
    assert f[column("cm.joint.max", "2D, averaged")] == 1.0  # the 3 directions without a pair are skipped


def test_3d_directions_on_a_cube():
    cube = np.ones((2, 2, 2), dtype=np.int32)
    m, grey = glcm.cooccurrence_matrices(cube, three_d=True)
    assert m.shape == (13, 1, 1) and grey.tolist() == [1]
    # 8 voxels: 4 pairs along each axis, 2 along each face diagonal, 1 along each space diagonal
    expected = {1: 4, 2: 2, 3: 1}  # by number of non-zero components of the direction
    for k, d in enumerate(directions_3d()):
        assert m[k, 0, 0] == 2 * expected[int(np.count_nonzero(d))], d
    assert m.sum() == 2 * (3 * 4 + 6 * 2 + 4 * 1)

    # levels 1 + 4z + 2y + x: a direction (dz, dy, dx) only pairs levels differing by 4dz + 2dy + dx
    cube = (1 + 4 * np.arange(2)[:, None, None] + 2 * np.arange(2)[None, :, None] + np.arange(2)[None, None, :])
    m, grey = glcm.cooccurrence_matrices(cube, three_d=True)
    assert grey.tolist() == list(range(1, 9))
    for k, (dz, dy, dx) in enumerate(directions_3d()):
        i, j = np.nonzero(m[k])
        assert set(np.abs(i - j).tolist()) == {abs(4 * dz + 2 * dy + dx)}
        assert m[k].sum() == 2 * (2 - abs(dz)) * (2 - abs(dy)) * (2 - abs(dx))


# --------------------------------------------------------------------------------------------------
# Against a direct transcription of the definitions
# --------------------------------------------------------------------------------------------------

def _naive_matrices(levels, offsets, top):
    """Loop over voxels: symmetric counts indexed by the true levels 1..top."""
    out = np.zeros((len(offsets), top + 1, top + 1))
    nz, ny, nx = levels.shape
    for k, (dz, dy, dx) in enumerate(offsets):
        for z in range(nz):
            for y in range(ny):
                for x in range(nx):
                    zz, yy, xx = z + dz, y + dy, x + dx
                    if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                        a, b = levels[z, y, x], levels[zz, yy, xx]
                        if a and b:
                            out[k, a, b] += 1
                            out[k, b, a] += 1
    return out[:, 1:, 1:]


@pytest.mark.parametrize("distance", [1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 7, 9), (4, 6, 5), (3, 1, 8)])
def test_matrices_match_a_voxel_loop(shape, distance):
    rng = np.random.default_rng(sum(shape) * 10 + distance)
    levels = rng.integers(0, 6, size=shape)  # ~1/6 of the voxels outside the ROI
    present = np.flatnonzero(np.bincount(levels.ravel(), minlength=6)[1:]) + 1
    m3, grey = glcm.cooccurrence_matrices(levels, distance, three_d=True)
    assert grey.tolist() == present.tolist()
    ref3 = _naive_matrices(levels, directions_3d() * distance, 5)[:, present - 1][:, :, present - 1]
    np.testing.assert_array_equal(m3, ref3)
    m2, _ = glcm.cooccurrence_matrices(levels, distance)
    for z in range(shape[0]):
        ref2 = _naive_matrices(levels[z:z + 1], directions_2d() * distance, 5)[:, present - 1][:, :, present - 1]
        np.testing.assert_array_equal(m2[:, z], ref2)


@pytest.mark.parametrize("chunk", [1, 7, 2048])
def test_sparse_roi_any_chunk_size(monkeypatch, chunk):
    """_pair_counts takes each slice in chunks: a half-empty ROI counts the same whatever the chunk."""
    rng = np.random.default_rng(3)
    levels = np.where(rng.random((5, 9, 8)) < 0.5, rng.integers(1, 5, size=(5, 9, 8)), 0)
    monkeypatch.setattr(glcm, "_CHUNK", chunk)
    m3, _ = glcm.cooccurrence_matrices(levels, 2, three_d=True)
    np.testing.assert_array_equal(m3, _naive_matrices(levels, directions_3d() * 2, 4))
    m2, _ = glcm.cooccurrence_matrices(levels, 2)
    for z in range(levels.shape[0]):
        np.testing.assert_array_equal(m2[:, z], _naive_matrices(levels[z:z + 1], directions_2d() * 2, 4))


def test_wide_cell_indices_give_the_same_counts():
    # count arrays of 2**31 cells or more index them with int64 (a separate compiled specialisation)
    rng = np.random.default_rng(12)
    levels = rng.integers(0, 5, size=(3, 6, 7))
    padded, grey = glcm._encode(levels, 1, pad_z=True)
    shifts = directions_3d() @ np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1])
    narrow = np.empty((13, glcm._CHUNK + 40), np.int32)
    for per_slice in (False, True):
        want = glcm._pair_counts(padded, shifts, grey.size, 1, 1, 4, per_slice, narrow)
        got = glcm._pair_counts(padded, shifts, grey.size, 1, 1, 4, per_slice, narrow.astype(np.int64))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.uint64])
def test_level_dtypes_and_layouts(dtype):
    rng = np.random.default_rng(4)
    levels = rng.integers(0, 5, size=(3, 6, 7))
    ref, grey = glcm.cooccurrence_matrices(levels.astype(np.int32), 1, three_d=True)
    got, grey2 = glcm.cooccurrence_matrices(levels.astype(dtype)[:, :, ::-1][:, :, ::-1], 1, three_d=True)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(grey2, grey)
    with pytest.raises(ValueError, match=">= 0"):
        glcm.cooccurrence_matrices(np.array([[[1, -1, 2]]]))


def _naive_features(counts, g, n_g):
    """IBSI 3.6 formulas transcribed literally, sums over (i, j) with the true levels g."""
    p = counts / counts.sum()
    i, j = np.meshgrid(g, g, indexing="ij")
    px, py = p.sum(1), p.sum(0)
    mux, muy = (g * px).sum(), (g * py).sum()
    sx, sy = math.sqrt(((g - mux) ** 2 * px).sum()), math.sqrt(((g - muy) ** 2 * py).sum())
    kd = {k: p[np.abs(i - j) == k].sum() for k in range(int(g.max() - g.min()) + 1)}
    ks = {k: p[i + j == k].sum() for k in range(int(2 * g.min()), int(2 * g.max()) + 1)}

    def h(x):
        x = np.asarray([v for v in np.ravel(x) if v > 0])
        return -(x * np.log2(x)).sum()

    nz = p > 0
    hxy = h(p)
    hxy1 = -(p[nz] * np.log2(np.outer(px, py)[nz])).sum()
    pp = np.outer(px, py)
    hxy2 = h(pp)
    mu = (i * p).sum()
    d_avg = sum(k * v for k, v in kd.items())
    s_avg = sum(k * v for k, v in ks.items())
    return {
        "cm.joint.max": p.max(),
        "cm.joint.avg": mu,
        "cm.joint.var": ((i - mu) ** 2 * p).sum(),
        "cm.joint.entr": hxy,
        "cm.diff.avg": d_avg,
        "cm.diff.var": sum((k - d_avg) ** 2 * v for k, v in kd.items()),
        "cm.diff.entr": h(list(kd.values())),
        "cm.sum.avg": s_avg,
        "cm.sum.var": sum((k - s_avg) ** 2 * v for k, v in ks.items()),
        "cm.sum.entr": h(list(ks.values())),
        "cm.energy": (p**2).sum(),
        "cm.contrast": ((i - j) ** 2 * p).sum(),
        "cm.dissimilarity": (np.abs(i - j) * p).sum(),
        "cm.inv.diff": (p / (1 + np.abs(i - j))).sum(),
        "cm.inv.diff.norm": (p / (1 + np.abs(i - j) / n_g)).sum(),
        "cm.inv.diff.mom": (p / (1 + (i - j) ** 2)).sum(),
        "cm.inv.diff.mom.norm": (p / (1 + (i - j) ** 2 / n_g**2)).sum(),
        "cm.inv.var": (p[i != j] / ((i - j)[i != j] ** 2)).sum(),
        "cm.corr": ((i * j * p).sum() - mux * muy) / (sx * sy),
        "cm.auto.corr": (i * j * p).sum(),
        "cm.clust.tend": ((i + j - mux - muy) ** 2 * p).sum(),
        "cm.clust.shade": ((i + j - mux - muy) ** 3 * p).sum(),
        "cm.clust.prom": ((i + j - mux - muy) ** 4 * p).sum(),
        "cm.info.corr.1": (hxy - hxy1) / max(h(px), h(py)),
        "cm.info.corr.2": math.sqrt(1 - math.exp(-2 * (hxy2 - hxy))),
    }


def test_features_match_the_definitions_with_absent_levels():
    rng = np.random.default_rng(11)
    g = np.array([1.0, 3.0, 4.0, 7.0, 8.0])  # levels 2, 5, 6 absent, N_g = 9
    counts = rng.integers(0, 6, size=(6, 5, 5)).astype(float)
    counts = counts + counts.transpose(0, 2, 1)
    counts[0] = np.diag([0, 0, 3, 0, 1.0]) * 2  # a sparse matrix with only two levels
    got = glcm.features_of_matrices(counts, g, 9)
    for n in range(counts.shape[0]):
        ref = _naive_features(counts[n], g, 9)
        for tag, v in ref.items():
            assert got[tag][n] == pytest.approx(v, rel=1e-10, abs=1e-12), (n, tag)


def test_entropy_identities_hxy1_hxy2():
    """HXY1 and HXY2 are computed as HX + HY: check against the definitions, also non-symmetric."""
    rng = np.random.default_rng(5)
    p = rng.random((4, 6, 6)) * (rng.random((4, 6, 6)) < 0.6)
    p /= p.sum(axis=(1, 2))[:, None, None]
    q = glcm._quantities(p, np.arange(1.0, 7.0), 6, symmetric=False)
    for n in range(4):
        px, py = p[n].sum(1), p[n].sum(0)
        pp = np.outer(px, py)
        nz, nzpp = p[n] > 0, pp > 0
        assert q.hxy1[n] == pytest.approx(-(p[n][nz] * np.log2(pp[nz])).sum(), rel=1e-12)
        assert q.hxy2[n] == pytest.approx(-(pp[nzpp] * np.log2(pp[nzpp])).sum(), rel=1e-12)


# --------------------------------------------------------------------------------------------------
# Invariances and degenerate cases
# --------------------------------------------------------------------------------------------------

def _random_roi(seed=7, shape=(3, 9, 11), n_levels=5):
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, n_levels + 1, size=shape)
    levels[1, 2:5, 3:7] = 0  # a hole in the ROI
    levels[:, 0, :] = 0      # and a ragged border
    return levels


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-12), k


@pytest.mark.parametrize("distance", [1, 2])
def test_transposing_y_and_x_changes_nothing(distance):
    levels = _random_roi()
    ref = glcm.glcm_features(levels, 5, ALL, distance)
    _assert_same(ref, glcm.glcm_features(np.ascontiguousarray(levels.transpose(0, 2, 1)), 5, ALL, distance))


def test_flips_change_nothing():
    levels = _random_roi(seed=8)
    ref = glcm.glcm_features(levels, 5, ALL)
    for other in (levels[:, :, ::-1], levels[:, ::-1], levels[::-1]):
        _assert_same(ref, glcm.glcm_features(np.ascontiguousarray(other), 5, ALL))


def test_empty_slices_are_skipped_by_the_slice_wise_methods():
    levels = _random_roi(seed=9)
    padded = np.concatenate([np.zeros((1,) + levels.shape[1:], levels.dtype), levels[:1],
                             np.zeros((2,) + levels.shape[1:], levels.dtype), levels[1:]])
    ref = glcm.glcm_features(levels, 5, AGGREGATIONS_2D)
    _assert_same(ref, glcm.glcm_features(padded, 5, AGGREGATIONS_2D))


def test_single_grey_level():
    f = glcm.glcm_features(np.full((2, 4, 4), 3, dtype=np.int32), 5, ALL)
    for a in ALL:
        assert f[column("cm.joint.max", a)] == 1.0
        assert f[column("cm.contrast", a)] == 0.0
        assert f[column("cm.joint.entr", a)] == 0.0
        assert f[column("cm.joint.avg", a)] == pytest.approx(3.0)
        assert f[column("cm.joint.var", a)] == 0.0
        assert f[column("cm.energy", a)] == 1.0
        assert f[column("cm.inv.diff", a)] == 1.0
        # documented choices for the 0/0 cases: correlation 1, information correlations 0
        assert f[column("cm.corr", a)] == 1.0
        assert f[column("cm.info.corr.1", a)] == 0.0
        assert f[column("cm.info.corr.2", a)] == 0.0
        assert all(math.isfinite(f[column(x.tag, a)]) for x in glcm.FEATURES)


def test_empty_roi_and_isolated_voxels_give_nan():
    for levels in (np.zeros((2, 3, 3), dtype=np.int32), np.array([[[1, 0, 2], [0, 0, 0], [3, 0, 1]]])):
        f = glcm.glcm_features(levels, 3, ALL)
        assert len(f) == 25 * 6 and all(math.isnan(v) for v in f.values())


def test_2d_input_is_one_slice_and_large_levels_are_compressed():
    levels = np.array([[1, 1000, 1000], [1, 1, 500]], dtype=np.int32)
    _assert_same(glcm.glcm_features(levels[np.newaxis], 1000, AGGREGATIONS_2D),
                 glcm.glcm_features(levels, 1000, AGGREGATIONS_2D))
    m, grey = glcm.cooccurrence_matrices(levels)
    assert grey.tolist() == [1, 500, 1000] and m.shape == (4, 1, 3, 3)  # 3 x 3, not 1000 x 1000
    # the formulas use the true levels: 0 deg pairs 1-1000, 1000-1000 | 1-1, 1-500 -> 8 counts with
    # |i-j| = 999 (2 counts), 499 (2 counts), 0 (4 counts)
    f = glcm.features_of_matrices(m[0], grey, 1000)
    assert f["cm.diff.avg"][0] == pytest.approx((2 * 999 + 2 * 499) / 8)
    assert f["cm.contrast"][0] == pytest.approx((2 * 999**2 + 2 * 499**2) / 8)
