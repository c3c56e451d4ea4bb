"""DICOM RTSTRUCT masks (medfeat.io.rtstruct): rasterisation rules, agreement with the NIfTI masks of
the same data, features through extract() and the CLI, and the errors a user must get."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

import medfeat
from medfeat import InputError
from medfeat.io.rtstruct import contours_to_mask, find_rtstruct, read_rtstruct, rtstruct_mask

from conftest import require_shared


def _square(x0, x1, y0, y1):
    return np.array([x0, x1, x1, x0], float), np.array([y0, y0, y1, y1], float)


def test_polygon_fill_at_voxel_centres():
    m = contours_to_mask([_square(0.5, 3.5, 0.5, 2.5)], (4, 5))
    expected = np.zeros((4, 5), bool)
    expected[1:3, 1:4] = True
    np.testing.assert_array_equal(m, expected)
    # a triangle: the centre (2, 2) is inside, (3, 1) is not
    tri = contours_to_mask([(np.array([0.0, 4.2, 0.0]), np.array([0.0, 0.0, 4.2]))], (5, 5))
    assert tri[2, 2] and tri[1, 1] and not tri[3, 3] and not tri[4, 1]


def test_nested_contours_make_a_hole_even_odd():
    outer, inner = _square(-0.5, 6.5, -0.5, 6.5), _square(1.5, 4.5, 1.5, 4.5)
    m = contours_to_mask([outer, inner], (7, 7))
    expected = np.ones((7, 7), bool)
    expected[2:5, 2:5] = False
    np.testing.assert_array_equal(m, expected)
    # an island inside the hole is in again
    island = _square(2.5, 3.5, 2.5, 3.5)
    assert contours_to_mask([outer, inner, island], (7, 7))[3, 3]


def test_voxel_centres_on_a_shared_edge_belong_to_exactly_one_polygon():
    left, right = _square(0, 2, -0.5, 2.5), _square(2, 4, -0.5, 2.5)
    a, b = contours_to_mask([left], (3, 6)), contours_to_mask([right], (3, 6))
    assert not (a & b).any()
    np.testing.assert_array_equal(np.flatnonzero(a[0]), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(b[0]), [2, 3])


def _ct_phantom():
    base = require_shared("data", "ibsi", "ct_phantom")
    return base / "dicom" / "image", base / "dicom" / "mask" / "DCM_RS_00060.dcm", base / "nifti"


def _sts(modality):
    base = require_shared("data", "sts")
    d = base / "dicom" / "STS_002" / modality
    return d / "image", d / "mask" / "RS.dcm", base / "nifti" / "STS_002"


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("case", ["ct_phantom", "CT", "MR_T1", "PET"])
def test_rtstruct_mask_equals_the_nifti_mask(case):
    if case == "ct_phantom":
        series, rs, nifti = _ct_phantom()
        ref = medfeat.read_image(nifti / "mask" / "mask.nii.gz")
        nifti_image = medfeat.read_image(nifti / "image" / "phantom.nii.gz")
    else:
        series, rs, nifti = _sts(case)
        ref = medfeat.read_image(nifti / f"{case}_mask.nii.gz")
        nifti_image = medfeat.read_image(nifti / f"{case}_image.nii.gz")
    image = medfeat.read_image(series)
    mask = rtstruct_mask(rs, image)
    assert mask.shape == image.shape == ref.shape
    assert _dice(mask, ref.array > 0) == 1.0  # exact: every voxel agrees
    # the same contours placed through the NIfTI file's affine instead of the DICOM geometry
    np.testing.assert_array_equal(rtstruct_mask(rs, nifti_image), mask)


def _max_rel_diff(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    x, y = np.array(list(a.values()), float), np.array(list(b.values()), float)
    np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
    ok = ~np.isnan(x)
    return float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.maximum(np.abs(x[ok]), np.abs(y[ok])), 1e-300)))


@pytest.mark.parametrize("preset", ["ibsi-a", "ibsi-b", "ibsi-e"])
def test_ct_phantom_features_dicom_rtstruct_equal_nifti(preset):
    series, rs, nifti = _ct_phantom()
    image = medfeat.read_image(nifti / "image" / "phantom.nii.gz")
    mask = medfeat.read_image(nifti / "mask" / "mask.nii.gz")
    image.array = np.round(image.array.astype(np.float32))  # configs.md, for the NIfTI version
    mask.array = np.round(mask.array.astype(np.float32))
    from_dicom = medfeat.extract(medfeat.read_image(series), rs, preset, roi="GTV-1")
    assert _max_rel_diff(from_dicom, medfeat.extract(image, mask, preset)) <= 1e-12


@pytest.mark.parametrize("modality", ["CT", "PET"])
def test_sts_features_dicom_rtstruct_equal_nifti(modality):
    series, rs, nifti = _sts(modality)
    a = medfeat.extract(medfeat.read_image(series), rs, "default-3d")
    b = medfeat.extract(nifti / f"{modality}_image.nii.gz", nifti / f"{modality}_mask.nii.gz", "default-3d")
    # the voxels and masks are identical; the spacings differ in the 8th digit (DICOM's decimal
    # 3.27 vs NIfTI's float32 3.2699999809), which moves the features that use them (morphology)
    assert _max_rel_diff(a, b) <= 1e-6


def test_a_folder_holding_only_the_rtstruct_is_a_mask():
    series, rs, _ = _sts("CT")
    assert find_rtstruct(rs.parent) == rs and find_rtstruct(rs) == rs
    assert find_rtstruct(series) is None  # an image series is not an RTSTRUCT
    image = medfeat.read_image(series)
    np.testing.assert_array_equal(rtstruct_mask(rs.parent, image), rtstruct_mask(rs, image))
    assert read_rtstruct(rs).names == ["GTV_Mass_CT"]


def test_unknown_roi_name_lists_the_available_ones():
    series, rs, _ = _ct_phantom()
    image = medfeat.read_image(series)
    with pytest.raises(InputError, match=r"no ROI named 'GTV1'.*available: 'GTV-1'") as e:
        medfeat.extract(image, rs, "ibsi-a", roi="GTV1")
    assert str(rs) in str(e.value)
    with pytest.raises(InputError, match="did you mean 'GTV-1'"):
        rtstruct_mask(rs, image, "gtv-1")


def test_rtstruct_of_another_series_is_refused():
    _, rs, _ = _ct_phantom()
    series, _, _ = _sts("CT")
    with pytest.raises(InputError, match="drawn on series .* not on this image's series"):
        medfeat.extract(medfeat.read_image(series), rs, "default-3d")


def _edited_rtstruct(tmp_path, edit):
    import pydicom

    _, rs, _ = _ct_phantom()
    ds = pydicom.dcmread(rs)
    edit(ds)
    out = tmp_path / "RS_edited.dcm"
    ds.save_as(out)
    return out


def test_several_rois_need_a_name_and_each_is_found(tmp_path):
    def add_roi(ds):
        item = copy.deepcopy(ds.StructureSetROISequence[0])
        item.ROINumber, item.ROIName = 2, "GTV-copy"
        ds.StructureSetROISequence.append(item)
        contours = copy.deepcopy(ds.ROIContourSequence[0])
        contours.ReferencedROINumber = 2
        del contours.ContourSequence[1:]  # one contour only
        ds.ROIContourSequence.append(contours)

    rs = _edited_rtstruct(tmp_path, add_roi)
    series, _, _ = _ct_phantom()
    image = medfeat.read_image(series)
    with pytest.raises(InputError, match="holds 2 ROIs.*'GTV-1', 'GTV-copy'"):
        rtstruct_mask(rs, image)
    full, one = rtstruct_mask(rs, image, "GTV-1"), rtstruct_mask(rs, image, "GTV-copy")
    assert one.sum() < full.sum() and not (one & ~full).any()
    assert np.count_nonzero(one.any(axis=(1, 2))) == 1  # one slice


def test_frame_of_reference_mismatch_is_refused(tmp_path):
    def move(ds):
        ds.StructureSetROISequence[0].ReferencedFrameOfReferenceUID = "1.2.3.4"

    rs = _edited_rtstruct(tmp_path, move)
    series, _, _ = _ct_phantom()
    with pytest.raises(InputError, match="frame of reference 1.2.3.4"):
        rtstruct_mask(rs, medfeat.read_image(series), "GTV-1")


def test_roi_and_label_are_checked_against_the_mask_kind():
    series, rs, nifti = _ct_phantom()
    image = medfeat.read_image(nifti / "image" / "phantom.nii.gz")
    with pytest.raises(InputError, match="names an RTSTRUCT ROI or SEG segment, but the mask is neither"):
        medfeat.extract(image, nifti / "mask" / "mask.nii.gz", "ibsi-a", roi="GTV-1")
    with pytest.raises(InputError, match="no mask was given"):
        medfeat.extract(image, None, "ibsi-a", roi="GTV-1")
    with pytest.raises(InputError, match="roi=NAME"):
        medfeat.extract(medfeat.read_image(series), rs, "ibsi-a", label=1)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "medfeat", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_extract_with_an_rtstruct_mask(tmp_path):
    series, rs, _ = _sts("PET")
    out = tmp_path / "f.json"
    r = _cli("extract", series, "--mask", rs, "--roi", "GTV_Mass_PET", "--families", "stat", "-o", out)
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())[0]
    api = medfeat.extract(medfeat.read_image(series), rs, "default-3d", families=["stat"], roi="GTV_Mass_PET")
    assert row["stat_mean"] == pytest.approx(api["stat_mean"], rel=1e-12) and not row["error"]
    r = _cli("extract", series, "--mask", rs, "--roi", "tumour", "--families", "stat")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "'GTV_Mass_PET'" in r.stderr and "tumour" in r.stderr
