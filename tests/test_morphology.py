"""Morphological features (IBSI 3.1): hand-checkable shapes, scaling laws, exact pair sums, edge cases.

The IBSI reference values (digital phantom, CT configuration A) are checked in test_ibsi_reference.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import medfeat
from medfeat import Image, Settings
from medfeat.columns import feature_columns
from medfeat.features import morphology as M
from medfeat.features.morphology import morphology_features
from medfeat.features.morphology_2d import morphology_2d_features


def _ball(radius: float, pad: int = 2) -> np.ndarray:
    n = int(math.ceil(radius)) + pad
    z, y, x = np.mgrid[-n:n + 1, -n:n + 1, -n:n + 1]
    return z * z + y * y + x * x <= radius * radius


def _features(mask, spacing=(1.0, 1.0, 1.0), image=None):
    mask = np.asarray(mask, dtype=bool)
    image = np.ones(mask.shape) if image is None else image
    return morphology_features(mask, image, mask, spacing)


def test_every_feature_has_its_ibsi_code():
    codes = {f.tag: f.code for f in M.FEATURES}
    assert len(codes) == 29 and all(len(c) == 4 for c in codes.values())
    assert codes["morph.vol"] == "RNU0" and codes["morph.geary.c"] == "NPT7"
    assert codes["morph.v.dens.ombb"] == "ZH1A" and codes["morph.a.dens.mvee"] == "BRI8"


def test_cube_volume_area_and_boxes():
    n = 10
    mask = np.zeros((n + 2,) * 3, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    f = _features(mask)
    assert f["morph.approx.vol"] == n ** 3
    # the mesh is the cube [-1/2, n - 1/2]^3 with its 12 edges chamfered at 45 degrees (prisms of
    # section 1/8 cut off) and its 8 corners cut by equilateral triangles (side sqrt(2) / 2)
    assert f["morph.vol"] == pytest.approx(n ** 3 - 12 * (n - 1) / 8 - 8 * (1 / 8 - 1 / 48))
    assert f["morph.area"] == pytest.approx(6 * (n - 1) ** 2 + 12 * (n - 1) * math.sqrt(0.5)
                                            + 8 * math.sqrt(3) / 8)
    assert f["morph.v.dens.aabb"] == pytest.approx(f["morph.vol"] / n ** 3)
    assert f["morph.v.dens.ombb"] == pytest.approx(f["morph.v.dens.aabb"])  # an axis-aligned cube's OMBB
    assert f["morph.v.dens.conv.hull"] == pytest.approx(1.0)
    assert f["morph.pca.elongation"] == pytest.approx(1.0) and f["morph.pca.flatness"] == pytest.approx(1.0)
    # voxel centres of a cube: sample variance n^3 (n^2 - 1) / 12 / (n^3 - 1) along each axis
    assert f["morph.pca.major"] == pytest.approx(4 * math.sqrt(n ** 3 * (n * n - 1) / 12 / (n ** 3 - 1)))
    assert f["morph.com"] == pytest.approx(0.0, abs=1e-12)


def test_ball_is_close_to_the_analytic_sphere():
    r = 12.0
    f = _features(_ball(r))
    assert f["morph.vol"] == pytest.approx(4 / 3 * math.pi * r ** 3, rel=0.02)
    assert f["morph.vol"] == pytest.approx(f["morph.approx.vol"], rel=0.01)
    assert f["morph.approx.vol"] == pytest.approx(4 / 3 * math.pi * r ** 3, rel=0.02)
    # the mesh of a voxelised ball is a little rough: its area exceeds the sphere's by ~7 %
    assert 1.0 < f["morph.area"] / (4 * math.pi * r ** 2) < 1.1
    assert 0.9 < f["morph.sphericity"] <= 1.0
    assert f["morph.asphericity"] == pytest.approx(1 / f["morph.sphericity"] - 1)
    assert f["morph.comp.2"] == pytest.approx(f["morph.sphericity"] ** 3)
    assert f["morph.sph.dispr"] == pytest.approx(1 / f["morph.sphericity"])
    assert f["morph.comp.1"] == pytest.approx(math.sqrt(f["morph.comp.2"]) / (6 * math.pi))
    # a solid ball's axis variance is r^2 / 5
    assert f["morph.pca.major"] == pytest.approx(4 * r / math.sqrt(5), rel=0.02)
    assert f["morph.pca.least"] == pytest.approx(f["morph.pca.major"], rel=0.01)
    assert f["morph.diam"] == pytest.approx(2 * r + 1, abs=1.0)
    assert f["morph.v.dens.aee"] == pytest.approx(5 ** 1.5 / 8, rel=0.03)
    assert f["morph.v.dens.ombb"] == pytest.approx(math.pi / 6, rel=0.05)  # a ball in its cube
    assert 0.85 < f["morph.v.dens.mvee"] < 1.0
    assert 0.95 < f["morph.v.dens.conv.hull"] < 1.0


def test_spacing_scaling_laws():
    rng = np.random.default_rng(3)
    mask = _ball(4.5)
    mask[:, :3] = False  # not symmetric
    image = rng.normal(size=mask.shape)
    one = morphology_features(mask, image, mask, (1.0, 1.0, 1.0))
    two = morphology_features(mask, image, mask, (2.0, 2.0, 2.0))
    assert two["morph.vol"] == pytest.approx(8 * one["morph.vol"])
    assert two["morph.approx.vol"] == pytest.approx(8 * one["morph.approx.vol"])
    assert two["morph.area"] == pytest.approx(4 * one["morph.area"])
    assert two["morph.integ.int"] == pytest.approx(8 * one["morph.integ.int"])
    for tag in ("morph.diam", "morph.pca.major", "morph.pca.minor", "morph.pca.least", "morph.com"):
        assert two[tag] == pytest.approx(2 * one[tag]), tag
    assert two["morph.av"] == pytest.approx(one["morph.av"] / 2)
    for tag in ("morph.sphericity", "morph.comp.1", "morph.pca.elongation", "morph.v.dens.aabb",
                "morph.a.dens.aee", "morph.v.dens.conv.hull", "morph.v.dens.ombb", "morph.v.dens.mvee",
                "morph.moran.i", "morph.geary.c"):
        assert two[tag] == pytest.approx(one[tag], rel=1e-6), tag


def test_anisotropic_spacing_is_in_physical_units():
    """A 4 x 8 x 8 voxel block of 2 x 1 x 1 mm is an 8 mm cube."""
    mask = np.zeros((6, 10, 10), bool)
    mask[1:5, 1:9, 1:9] = True
    f = _features(mask, (2.0, 1.0, 1.0))
    assert f["morph.approx.vol"] == 512.0
    # sample covariance of the 256 centres: z (4 planes, 2 mm apart) 64 * 20 / 255, y and x 32 * 42 / 255
    assert f["morph.pca.major"] == pytest.approx(4 * math.sqrt(32 * 42 / 255))
    assert f["morph.pca.minor"] == pytest.approx(4 * math.sqrt(32 * 42 / 255))
    assert f["morph.pca.least"] == pytest.approx(4 * math.sqrt(64 * 20 / 255))
    assert f["morph.v.dens.ombb"] == pytest.approx(f["morph.v.dens.aabb"])


def test_one_voxel():
    mask = np.ones((1, 1, 1), bool)
    f = morphology_features(mask, np.full((1, 1, 1), 5.0), mask, (2.0, 2.0, 2.0))
    # marching cubes draws an octahedron through the face centres: volume s^3 / 6
    assert f["morph.vol"] == pytest.approx(8 / 6)
    assert f["morph.area"] == pytest.approx(8 * math.sqrt(3) / 4 * 2)  # 8 triangles of side sqrt(2) mm
    assert f["morph.approx.vol"] == 8.0
    assert f["morph.pca.major"] == 0.0 and math.isnan(f["morph.pca.elongation"])
    assert math.isnan(f["morph.v.dens.aee"]) and math.isnan(f["morph.moran.i"])
    assert f["morph.integ.int"] == pytest.approx(5 * 8 / 6)
    assert f["morph.diam"] == pytest.approx(2.0)
    assert f["morph.v.dens.conv.hull"] == pytest.approx(1.0)


def test_flat_roi_gives_nan_not_an_error():
    mask = np.zeros((1, 6, 7), bool)
    mask[0, 1:5, 1:6] = True
    f = _features(mask)
    assert f["morph.pca.least"] == 0.0 and f["morph.pca.flatness"] == 0.0
    assert math.isnan(f["morph.v.dens.aee"])
    assert np.isfinite(f["morph.vol"]) and np.isfinite(f["morph.v.dens.mvee"])


def _brute_force(image, mask, spacing):
    pos = np.argwhere(mask) * np.asarray(spacing)
    x = image[mask]
    d = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    w = 1 / d
    f = x - x.mean()
    n = len(x)
    moran = n / w.sum() * (w * np.outer(f, f)).sum() / (f @ f)
    geary = (n - 1) / (2 * w.sum()) * (w * (x[:, None] - x[None]) ** 2).sum() / (f @ f)
    return moran, geary


@pytest.mark.parametrize("shape,spacing", [((4, 5, 6), (1.0, 1.0, 1.0)), ((3, 9, 7), (3.0, 0.8, 0.7)),
                                           ((1, 12, 10), (1.0, 0.5, 0.5)), ((5, 1, 8), (2.0, 1.0, 1.5))])
def test_moran_and_geary_equal_the_pairwise_sums(shape, spacing):
    rng = np.random.default_rng(7)
    image = rng.normal(size=shape) + np.linspace(0, 3, shape[-1])
    mask = rng.random(shape) > 0.3
    got = M.spatial_autocorrelation(image, mask, spacing)
    assert got == pytest.approx(_brute_force(image, mask, spacing), rel=1e-9)


def test_subsample_fallback_is_exact_below_its_sample_size(monkeypatch):
    rng = np.random.default_rng(8)
    image = rng.normal(size=(4, 6, 6))
    mask = rng.random(image.shape) > 0.2
    exact = M.spatial_autocorrelation(image, mask, (2.0, 1.0, 1.0))
    monkeypatch.setattr(M, "FFT_MAX_CELLS", 0)
    assert M.spatial_autocorrelation(image, mask, (2.0, 1.0, 1.0)) == pytest.approx(exact, rel=1e-9)


def test_moran_and_geary_see_smooth_and_checkerboard_patterns():
    z, y, x = np.indices((4, 8, 8))
    smooth = (x + y + z).astype(float)
    board = ((x + y + z) % 2).astype(float)
    mask = np.ones(smooth.shape, bool)
    i_smooth, c_smooth = M.spatial_autocorrelation(smooth, mask, (1, 1, 1))
    i_board, c_board = M.spatial_autocorrelation(board, mask, (1, 1, 1))
    assert i_smooth > 0 > i_board
    assert c_smooth < 1 < c_board
    assert all(math.isnan(v) for v in M.spatial_autocorrelation(np.ones((2, 2, 2)), np.ones((2, 2, 2), bool), (1, 1, 1)))


def test_ellipsoid_area_series():
    """IBSI's Legendre series as written (what the reference values use), term by term."""
    from scipy.special import eval_legendre

    assert M.ellipsoid_area(3, 3, 3) == pytest.approx(4 * math.pi * 9)
    for a, b, c in ((5.7, 4.65, 4.27), (5.0, 4.0, 1.0), (46.4, 40.8, 35.0)):
        al, be = math.sqrt(1 - b * b / a / a), math.sqrt(1 - c * c / a / a)
        series = 4 * math.pi * a * b * sum((al * be) ** v / (1 - 4 * v * v)
                                           * eval_legendre(v, (al * al + be * be) / (2 * al * be))
                                           for v in range(21))
        assert M.ellipsoid_area(a, b, c) == pytest.approx(series, rel=1e-12)
        assert M.ellipsoid_area(c, a, b) == pytest.approx(series, rel=1e-12)  # any order
    # it is not the exact area away from the sphere: a 5:3:3 prolate spheroid's is 165.8
    assert M.ellipsoid_area(5, 3, 3) == pytest.approx(140.84, abs=0.01)


