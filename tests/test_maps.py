"""Voxel feature maps (medfeat.maps, `medfeat maps`): every map value is the family's value of the
voxel's kernel, with the whole ROI's discretisation."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import medfeat
from medfeat.errors import InputError
from medfeat.settings import Settings
from medfeat.features.base import AGGREGATIONS
from medfeat.features.glcm import glcm_features
from medfeat.features.intensity_histogram import histogram_features
from medfeat.image import Image
from medfeat.maps import compute_maps, feature_maps

RTOL, ATOL = 1e-9, 1e-9
# columns that depend on the number of grey levels N_g: the maps use the whole ROI's, extract of a
# kernel alone its own (checked against the family functions given the whole ROI's N_g instead)
NG_DEPENDENT = ("cm_inv_diff_norm", "cm_inv_diff_mom_norm", "ih_max_grad", "ih_min_grad")


@pytest.fixture(scope="module")
def volume():
    """A 8 x 12 x 12 random integer image (values 3..14) and an ellipsoid blob mask."""
    rng = np.random.default_rng(7)
    img = rng.integers(3, 15, size=(8, 12, 12)).astype(np.int16)
    zz, yy, xx = np.mgrid[:8, :12, :12]
    mask = ((zz - 3.5) ** 2 / 10 + (yy - 5.5) ** 2 / 22 + (xx - 6.2) ** 2 / 20) < 1
    return img, mask


def _window(voxel, radii, shape):
    return tuple(slice(max(0, c - r), min(n, c + r + 1)) for c, r, n in zip(voxel, radii, shape))


def _close(a, b):
    return np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)


def _sample(mask, k, seed=0):
    """Up to ``k`` ROI voxels: border and interior ones alike."""
    idx = np.argwhere(mask)
    rng = np.random.default_rng(seed)
    return idx[rng.choice(len(idx), size=min(k, len(idx)), replace=False)]


@pytest.mark.parametrize("dimension", ["3d", "2d"])
@pytest.mark.parametrize("radius", [1, 2])
def test_map_value_is_extract_of_the_kernel(volume, dimension, radius):
    """discretisation 'none' with resegment_min: grey level = value - 3 + 1 both in the whole ROI and
    in a kernel alone, so extract of the kernel's sub-volume (the ROI restricted to the kernel) sees
    the maps' grey levels; every column equals it, and the N_g-dependent ones equal the family
    functions of the kernel given the whole ROI's N_g."""
    img, mask = volume
    s = Settings(dimension=dimension, discretisation="none", resegment_min=3.0)
    fams = ("stat", "ih", "glcm")
    maps = compute_maps(img, mask, s, families=fams, radius=radius)
    assert maps.columns == [c.name for c in medfeat.feature_columns(s, fams)]
    n_levels = int(img[mask].max()) - 3 + 1  # the whole ROI's
    radii = (radius if dimension == "3d" else 0, radius, radius)
    rows = {tuple(v): k for k, v in enumerate(zip(*maps.index))}
    checked = 0
    for voxel in _sample(mask, 40, seed=radius):
        win = _window(voxel, radii, img.shape)
        sub, sub_mask = img[win], mask[win]
        got = dict(zip(maps.columns, maps.values[rows[tuple(voxel)]]))
        want = medfeat.extract(Image(sub), sub_mask, s, families=("stat", "ih"))
        try:
            want.update(medfeat.extract(Image(sub), sub_mask, s, families=("glcm",)))
        except InputError:  # a single ROI voxel in the kernel: no GLCM, NaN in the maps
            want.update({c: np.nan for c in got if c.startswith("cm_")})
        levels = np.where(sub_mask, sub.astype(np.int32) - 3 + 1, 0)
        whole_ng = histogram_features(levels[sub_mask], n_levels)
        if np.count_nonzero(sub_mask) > 1:
            whole_ng.update(glcm_features(levels, n_levels, s.texture_aggregations, s.distance))
        for c, v in got.items():
            ref = whole_ng.get(c, np.nan) if c.startswith(NG_DEPENDENT) else want[c]
            assert _close(v, ref), (tuple(voxel), c, v, ref)
        checked += 1
    assert checked >= 30


