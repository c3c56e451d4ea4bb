"""medfeat.extract (medfeat.pipeline) and medfeat.settings: settings, presets, ROI handling and every
kind of bad input it must refuse."""
from __future__ import annotations

import numpy as np
import pytest

import medfeat
from medfeat import Image, InputError, Settings
from medfeat.columns import feature_columns
from medfeat.settings import PRESETS


def _img(arr, spacing=(1.0, 1.0, 1.0), source="img.nii.gz"):
    return Image(np.asarray(arr, dtype=float), spacing=spacing, source=source)


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return _img(rng.integers(0, 100, size=(3, 12, 12)))


def test_presets_load_and_b_to_e_interpolate():
    for name in PRESETS:
        assert Settings.preset(name).name == name
    a = Settings.preset("ibsi-a")
    assert (a.dimension, a.discretisation, a.bin_width, a.resegment_min, a.resegment_max) == ("2d", "fbs", 25, -500, 400)
    assert a.interpolation_spacing is None
    b, c, d, e = (Settings.preset(f"ibsi-{k}") for k in "bcde")
    assert (b.dimension, b.interpolation, b.interpolation_spacing) == ("2d", "bilinear", (2.0, 2.0))
    for s in (c, d, e):
        assert (s.dimension, s.interpolation_spacing, s.roi_partial_volume) == ("3d", (2.0, 2.0, 2.0), 0.5)
    assert (c.interpolation, d.interpolation, e.interpolation) == ("trilinear", "trilinear", "tricubic")
    with pytest.raises(InputError, match="unknown settings preset"):
        Settings.preset("nope")
    assert set(PRESETS) >= {"ibsi-a", "ibsi-e"}