def test_mvee_recovers_an_ellipsoid():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(400, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    axes = np.array([9.0, 5.0, 2.0])
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    pts = (v * axes) @ rot.T + [10, -4, 3]
    assert M.mvee_axes(pts) == pytest.approx(axes, rel=0.01)


def test_oriented_box_of_a_rotated_box():
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) * [7.0, 3.0, 1.5]
    rng = np.random.default_rng(4)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    pts = np.vstack([corners, rng.random((50, 3)) * [7.0, 3.0, 1.5]]) @ rot.T
    assert M.oriented_bounding_box(pts) == pytest.approx([7.0, 3.0, 1.5], rel=1e-6)


def test_intensity_features_use_the_intensity_mask_shape_the_morphological_one():
    img = np.zeros((5, 7, 7))
    morph = np.zeros(img.shape, bool)
    morph[1:4, 1:6, 1:6] = True
    img[morph] = 10.0
    img[1, 1:6, 1:6] = 1000.0  # re-segmented away below
    s = Settings(resegment_max=100.0, families=("morph",))
    f = medfeat.extract(Image(img, spacing=(2.0, 1.0, 1.0)), morph, s)
    assert f["morph_approx_vol"] == 75 * 2.0  # the morphological mask, re-segmentation or not
    assert f["morph_integ_int"] == pytest.approx(f["morph_vol"] * 10.0)  # intensity mask only
    # intensity-weighted centre: the two remaining slices (z = 2, 3) -> 1 mm below the ROI's centre (z = 2)
    assert f["morph_com"] == pytest.approx(1.0)


