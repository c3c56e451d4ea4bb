"""medfeat.interpolation: IBSI grid alignment, interpolation methods, ROI partial volume; and the
interpolation settings of medfeat.extract. Every expected value here is worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

import medfeat
from medfeat import Image, InputError, Settings
from medfeat.interpolation import interpolate_roi, interpolation_grid, resample, resample_mask

from conftest import require_shared


def test_2x2_image_upsampled_linearly():
    # 2 voxels of 1 mm -> 4 of 0.5 mm, centred: new centres at -0.25, 0.25, 0.75, 1.25 (index units);
    # -0.25 and 1.25 lie beyond the border voxels' centres and take their values (nearest extrapolation)
    out, grid = resample(np.array([[0.0, 1.0], [2.0, 3.0]]), (1.0, 1.0), (0.5, 0.5), "bilinear")
    assert grid.shape == (4, 4) and grid.start == (-0.25, -0.25) and grid.step == (0.5, 0.5)
    row = np.array([0.0, 0.25, 0.75, 1.0])  # along x: 0 -> 1
    col = np.array([0.0, 0.5, 1.5, 2.0])  # along y: 0 -> 2
    np.testing.assert_allclose(out, col[:, None] + row[None, :], rtol=0, atol=1e-12)


def test_grid_is_centred_with_a_non_integer_extent():
    # 5 voxels of 1 mm = 5 mm -> 1.5 mm voxels: ceil(3.33) = 4 of them, 6 mm, centred on the old centre
    g = interpolation_grid((5,), (1.0,), (1.5,))
    assert g.shape == (4,) and g.start == (-0.25,) and g.step == (1.5,)
    np.testing.assert_allclose(g.coordinates(0), [-0.25, 1.25, 2.75, 4.25])
    assert g.start[0] + (g.shape[0] - 1) * g.step[0] / 2 == pytest.approx((5 - 1) / 2)
    # the CT phantom's in-plane grid: 204 voxels of 0.977 mm -> ceil(99.65) = 100 of 2 mm
    g = interpolation_grid((60, 201, 204), (3.0, 0.977, 0.977), (2.0, 2.0, 2.0))
    assert g.shape == (90, 99, 100)
    for axis, n in enumerate((60, 201, 204)):
        centre_new = g.start[axis] + (g.shape[axis] - 1) * g.step[axis] / 2
        assert centre_new == pytest.approx((n - 1) / 2, abs=1e-9)
    # physical origin of the new first voxel: x_b0 = x_a0 + (s_a (n_a - 1) - s_b (n_b - 1)) / 2
    assert g.origin((10.0, 0.0, 0.0), (3.0, 0.977, 0.977))[0] == pytest.approx(10.0 + (3.0 * 59 - 2.0 * 89) / 2)


def test_grid_count_is_the_ceiling_not_a_rounding_artefact():
    assert interpolation_grid((3,), (1.0,), (2.0,)).shape == (2,)  # ceil(1.5)
    assert interpolation_grid((4,), (1.0,), (2.0,)).shape == (2,)  # exactly 2: no extra voxel
    assert interpolation_grid((10,), (0.1,), (0.2,)).shape == (5,)  # 10 * 0.1 / 0.2 = 5.000000000000001
    g = interpolation_grid((7,), (2.0,), (2.0,))  # unchanged spacing: the same grid
    assert g.shape == (7,) and g.start == (0.0,) and g.step == (1.0,) and g.is_identity(0)


def test_nearest_neighbour_extrapolation_at_the_borders():
    x = np.array([10.0, 20.0, 30.0])
    # 3 -> 6 voxels: centres at -0.25, 0.25, 0.75, 1.25, 1.75, 2.25
    lin, _ = resample(x, (1.0,), (0.5,), "linear")
    np.testing.assert_allclose(lin, [10.0, 12.5, 17.5, 22.5, 27.5, 30.0])
    near, _ = resample(x, (1.0,), (0.5,), "nearest")
    np.testing.assert_array_equal(near, [10.0, 10.0, 20.0, 20.0, 30.0, 30.0])
    # a coarser grid reaching further out: 3 voxels of 1 mm -> 1 voxel of 5 mm, at the centre
    one, _ = resample(x, (1.0,), (5.0,), "linear")
    np.testing.assert_allclose(one, [20.0])


def test_cubic_spline_reproduces_a_ramp_and_passes_through_the_samples():
    x = np.arange(100, dtype=float) * 3.0 - 7.0
    out, grid = resample(x, (1.0,), (0.5,), "tricubic")
    c = grid.coordinates(0)
    inner = (c > 30) & (c < 69)  # away from the boundary, whose effect decays as 0.268^distance
    np.testing.assert_allclose(out[inner], c[inner] * 3.0 - 7.0, atol=1e-9)
    # 5 voxels of 1 mm -> 15 of 1/3 mm at -1/3, 0, 1/3, 2/3, 1, ...: every third new voxel sits on an
    # old one, where the interpolating spline gives the sample back
    y = np.random.default_rng(1).normal(size=5)
    out, grid = resample(y, (1.0,), (1 / 3,), "cubic")
    assert grid.shape == (15,)
    np.testing.assert_allclose(grid.coordinates(0)[1::3], np.arange(5), atol=1e-12)
    np.testing.assert_allclose(out[1::3], y, atol=1e-9)


def test_mask_partial_volume_threshold():
    m = np.array([0, 1, 1, 0], dtype=bool)
    # 4 -> 2 voxels of 2 mm at index 0.5 and 2.5: each half in the ROI (partial volume 0.5)
    keep, _ = resample_mask(m, (1.0,), (2.0,), "linear", threshold=0.5)
    np.testing.assert_array_equal(keep, [True, True])  # 0.5 >= 0.5: kept
    drop, _ = resample_mask(m, (1.0,), (2.0,), "linear", threshold=0.51)
    np.testing.assert_array_equal(drop, [False, False])
    # 4 slices of 3 mm -> ceil(6) = 6 of 2 mm at index -1/6, 1/2, 7/6, 11/6, 5/2, 19/6: the second lies
    # half-way between old slices 0 and 1; a ROI of old slice 1 alone gives exactly 0.5 there, which the
    # IBSI threshold (>= 0.5) keeps
    vol = np.zeros((4, 2, 2), dtype=bool)
    vol[1] = True
    new, grid = resample_mask(vol, (3.0, 1.0, 1.0), (2.0, 1.0, 1.0))
    np.testing.assert_allclose(grid.coordinates(0), [-1 / 6, 1 / 2, 7 / 6, 11 / 6, 5 / 2, 19 / 6])
    values, _ = resample(vol.astype(float), (3.0, 1.0, 1.0), (2.0, 1.0, 1.0))
    np.testing.assert_allclose(values[:, 0, 0], [0.0, 0.5, 5 / 6, 1 / 6, 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(new[:, 0, 0], [False, True, True, False, False, False])
    with pytest.raises(ValueError, match="threshold"):
        resample_mask(m, (1.0,), (2.0,), threshold=0.0)
    with pytest.raises(ValueError, match="ROI interpolation"):
        resample_mask(m, (1.0,), (2.0,), "cubic")


def test_in_plane_interpolation_leaves_the_slices_alone():
    rng = np.random.default_rng(2)
    vol = rng.normal(size=(4, 6, 5))
    out, grid = resample(vol, (3.0, 1.0, 1.0), (3.0, 2.0, 2.0), "cubic")
    assert grid.shape == (4, 3, 3) and grid.spacing == (3.0, 2.0, 2.0) and grid.is_identity(0)
    for k in range(4):  # each slice on its own: the same as interpolating that 2D slice
        np.testing.assert_allclose(out[k], resample(vol[k], (1.0, 1.0), (2.0, 2.0), "cubic")[0], atol=1e-12)


@pytest.mark.parametrize("method,atol", [("nearest", 0), ("linear", 1e-12), ("cubic", 1e-8)])
def test_roi_box_interpolation_equals_the_whole_image_one(method, atol):
    rng = np.random.default_rng(3)
    image = rng.normal(size=(30, 64, 70)) * 100
    mask = np.zeros(image.shape, dtype=bool)
    mask[8:19, 20:41, 30:52] = True
    spacing, new = (3.0, 0.977, 0.977), (2.0, 2.0, 2.0)
    values, roi, grid, offset = interpolate_roi(image, mask, spacing, new, method, "linear", 0.5)
    whole, _ = resample(image, spacing, new, method)
    whole_mask, _ = resample_mask(mask, spacing, new)
    box = tuple(slice(o, o + n) for o, n in zip(offset, values.shape))
    np.testing.assert_allclose(values, whole[box], rtol=0, atol=atol)
    np.testing.assert_array_equal(roi, whole_mask[box])
    assert roi.sum() == whole_mask.sum()  # the box holds the whole interpolated ROI


def test_settings_validate_interpolation():
    s = Settings(interpolation_spacing=(2, 2, 2))
    assert s.interpolation == "linear" and s.interpolation_spacing == (2.0, 2.0, 2.0)
    for bad, match in [(dict(interpolation="quintic", interpolation_spacing=(1, 1, 1)), "interpolation must be"),
                       (dict(interpolation="linear"), "needs interpolation_spacing"),
                       (dict(interpolation_spacing=(1, 1, 1, 1)), "interpolation_spacing must be"),
                       (dict(interpolation_spacing=(0, 1)), "interpolation_spacing must be"),
                       (dict(interpolation_spacing=(1, 1), roi_partial_volume=0), "roi_partial_volume"),
                       (dict(interpolation_spacing=(1, 1), roi_interpolation="cubic"), "roi_interpolation")]:
        with pytest.raises(InputError, match=match):
            Settings(**bad)


def test_extract_reports_the_new_spacing_and_keeps_a_constant_image():
    image = Image(np.full((6, 20, 20), 42.0), spacing=(3.0, 1.0, 1.0))
    mask = np.zeros(image.shape, dtype=bool)
    mask[1:5, 4:16, 4:16] = True
    s = Settings(families=("stat",), interpolation="cubic", interpolation_spacing=(2.0, 2.0, 2.0))
    assert medfeat.extract(image, mask, s)["stat_mean"] == pytest.approx(42.0, abs=1e-9)
    from medfeat.pipeline import interpolate_around_roi
    from medfeat.roi import ROI

    values, roi_mask, spacing = interpolate_around_roi(image, mask, s, "x")
    assert spacing == (2.0, 2.0, 2.0)
    # z: 6 slices of 3 mm -> 9 of 2 mm at -1/6 + 2j/3; the ROI's slices 1..4 give the new slices
    # partial volumes 0.5, 1, 1, 1, 1, 1, 0.5 (j = 1..7). y, x: 20 voxels of 1 mm -> 10 of 2 mm at
    # 0.5 + 2j; the ROI's 4..15 hold 4.5 .. 14.5 whole: 6 voxels of 1. Kept: 7 * 6 * 6 = 252
    assert ROI(values, roi_mask, s, spacing, "x").mask.sum() == 252
    s2 = s.replace(interpolation_spacing=(2.0, 2.0))  # in-plane only
    assert interpolate_around_roi(image, mask, s2, "x")[2] == (3.0, 2.0, 2.0)


def test_extract_same_spacing_is_no_interpolation():
    rng = np.random.default_rng(4)
    image = Image(rng.integers(-100, 100, size=(5, 16, 16)).astype(float), spacing=(2.0, 1.0, 1.0))
    mask = np.zeros(image.shape, dtype=bool)
    mask[1:4, 3:12, 2:13] = True
    s = Settings(families=("stat", "glcm"))
    same = medfeat.extract(image, mask, s.replace(interpolation_spacing=(2.0, 1.0, 1.0)))
    plain = medfeat.extract(image, mask, s)
    assert list(same) == list(plain)
    np.testing.assert_array_equal(list(same.values()), list(plain.values()))


def test_a_roi_that_vanishes_is_an_input_error():
    image = Image(np.zeros((1, 20, 20)), spacing=(1.0, 0.5, 0.5), source="thin.nii.gz")
    mask = np.zeros(image.shape, dtype=bool)
    mask[0, 10, 10] = True  # one 0.5 mm voxel: at most 1/4... of a 2 mm voxel
    with pytest.raises(InputError, match="vanishes"):
        medfeat.extract(image, mask, Settings(families=("stat",), interpolation_spacing=(2.0, 2.0)))


def test_sts_ct_interpolation_around_the_roi_keeps_its_volume():
    """The 117k-voxel ROI of STS_001 CT to 2 mm isotropic: trilinear and tricubic, around the ROI
    only (its speed is measured by bench/extract_speed.py, not here)."""
    base = require_shared("data", "sts", "nifti", "STS_001")
    image = medfeat.read_image(base / "CT_image.nii.gz")
    mask = medfeat.read_image(base / "CT_mask.nii.gz").array > 0
    assert mask.sum() == 117145
    for method in ("linear", "cubic"):
        values, roi, grid, _ = interpolate_roi(image.array, mask, image.spacing, (2.0, 2.0, 2.0), method)
        # the ROI's volume is kept to within a few percent (117145 * 3.27 * 0.977^2 mm^3)
        assert roi.sum() * 8.0 == pytest.approx(117145 * math.prod(image.spacing), rel=0.05)
        assert values.shape == roi.shape and np.all(np.isfinite(values[roi]))


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_extract_with_interpolation_equals_extract_on_the_whole_resampled_image(method):
    """Interpolating around the ROI only (and, for local intensity, as far as its spheres reach)
    gives the features of the whole image interpolated first."""
    from scipy import ndimage

    from medfeat.families import FAMILIES

    rng = np.random.default_rng(5)
    image = ndimage.gaussian_filter(rng.normal(size=(14, 48, 44)), 1.5) * 400
    spacing, new = (2.5, 0.8, 0.8), (2.0, 2.0, 2.0)
    z, y, x = np.indices(image.shape)
    mask = ((z - 7) * 2.5) ** 2 + ((y - 20) * 0.8) ** 2 + ((x - 25) * 0.8) ** 2 <= 9.0 ** 2
    families = tuple(f for f in FAMILIES if f != "gift")
    s = Settings(families=families, interpolation=method, interpolation_spacing=new, round_intensities=True)
    got = medfeat.extract(Image(image, spacing=spacing), mask, s)
    whole, _ = resample(image, spacing, new, method)
    whole_mask, _ = resample_mask(mask, spacing, new)
    plain = s.replace(interpolation=None, interpolation_spacing=None)
    want = medfeat.extract(Image(whole, spacing=new), whole_mask, plain)
    assert list(got) == list(want)
    np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("new_spacing", [[0.01, 0.01, 0.01], [1e-9, 1.0, 1.0]])
def test_a_tiny_new_spacing_is_refused_before_any_allocation(new_spacing):
    """Interpolating a 120 x 40 x 40 mm ROI box to 0.01 mm asked numpy for 50 GiB (MemoryError, a
    traceback); the box of the new grid is now checked first: one line naming the image."""
    import tracemalloc

    from medfeat.interpolation import MAX_BOX_VOXELS

    img = medfeat.Image(np.random.default_rng(0).normal(0, 1, (10, 40, 40)), spacing=(3.0, 1.0, 1.0))
    mask = np.zeros((10, 40, 40), np.uint8)
    mask[3:7, 10:30, 10:30] = 1
    s = Settings.resolve("default-3d").replace(interpolation="linear", interpolation_spacing=new_spacing)
    tracemalloc.start()
    with pytest.raises(InputError, match=rf"interpolating to .* grid \(\d+ voxels\) around the region of interest, "
                                         rf"above the {MAX_BOX_VOXELS}") as exc:
        medfeat.extract(img, mask, s, families=["stat"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "\n" not in str(exc.value) and peak < 64 << 20
