"""GLSZM (IBSI 3.8): zones counted by hand, labelling against scipy, aggregation, invariances, edge cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import medfeat
from medfeat.columns import feature_columns
from medfeat.features import glszm, zones
from medfeat.features.base import AGGREGATIONS, AGGREGATIONS_2D, AGGREGATIONS_3D, column

METHODS = ("2D", "2.5D", "3D")

# 8-connected zones (by hand): level 1 -> {(0,0) (1,1) (1,2) (2,1) (0,3) (3,0)} size 6 (diagonal links)
# and {(3,3)} size 1; level 2 -> {(0,1) (0,2) (1,0) (2,0) (1,3) (3,1)} size 6; level 3 -> size 3.
HAND = np.array([[1, 2, 2, 1],
                 [2, 1, 1, 2],
                 [2, 1, 3, 3],
                 [1, 2, 3, 1]])
HAND_ZONES = [(1, 6), (1, 1), (2, 6), (3, 3)]  # (grey level, size)


def _col(tag, method):
    return column(tag, method)


def test_size_zone_matrix_by_hand():
    m, grey = glszm.size_zone_matrices(HAND)
    assert grey.tolist() == [1, 2, 3]
    expected = np.zeros((3, 6))
    for i, j in HAND_ZONES:
        expected[i - 1, j - 1] += 1
    assert m.shape == (1, 3, 6)
    assert m[0].tolist() == expected.tolist()


def test_features_by_hand():
    f = glszm.glszm_features(HAND[np.newaxis], 3, ["2D"])
    ns, nv = 4, 16

    def mean(w):
        return sum(w(i, j) for i, j in HAND_ZONES) / ns

    assert f["szm_sze_2d"] == pytest.approx(7 / 24)                      # (1 + 1/9 + 2/36) / 4
    assert f["szm_lze_2d"] == pytest.approx(82 / 4)                      # (1 + 9 + 36 + 36) / 4
    assert f["szm_lgze_2d"] == pytest.approx(85 / 144)                   # (2 + 1/4 + 1/9) / 4
    assert f["szm_hgze_2d"] == pytest.approx(15 / 4)
    assert f["szm_szlge_2d"] == pytest.approx(mean(lambda i, j: 1 / (i * i * j * j)))
    assert f["szm_szhge_2d"] == pytest.approx(mean(lambda i, j: i * i / (j * j)))
    assert f["szm_lzlge_2d"] == pytest.approx(mean(lambda i, j: j * j / (i * i)))
    assert f["szm_lzhge_2d"] == pytest.approx(mean(lambda i, j: i * i * j * j))
    assert f["szm_glnu_2d"] == pytest.approx((2**2 + 1 + 1) / ns)      # zones per level 2, 1, 1
    assert f["szm_glnu_norm_2d"] == pytest.approx(6 / 16)
    assert f["szm_zsnu_2d"] == pytest.approx((1 + 1 + 2**2) / ns)      # zones per size: 1 -> 1, 3 -> 1, 6 -> 2
    assert f["szm_zsnu_norm_2d"] == pytest.approx(6 / 16)
    assert f["szm_z_perc_2d"] == pytest.approx(ns / nv)
    assert f["szm_gl_var_2d"] == pytest.approx(0.6875)                   # mean 1.75
    assert f["szm_zs_var_2d"] == pytest.approx(4.5)                      # mean 4
    assert f["szm_zs_entr_2d"] == pytest.approx(2.0)                     # four cells of p = 1/4


def test_zones_link_diagonally_across_slices_only_in_3d():
    levels = np.zeros((2, 2, 2), int)
    levels[0, 0, 0] = levels[1, 1, 1] = 4  # corner to corner: 26-neighbours
    z2 = zones.zones(levels)
    z3 = zones.zones(levels, three_d=True)
    assert z2["size"].tolist() == [1, 1] and z2["slice"].tolist() == [0, 1]
    assert z3["size"].tolist() == [2]
    f = glszm.glszm_features(levels, 4, METHODS)
    assert f["szm_z_perc_2d"] == 1.0 and f["szm_z_perc_25d"] == 1.0
    assert f["szm_z_perc_3d"] == 0.5 and f["szm_lze_3d"] == 4.0


def _scipy_zones(levels, three_d):
    """Sorted (level, slice or -1, size) of the zones by scipy.ndimage.label, one level at a time."""
    out = []
    for g in np.unique(levels[levels > 0]):
        if three_d:
            lab, n = ndimage.label(levels == g, np.ones((3, 3, 3)))
            out += [(g, -1, s) for s in np.bincount(lab.ravel())[1:]]
        else:
            for z in range(levels.shape[0]):
                lab, n = ndimage.label(levels[z] == g, np.ones((3, 3)))
                out += [(g, z, s) for s in np.bincount(lab.ravel())[1:]]
    return sorted(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("three_d", [False, True])
def test_labelling_agrees_with_scipy(seed, three_d):
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, 4, size=(5, 17, 13))
    levels[rng.random(levels.shape) < 0.2] = 0  # holes in the ROI
    z = zones.zones(levels, three_d=three_d)
    where = -np.ones_like(z["slice"]) if three_d else z["slice"]
    ours = sorted(zip(z["level"].astype(int).tolist(), where.tolist(), z["size"].tolist()))
    assert ours == [(int(a), int(b), int(c)) for a, b, c in _scipy_zones(levels, three_d)]
    assert z["size"].sum() == np.count_nonzero(levels)


def test_large_uniform_zone_and_many_levels():
    levels = np.ones((1, 200, 300), int)
    levels[0, 50:60, 50:60] = np.arange(2, 102).reshape(10, 10)  # 100 single-voxel zones inside one big zone
    m, grey = glszm.size_zone_matrices(levels)
    assert grey.size == 101
    assert m[0, 0, 200 * 300 - 100 - 1] == 1 and m[0, 1:, 0].sum() == 100


def test_2d_averages_slices_and_25d_merges_them():
    rng = np.random.default_rng(3)
    levels = rng.integers(1, 5, size=(3, 8, 9))
    levels[1] = 0  # an empty slice: left out of the average
    f = glszm.glszm_features(levels, 4, METHODS)
    per_slice = [glszm.glszm_features(levels[[z]], 4, ["2D"]) for z in (0, 2)]
    for feat in glszm.FEATURES:
        assert f[_col(feat.tag, "2D")] == pytest.approx(np.mean([p[_col(feat.tag, "2D")] for p in per_slice]))
    # 2.5D: one matrix of both slices' zones; N_v is the voxel count of both slices
    both_gap = np.zeros((1, 8, 19), int)
    both_gap[0, :, :9], both_gap[0, :, 10:] = levels[0], levels[2]  # a column of outside keeps zones apart
    merged = glszm.glszm_features(both_gap, 4, ["2D"])
    for feat in glszm.FEATURES:
        assert f[_col(feat.tag, "2.5D")] == pytest.approx(merged[_col(feat.tag, "2D")])


def test_directional_method_names_stand_for_the_undirected_ones():
    levels = HAND[np.newaxis]
    f2 = glszm.glszm_features(levels, 3, AGGREGATIONS_2D)
    assert list(f2) == [_col(x.tag, a) for a in ("2D", "2.5D") for x in glszm.FEATURES]
    f3 = glszm.glszm_features(levels, 3)  # default: the 3D methods
    assert list(f3) == [_col(x.tag, "3D") for x in glszm.FEATURES]
    fall = glszm.glszm_features(levels, 3, tuple(AGGREGATIONS))
    assert list(fall) == [_col(x.tag, a) for a in METHODS for x in glszm.FEATURES]
    with pytest.raises(ValueError, match="unknown aggregation"):
        glszm.glszm_features(levels, 3, ["4D"])
    assert AGGREGATIONS_3D == ("3D, averaged", "3D, merged")


def test_rotation_and_flips_leave_features_unchanged():
    rng = np.random.default_rng(11)
    levels = rng.integers(1, 6, size=(4, 12, 9))
    levels[1, 3:6, 2:7] = 0
    ref = glszm.glszm_features(levels, 5, METHODS)
    for other in (np.rot90(levels, 1, axes=(1, 2)), np.rot90(levels, 2, axes=(1, 2)), levels[:, ::-1],
                  levels[:, :, ::-1], levels[::-1], levels.transpose(0, 2, 1)):
        got = glszm.glszm_features(np.ascontiguousarray(other), 5, METHODS)
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, rel=1e-12), k


def test_empty_and_single_voxel_rois():
    f = glszm.glszm_features(np.zeros((2, 3, 3), int), 4, METHODS)
    assert len(f) == 16 * 3 and all(np.isnan(v) for v in f.values())
    one = np.zeros((2, 3, 3), int)
    one[1, 1, 2] = 3
    f = glszm.glszm_features(one, 4, METHODS)
    for m in METHODS:
        assert f[_col("szm.sze", m)] == 1 and f[_col("szm.lze", m)] == 1 and f[_col("szm.z.perc", m)] == 1
        assert f[_col("szm.hgze", m)] == 9 and f[_col("szm.glnu.norm", m)] == 1
        assert f[_col("szm.gl.var", m)] == 0 and f[_col("szm.zs.var", m)] == 0
        assert f[_col("szm.zs.entr", m)] == 0 and not np.signbit(f[_col("szm.zs.entr", m)])
    with pytest.raises(ValueError, match="empty ROI"):
        glszm.size_zone_matrices(np.zeros((1, 2, 2), int))


def test_family_through_extract():
    rng = np.random.default_rng(5)
    image = rng.normal(100, 20, size=(4, 16, 16))
    mask = np.zeros(image.shape, bool)
    mask[:, 2:14, 3:13] = True
    row = medfeat.extract(image, mask, "default-2d", families=["glszm"])
    assert list(row) == [c.name for c in feature_columns("default-2d", ["glszm"])]
    assert list(row) == [_col(x.tag, a) for a in ("2D", "2.5D") for x in glszm.FEATURES]
    assert all(np.isfinite(v) for v in row.values())
    row3 = medfeat.extract(image, mask, "default-3d", families=["glszm"])
    assert list(row3) == [_col(x.tag, "3D") for x in glszm.FEATURES]