def test_2d_slice_features_disc_and_square():
    r = 20
    y, x = np.mgrid[-r - 2:r + 3, -r - 2:r + 3]
    disc = (x * x + y * y <= r * r)[None]
    f = morphology_2d_features(disc, (3.0, 0.5, 0.5))
    assert f["morph.2d.area"] == pytest.approx(math.pi * (r * 0.5) ** 2, rel=0.01)
    # the contour of a digitised disc zigzags: its length exceeds the circle's by ~7 %
    assert 1.0 < f["morph.2d.perimeter"] / (2 * math.pi * r * 0.5) < 1.1
    assert 0.8 < f["morph.2d.circularity"] < 1.0
    assert f["morph.2d.pca.elongation"] == pytest.approx(1.0, abs=1e-9)
    assert f["morph.2d.diam"] == pytest.approx((2 * r + 1) * 0.5, abs=0.5)
    sq = np.zeros((2, 8, 8), bool)
    sq[:, 2:6, 2:6] = True
    sq[1, 3:5, 3:5] = False  # a hole in the second slice
    f = morphology_2d_features(sq, (1.0, 1.0, 1.0))
    assert f["morph.2d.approx.area"] == (16 + 12) / 2
    # marching squares: the 4 x 4 square loses its 4 corner triangles (1/8 each); a 2 x 2 hole is
    # a 2 x 2 square less its 4 corner triangles (area 3.5)
    assert f["morph.2d.area"] == pytest.approx(((16 - 0.5) + (16 - 0.5 - 3.5)) / 2)