@pytest.mark.parametrize("case", [
    dict(dimension="3d", radius=1, masked=True, discretisation="fbn", bin_number=6, distance=2),
    dict(dimension="3d", radius=2, masked=False, discretisation="fbs", bin_width=2.0, resegment_min=3.0,
         resegment_max=12.5),
    dict(dimension="2d", radius=1, masked=True, discretisation="fbn", bin_number=5, outlier_sigma=1.5),
    dict(dimension="2d", radius=2, masked=False, discretisation="fbs", bin_width=1.5),
])
def test_every_aggregation_matches_the_per_kernel_families(volume, case):
    """All six GLCM aggregation methods, a float image, re-segmentation, distance 2, masked and
    unmasked kernels: the incremental sweep equals the families computed on every kernel."""
    img, mask = volume
    case = dict(case)
    radius, masked = case.pop("radius"), case.pop("masked")
    image = img + np.random.default_rng(3).normal(0, 0.4, img.shape)
    s = Settings(aggregations=tuple(AGGREGATIONS), **case)
    fast = compute_maps(image, mask, s, families=("stat", "ih", "glcm"), radius=radius, masked_kernel=masked)
    slow = compute_maps(image, mask, s, families=("stat", "ih", "glcm"), radius=radius, masked_kernel=masked,
                        incremental=False)
    assert fast.columns == slow.columns and len(fast.columns) == 18 + 23 + 6 * 25
    assert all(np.array_equal(a, b) for a, b in zip(fast.index, slow.index))
    ok = _close(fast.values, slow.values)
    assert ok.all(), [c for c, o in zip(fast.columns, ok.all(axis=0)) if not o]


def test_nan_outside_the_roi_and_the_image_grid(volume):
    img, mask = volume
    maps = feature_maps(img, mask, "default-3d", families=("stat", "glcm"), radius=1)
    assert set(maps) == {c.name for c in medfeat.feature_columns("default-3d", ("stat", "glcm"))}
    for name, arr in maps.items():
        assert arr.shape == img.shape and arr.dtype == np.float64
        assert np.isnan(arr[~mask]).all(), name
    assert np.isfinite(maps["stat_mean"][mask]).all()
    assert np.isfinite(maps["cm_contrast_3d_avg"][mask]).all()
    # a voxel's mean is its kernel's mean
    z, y, x = np.argwhere(mask)[5]
    win = _window((z, y, x), (1, 1, 1), img.shape)
    assert maps["stat_mean"][z, y, x] == pytest.approx(img[win][mask[win]].mean(), rel=1e-12)
    # float32 maps, as the CLI writes them
    f32 = feature_maps(img, mask, "default-3d", families="stat", radius=1, dtype=np.float32)
    assert f32["stat_mean"].dtype == np.float32


def test_masked_and_unmasked_kernels(volume):
    img, mask = volume
    s = Settings(discretisation="none", resegment_min=3.0, aggregations=("3D, averaged",))
    fams = ("stat", "glcm")
    masked = feature_maps(img, mask, s, fams, radius=1, masked_kernel=True)
    unmasked = feature_maps(img, mask, s, fams, radius=1, masked_kernel=False)
    # kernels inside the ROI see the same voxels either way; kernels at its border do not
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(mask, np.ones((3, 3, 3), bool), border_value=0)
    border = mask & ~inner
    assert inner.any() and border.any()
    for c in masked:
        assert _close(masked[c][inner], unmasked[c][inner]).all(), c
    assert not _close(masked["stat_mean"][border], unmasked["stat_mean"][border]).all()
    # unmasked: the kernel's whole sub-volume (every voxel in the image) is the ROI
    for voxel in _sample(border, 10):
        win = _window(voxel, (1, 1, 1), img.shape)
        want = medfeat.extract(Image(img[win]), np.ones(img[win].shape, bool), s, families=fams)
        for c, v in want.items():
            if not c.startswith(NG_DEPENDENT):
                assert _close(unmasked[c][tuple(voxel)], v), (c, unmasked[c][tuple(voxel)], v)


