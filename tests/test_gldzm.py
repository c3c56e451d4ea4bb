"""GLDZM (IBSI 3.9): distances counted by hand, against scipy, morphological mask, invariances, edge cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import medfeat
from medfeat.columns import feature_columns
from medfeat.roi import ROI
from medfeat.settings import Settings
from medfeat.features import gldzm, glszm, zones
from medfeat.features.base import AGGREGATIONS_2D, column

METHODS = ("2D", "2.5D", "3D")

# Concentric squares. Distance to the ROI edge (4-connected, edge voxels 1):
#   1 1 1 1 1
#   1 2 2 2 1
#   1 2 3 2 1
#   1 2 2 2 1
#   1 1 1 1 1
# so the ring of 1s is at distance 1, the ring of 2s at 2 and the centre 3 at 3.
RINGS = np.array([[1, 1, 1, 1, 1],
                  [1, 2, 2, 2, 1],
                  [1, 2, 3, 2, 1],
                  [1, 2, 2, 2, 1],
                  [1, 1, 1, 1, 1]])


def _col(tag, method):
    return column(tag, method)


def test_distance_zone_matrix_by_hand():
    m, grey = gldzm.distance_zone_matrices(RINGS)
    assert grey.tolist() == [1, 2, 3]
    assert m[0].tolist() == np.eye(3).tolist()  # (level i, distance i) once each
    z = zones.zones(RINGS)
    assert sorted(zip(z["level"].tolist(), z["size"].tolist(), z["distance"].tolist())) == [
        (1.0, 16, 1), (2.0, 8, 2), (3.0, 1, 3)]


def test_features_by_hand():
    f = gldzm.gldzm_features(RINGS[np.newaxis], 3, ["2D"])
    cells = [(1, 1), (2, 2), (3, 3)]  # (grey level, distance)

    def mean(w):
        return sum(w(i, j) for i, j in cells) / 3

    assert f["dzm_sde_2d"] == pytest.approx((1 + 1 / 4 + 1 / 9) / 3)
    assert f["dzm_lde_2d"] == pytest.approx(14 / 3)
    assert f["dzm_lgze_2d"] == pytest.approx((1 + 1 / 4 + 1 / 9) / 3)
    assert f["dzm_hgze_2d"] == pytest.approx(14 / 3)
    assert f["dzm_sdlge_2d"] == pytest.approx(mean(lambda i, j: 1 / (i * i * j * j)))
    assert f["dzm_sdhge_2d"] == pytest.approx(mean(lambda i, j: i * i / (j * j)))   # 1
    assert f["dzm_ldlge_2d"] == pytest.approx(mean(lambda i, j: j * j / (i * i)))   # 1
    assert f["dzm_ldhge_2d"] == pytest.approx(mean(lambda i, j: i**2 * j**2))       # (1 + 16 + 81) / 3
    assert f["dzm_glnu_2d"] == pytest.approx(1.0) and f["dzm_glnu_norm_2d"] == pytest.approx(1 / 3)
    assert f["dzm_zdnu_2d"] == pytest.approx(1.0) and f["dzm_zdnu_norm_2d"] == pytest.approx(1 / 3)
    assert f["dzm_z_perc_2d"] == pytest.approx(3 / 25)
    assert f["dzm_gl_var_2d"] == pytest.approx(2 / 3) and f["dzm_zd_var_2d"] == pytest.approx(2 / 3)
    assert f["dzm_zd_entr_2d"] == pytest.approx(np.log2(3))


def test_zone_distance_is_the_smallest_over_its_voxels():
    levels = RINGS.copy()
    levels[2, 2:] = 3  # the 3-zone now reaches the edge: distance 1, whatever its centre voxel's 3
    z = zones.zones(levels)
    assert dict(zip(z["level"].tolist(), z["distance"].tolist()))[3.0] == 1


def test_morphological_mask_sets_the_edge():
    levels = RINGS[np.newaxis].copy()
    levels[0, 2, 2] = 0  # re-segmented out of the intensity mask, still in the morphological mask
    morph = np.ones(levels.shape, bool)
    f_morph = gldzm.gldzm_features(levels, 3, ["2D"], morph_mask=morph)
    f_int = gldzm.gldzm_features(levels, 3, ["2D"])  # the hole becomes an edge: the 2-ring at distance 1
    assert f_morph["dzm_lde_2d"] == pytest.approx((1 + 4) / 2)
    assert f_int["dzm_lde_2d"] == pytest.approx(1.0)
    # zones (and so the GLSZM) depend on the intensity mask only
    assert f_morph["dzm_z_perc_2d"] == f_int["dzm_z_perc_2d"] == pytest.approx(2 / 24)


def test_2d_distances_stay_in_plane_and_3d_use_six_neighbours():
    levels = np.stack([RINGS] * 3)  # three identical slices: the middle one is 2 from the z edge
    z2 = zones.zones(levels)
    assert sorted(z2["distance"].tolist()) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    f = gldzm.gldzm_features(levels, 3, METHODS)
    # 3D: the 3-zone (a 3-voxel column) touches the top and bottom slices: distance 1; so do the rest
    z3 = zones.zones(levels, three_d=True)
    assert z3["distance"].tolist() == [1, 1, 1]
    assert f["dzm_lde_3d"] == 1.0
    assert f["dzm_lde_2d"] == pytest.approx(14 / 3) and f["dzm_lde_25d"] == pytest.approx(14 / 3)
    bigger = np.ones((5, 7, 7), int)
    bigger[2, 3, 3] = 2  # centre of a 5x7x7 block: 3D city-block distance min(3, 4, 4) = 3; in-plane 4
    z3 = zones.zones(bigger, three_d=True)
    assert dict(zip(z3["level"].tolist(), z3["distance"].tolist()))[2.0] == 3
    z2 = zones.zones(bigger)
    assert dict(zip(z2["level"].tolist(), z2["distance"].tolist()))[2.0] == 4


@pytest.mark.parametrize("three_d", [False, True])
def test_distances_agree_with_scipy_city_block_transform(three_d):
    rng = np.random.default_rng(4)
    morph = ndimage.binary_opening(rng.random((6, 21, 17)) < 0.8)
    levels = np.where(morph & (rng.random(morph.shape) < 0.9), rng.integers(1, 4, morph.shape), 0)
    padded = np.pad(morph, 1)
    if three_d:
        dist = ndimage.distance_transform_cdt(padded, metric="taxicab")[1:-1, 1:-1, 1:-1]
        lab_struct = np.ones((3, 3, 3))
    else:
        dist = np.stack([ndimage.distance_transform_cdt(np.pad(s, 1), metric="taxicab")[1:-1, 1:-1] for s in morph])
        lab_struct = np.zeros((3, 3, 3))
        lab_struct[1] = 1
    expected = []
    for g in (1, 2, 3):
        lab, n = ndimage.label(levels == g, lab_struct)
        expected += [(g, int(d)) for d in ndimage.minimum(dist, lab, np.arange(1, n + 1))]
    z = zones.zones(levels, three_d=three_d, morph_mask=morph)
    assert sorted(zip(z["level"].astype(int).tolist(), z["distance"].tolist())) == sorted(expected)


def test_rotation_and_flips_leave_features_unchanged():
    rng = np.random.default_rng(12)
    levels = rng.integers(1, 5, size=(4, 11, 13))
    levels[2, 4:8, 3:6] = 0
    morph = np.ones(levels.shape, bool)
    morph[0, :2, :3] = False
    levels[~morph] = 0
    ref = gldzm.gldzm_features(levels, 4, METHODS, morph)
    for t in (lambda a: np.rot90(a, 1, axes=(1, 2)), lambda a: np.rot90(a, 3, axes=(1, 2)), lambda a: a[:, ::-1],
              lambda a: a[::-1], lambda a: a.transpose(0, 2, 1)):
        got = gldzm.gldzm_features(np.ascontiguousarray(t(levels)), 4, METHODS, np.ascontiguousarray(t(morph)))
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, rel=1e-12), k


def test_grey_level_features_equal_the_glszm_ones():
    rng = np.random.default_rng(8)
    levels = rng.integers(1, 6, size=(3, 10, 10))
    s = glszm.glszm_features(levels, 5, METHODS)
    d = gldzm.gldzm_features(levels, 5, METHODS)
    for a in METHODS:
        for tag in ("lgze", "hgze", "glnu", "glnu.norm", "z.perc", "gl.var"):
            assert d[_col("dzm." + tag, a)] == pytest.approx(s[_col("szm." + tag, a)])


def test_empty_and_single_voxel_rois():
    f = gldzm.gldzm_features(np.zeros((1, 3, 3), int), 4, METHODS)
    assert len(f) == 16 * 3 and all(np.isnan(v) for v in f.values())
    one = np.zeros((1, 3, 3), int)
    one[0, 1, 1] = 2
    f = gldzm.gldzm_features(one, 4, METHODS)
    for m in METHODS:
        assert f[_col("dzm.sde", m)] == 1 and f[_col("dzm.lde", m)] == 1 and f[_col("dzm.z.perc", m)] == 1
        assert f[_col("dzm.zd.var", m)] == 0 and f[_col("dzm.zd.entr", m)] == 0
    with pytest.raises(ValueError, match="shape"):
        gldzm.gldzm_features(one, 4, METHODS, np.ones((2, 3, 3), bool))


def test_extract_uses_the_morphological_mask():
    image = RINGS[np.newaxis].astype(float) * 10
    image[0, 2, 2] = 1000  # removed by re-segmentation: out of the intensity mask only
    s = Settings(dimension="2d", resegment_max=100, discretisation="fbs", bin_width=10, resegment_min=0,
                 families=("gldzm",))
    row = medfeat.extract(image, np.ones(image.shape, bool), s)
    assert list(row) == [c.name for c in feature_columns(s)]
    assert row["dzm_lde_2d"] == pytest.approx((1 + 4) / 2)  # distances in the full square
    roi = ROI(image, np.ones(image.shape, bool), s, (1.0, 1.0, 1.0), "x")
    assert row == gldzm.gldzm_features(roi.levels, 0, AGGREGATIONS_2D, roi.morph_mask)