def test_family_registration_and_columns():
    image = Image(np.random.default_rng(0).normal(size=(3, 9, 9)), spacing=(2.0, 0.7, 0.7))
    s3 = Settings.preset("default-3d")
    s2 = Settings.preset("default-2d")
    assert "morph" in s3.families and "li" in s3.families
    row3 = medfeat.extract(image, None, s3, families=["morph"])
    row2 = medfeat.extract(image, None, s2, families=["morph", "morph2d"])
    assert list(row3) == [c.name for c in feature_columns(s3, families=["morph"])]
    assert list(row2) == [c.name for c in feature_columns(s2, families=["morph", "morph2d"])]
    assert len(row3) == 29 and len(row2) == 29 + 11
    assert "morph_2d_area" in row2 and "morph_2d_area" not in row3
    assert all(row2[k] == row3[k] for k in row3)  # IBSI morphology is 3D whatever the setting
    assert all(np.isfinite(v) for v in row2.values())
    # the whole image is the ROI: each slice is a 9 x 9 rectangle of 0.7 mm pixels
    assert row2["morph_2d_approx_area"] == pytest.approx(81 * 0.49)
    # pixel-centre variance along a side: 9 rows x sum((i - 4)^2, i = 0..8) / (81 - 1) = 540 / 80
    assert row2["morph_2d_pca_major"] == pytest.approx(4 * math.sqrt(0.49 * 540 / 80))