def test_settings_from_toml_starts_from_a_preset(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('preset = "default-2d"\nbin_number = 16\nfamilies = ["stat", "glcm"]\n')
    s = Settings.from_toml(p)
    assert (s.dimension, s.bin_number, s.families) == ("2d", 16, ("stat", "glcm"))
    bad = tmp_path / "bad.toml"
    bad.write_text("bin_numbr = 3\n")
    with pytest.raises(InputError, match="unknown settings.*bin_numbr") as e:
        Settings.from_toml(bad)
    assert str(bad) in str(e.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("bin_number = = 3\n")
    with pytest.raises(InputError, match="invalid TOML"):
        Settings.resolve(broken)


def test_columns_are_stable_and_complete(image):
    s = Settings.preset("default-2d")
    cols = [c.name for c in feature_columns(s)]
    row = medfeat.extract(image, None, s)
    assert list(row) == cols
    # stat, ih, ivh; GLCM, GLRLM in 4 methods; NGTDM, NGLDM, GLSZM, GLDZM in "2D" and "2.5D"
    undirected = {"ngtdm": 5, "ngldm": 17, "glszm": 16, "gldzm": 16}
    assert len(cols) == 18 + 23 + 6 + (25 + 16) * 4 + sum(undirected[f] for f in s.families if f in undirected) * 2
    assert "morph" not in s.families and "li" not in s.families  # 3D shape: asked for, not default for pictures
    with_shape = [c.name for c in feature_columns(s.replace(families=s.families + ("morph", "morph2d", "li")))]
    # morph: IBSI's 3D features; morph2d: the 2D per-slice shape; li: 2 peaks
    assert len(with_shape) == len(cols) + 29 + 11 + 2
    assert "cm_joint_max_2d_avg" in cols and "rlm_sre_25d_mrg" in cols
    assert "ngt_coarseness_2d" in cols and "ngl_dc_entr_25d" in cols
    assert all(np.isfinite(v) for k, v in row.items() if not k.startswith("cm_corr"))


@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_all_families_at_once_equal_each_family_alone(dtype):
    # the ROI drops its cached values and levels once no later family needs them, and integer
    # images are not converted to float64 as a whole: neither may change a value
    rng = np.random.default_rng(3)
    img = Image(rng.integers(-200, 300, size=(5, 14, 13)).astype(dtype), spacing=(2.0, 0.8, 0.8), source="ct")
    mask = np.zeros(img.shape, dtype=bool)
    mask[1:4, 2:12, 3:11] = True
    s = Settings.preset("default-3d").replace(families=("li", "stat", "glcm", "morph", "ih", "gldzm", "ivh", "ngtdm"))
    together = medfeat.extract(img, mask, s)
    alone = {}
    for fam in s.families:
        alone.update(medfeat.extract(img, mask, s, families=[fam]))
    assert list(together) == [c.name for c in feature_columns(s)]
    assert together.keys() == alone.keys()
    for k in together:
        assert together[k] == pytest.approx(alone[k], rel=1e-12, nan_ok=True), k
    as_float = medfeat.extract(Image(img.array.astype(np.float64), spacing=img.spacing), mask, s)
    for k in together:
        assert together[k] == pytest.approx(as_float[k], rel=1e-9, nan_ok=True), k


def test_roi_releases_what_no_later_family_needs():
    from medfeat.roi import ROI

    rng = np.random.default_rng(4)
    box = rng.integers(0, 50, size=(3, 8, 9)).astype(np.int16)
    roi = ROI(box, np.ones(box.shape, dtype=bool), Settings.preset("default-3d"), (1.0, 1.0, 1.0), "x")
    levels = roi.levels.copy()
    roi.release(["values"])  # levels computed and not needed: dropped; values kept
    assert "levels" not in roi.__dict__ and "values" in roi.__dict__ and "level_values" not in roi.__dict__
    roi.release(["n_levels"])  # n_levels not computed yet: its source stays reachable
    assert "values" in roi.__dict__
    assert roi.n_levels == 32
    roi.release([])
    assert not {"values", "level_values", "levels"} & roi.__dict__.keys()
    np.testing.assert_array_equal(roi.levels, levels)  # recomputed on demand, the same


def test_whole_image_is_the_default_roi_and_mask_label_selects(image):
    full = medfeat.extract(image, None, "default-3d", families=["stat"])
    assert full["stat_mean"] == pytest.approx(image.array.mean())
    labels = np.zeros(image.shape, dtype=np.int16)
    labels[:, :6] = 1
    labels[:, 6:] = 2
    two = medfeat.extract(image, Image(labels), "default-3d", families=["stat"], label=2)
    assert two["stat_mean"] == pytest.approx(image.array[:, 6:].mean())
    anyl = medfeat.extract(image, Image(labels), "default-3d", families=["stat"])
    assert anyl["stat_mean"] == pytest.approx(image.array.mean())


def test_rgb_is_converted_to_bt601_luma():
    rgb = np.zeros((1, 4, 4, 3))
    rgb[..., 0] = 100  # pure red -> luma 29.9
    f = medfeat.extract(Image(rgb), None, "default-2d", families=["stat"])
    assert f["stat_mean"] == pytest.approx(29.9)


def test_resegmentation_changes_the_roi():
    arr = np.array([[[-1000.0, -200.0, 0.0, 300.0, 3000.0]]])
    f = medfeat.extract(_img(arr), None, Settings.preset("ibsi-a"), families=["stat"])
    assert f["stat_min"] == -200 and f["stat_max"] == 300 and f["stat_mean"] == pytest.approx(100 / 3)


def test_nan_voxels_are_refused_with_the_file_name(image):
    image.array[1, 2, 3] = np.nan
    image.array[0, 0, 0] = np.inf
    with pytest.raises(InputError, match=r"img\.nii\.gz: image has 2 NaN/inf voxel"):
        medfeat.extract(image)


def test_mask_shape_and_spacing_mismatch(image):
    with pytest.raises(InputError, match=r"mask\.nii\.gz: mask shape \(3, 12, 11\) does not match image shape \(3, 12, 12\) of img\.nii\.gz"):
        medfeat.extract(image, Image(np.ones((3, 12, 11)), source="mask.nii.gz"))
    with pytest.raises(InputError, match=r"mask\.nii\.gz: mask spacing .* does not match image spacing"):
        medfeat.extract(image, Image(np.ones((3, 12, 12)), spacing=(2, 1, 1), source="mask.nii.gz"))


def test_empty_mask_and_missing_label(image):
    with pytest.raises(InputError, match=r"mask\.nii\.gz: mask is empty \(no non-zero voxel\)"):
        medfeat.extract(image, Image(np.zeros((3, 12, 12)), source="mask.nii.gz"))
    with pytest.raises(InputError, match="no voxel with label 7"):
        medfeat.extract(image, Image(np.ones((3, 12, 12)), source="mask.nii.gz"), label=7)


def test_mask_too_small_for_a_family(image):
    m = np.zeros((3, 12, 12), dtype=np.uint8)
    m[1, 4, 4] = 1
    mask = Image(m, source="one.nii.gz")
    # one voxel is enough for the statistics...
    assert medfeat.extract(image, mask, families=["stat"])["stat_mean"] == image.array[1, 4, 4]
    # ...but not for a co-occurrence matrix
    with pytest.raises(InputError, match=r"one\.nii\.gz: mask leaves 1 voxel\(s\) but glcm needs at least 2"):
        medfeat.extract(image, mask, families=["stat", "glcm"])
    # re-segmentation can empty a mask too
    arr = np.full((1, 3, 3), 1000.0)
    with pytest.raises(InputError, match="after re-segmentation"):
        medfeat.extract(_img(arr), None, "ibsi-a", families=["stat"])


def test_unknown_family_and_bad_setting_values():
    with pytest.raises(InputError, match="unknown feature families"):
        feature_columns("default-3d", ["glcm", "nope"])
    with pytest.raises(InputError, match="dimension"):
        Settings(dimension="4d")
    with pytest.raises(InputError, match="unknown aggregation"):
        Settings(aggregations=("3D, mean",))
    with pytest.raises(InputError, match="not a settings preset"):
        Settings.resolve("defualt-3d")


def test_discretisation_none_needs_integers():
    with pytest.raises(InputError, match="integer intensities"):
        medfeat.extract(_img([[[0.5, 1.25, 2.0]]]), None, "ibsi-phantom", families=["ih"])


def test_extract_reads_paths(tmp_path):
    from medfeat.io.netpbm import write_netpbm

    arr = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
    write_netpbm(tmp_path / "a.pgm", arr)
    f = medfeat.extract(tmp_path / "a.pgm", None, "default-2d", families=["stat"])
    assert f["stat_mean"] == pytest.approx(arr.mean())
    with pytest.raises(InputError, match="missing.pgm"):
        medfeat.extract(tmp_path / "missing.pgm")