def test_fallback_family_equals_extract_of_the_kernel(volume):
    """ngtdm (no N_g in its features) by the per-kernel fallback."""
    img, mask = volume
    s = Settings(discretisation="none", resegment_min=3.0, aggregations=("3D, averaged",))
    maps = compute_maps(img, mask, s, families=("ngtdm",), radius=1)
    rows = {tuple(v): k for k, v in enumerate(zip(*maps.index))}
    for voxel in _sample(mask, 8):
        win = _window(voxel, (1, 1, 1), img.shape)
        want = medfeat.extract(Image(img[win]), mask[win], s, families=("ngtdm",))
        got = dict(zip(maps.columns, maps.values[rows[tuple(voxel)]]))
        assert got.keys() == want.keys()
        for c in want:
            assert _close(got[c], want[c]), c


def test_bad_input(volume):
    img, mask = volume
    with pytest.raises(InputError, match="shape"):
        feature_maps(img, mask, None, families=("morph",))
    with pytest.raises(InputError, match="radius"):
        feature_maps(img, mask, None, radius=0)
    with pytest.raises(InputError, match="unknown"):
        feature_maps(img, mask, None, families="stat,nope")
    with pytest.raises(InputError, match="interpolation"):
        feature_maps(img, mask, Settings(interpolation_spacing=(2.0, 2.0, 2.0)))


def _run(*args):
    return subprocess.run([sys.executable, "-m", "medfeat", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_nifti_maps_on_the_image_grid(volume, tmp_path):
    import nibabel as nib

    img, mask = volume
    affine = np.array([[0, 0, -0.8, 40.0], [0, 0.7, 0, -12.0], [2.5, 0, 0, 3.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(img.transpose(2, 1, 0)), affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(mask.astype(np.uint8).transpose(2, 1, 0)), affine),
             tmp_path / "roi.nii.gz")
    out = tmp_path / "maps"
    r = _run("maps", tmp_path / "ct.nii.gz", "--mask", tmp_path / "roi.nii.gz", "--families", "stat,glcm",
             "--radius", "1", "-o", out)
    assert r.returncode == 0, r.stderr
    columns = [c.name for c in medfeat.feature_columns("default-3d", ("stat", "glcm"))]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c}.nii.gz" for c in columns)
    assert all(f"{c}.nii.gz" in r.stdout for c in columns)
    want = feature_maps(medfeat.read_image(tmp_path / "ct.nii.gz"), tmp_path / "roi.nii.gz", None,
                        ("stat", "glcm"), radius=1)
    for c in ("stat_mean", "cm_joint_entr_3d_avg"):
        nii = nib.load(out / f"{c}.nii.gz")
        assert np.allclose(nii.affine, affine) and nii.shape == img.shape[::-1]
        assert nii.get_data_dtype() == np.float32
        arr = np.asarray(nii.dataobj).transpose(2, 1, 0)
        assert np.isnan(arr[~mask]).all()
        assert np.allclose(arr[mask], want[c][mask].astype(np.float32))
        # read back through medfeat: the same grid as the input image
        back = medfeat.read_image(out / f"{c}.nii.gz")
        src = medfeat.read_image(tmp_path / "ct.nii.gz")
        assert back.shape == src.shape and np.allclose(back.spacing, src.spacing)


def test_cli_bad_input_is_one_line_exit_2(volume, tmp_path):
    import nibabel as nib

    img, mask = volume
    nib.save(nib.Nifti1Image(np.ascontiguousarray(img.transpose(2, 1, 0)), np.eye(4)), tmp_path / "ct.nii.gz")
    for args in (["--mask", tmp_path / "missing.nii.gz"],
                 ["--mask", tmp_path / "ct.nii.gz", "--families", "morph"],
                 ["--mask", tmp_path / "ct.nii.gz", "--radius", "0"]):
        r = _run("maps", tmp_path / "ct.nii.gz", *args, "-o", tmp_path / "out")
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("medfeat: error: ") and r.stderr.count("\n") == 1, r.stderr