def test_autocorrelation_can_be_left_out():
    image = Image(np.random.default_rng(0).normal(size=(4, 9, 9)), spacing=(2.0, 0.7, 0.7))
    full = medfeat.extract(image, None, "default-3d", families=["morph"])
    s = Settings.preset("default-3d").replace(morph_autocorrelation=False)
    short = medfeat.extract(image, None, s, families=["morph"])
    assert list(short) == [c.name for c in feature_columns(s, families=["morph"])]
    assert set(full) - set(short) == {"morph_moran_i", "morph_geary_c"}
    assert all(short[k] == full[k] for k in short)


def test_digital_phantom_ombb_matches_the_ibsi_manual():
    """The manual's OMBB values for the digital phantom (0.869, 0.866 +/- 0.005; moderate consensus),
    which ../shared's reference table leaves out."""
    from conftest import digital_phantom

    image, mask = digital_phantom()
    f = morphology_features(mask, image, mask, (2.0, 2.0, 2.0))
    assert f["morph.v.dens.ombb"] == pytest.approx(0.869, abs=0.005)
    assert f["morph.a.dens.ombb"] == pytest.approx(0.866, abs=0.005)


def test_mesh_measures_equal_scikit_image_mesh():
    """Volume, area and hull from the per-cube tables equal those of scikit-image's marching-cubes
    mesh (summed face by face), on random masks with random anisotropic spacings."""
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(7)
    for trial in range(60):
        mask = rng.random(tuple(rng.integers(1, 8, size=3))) < rng.uniform(0.2, 0.9)
        mask.flat[rng.integers(mask.size)] = True
        sp = rng.uniform(0.3, 3.0, size=3)
        verts, faces = M.mesh(mask, sp)
        vol, area = M.mesh_volume_area(verts, faces)
        vol2, area2, candidates = M.mesh_measures(mask, sp)
        assert vol2 == pytest.approx(vol, rel=1e-12) and area2 == pytest.approx(area, rel=1e-12)
        # the candidates are mesh vertices (in the same grid, up to the padding's offset) ...
        offset = verts.min(axis=0) - candidates.min(axis=0)
        mesh_points = {tuple(np.round(p / sp * 2).astype(int)) for p in verts}
        assert {tuple(np.round((p + offset) / sp * 2).astype(int)) for p in candidates} <= mesh_points
        # ... and hold every hull vertex
        try:
            full = ConvexHull(verts)
        except Exception:  # a flat mesh: no 3D hull
            continue
        part = ConvexHull(candidates)
        assert part.volume == pytest.approx(full.volume, rel=1e-12)
        assert part.area == pytest.approx(full.area, rel=1e-12)
        assert len(part.vertices) == len(full.vertices)


def test_min_area_rectangle_hand_cases():
    # a 4 x 2 rectangle turned by 30 degrees, with inner points: area 8, sides 4 and 2
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    pts = np.array([[0, 0], [4, 0], [4, 2], [0, 2], [1, 1], [2, 1.5], [4, 1]], dtype=float)
    area, angle, w, h = M._min_area_rectangle(np.ascontiguousarray(pts @ np.array([[c, s], [-s, c]])))
    assert area == pytest.approx(8.0) and sorted((w, h)) == pytest.approx([2.0, 4.0])
    assert angle == pytest.approx(math.pi / 6)
    # a diamond |x| + |y| <= 1: the best rectangle is the square on its edges (area 2), not the
    # axis-aligned 2 x 2 box (area 4)
    diamond = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [0, 0]], dtype=float)
    assert M._min_area_rectangle(diamond)[0] == pytest.approx(2.0)
    # collinear points: zero area
    assert M._min_area_rectangle(np.array([[0, 0], [1, 1], [2, 2.0]]))[0] == pytest.approx(0.0, abs=1e-9)  # angles are rounded to 1e-12
