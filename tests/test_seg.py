"""DICOM SEG masks: files written by a real peer (highdicom) from the sarcoma CT series of
``../shared/data/sts/dicom/STS_002`` and its RTSTRUCT, read back by :mod:`medfeat.io.seg` onto the
series' grid. The SEG's mask must be the RTSTRUCT's voxel for voxel, through ``extract``, the CLI and
a production; other grids, other frames of reference, unknown segments and damaged files are refused
in one line."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pyarrow.parquet as pq
import pytest
from pydicom.uid import generate_uid

import medfeat
from medfeat.errors import InputError
from medfeat.io import read_image
from medfeat.io.rtstruct import rtstruct_mask
from medfeat.io.seg import read_seg, seg_mask

hd = pytest.importorskip("highdicom", reason="highdicom (test extra) writes the SEG files")

STS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sts" / "dicom" / "STS_002" / "CT"
pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::UserWarning"),  # highdicom's notes on the CT's tags
              pytest.mark.skipif(not STS.is_dir(), reason="../shared/data/sts is absent (CI has it)")]
ROI = "GTV_Mass_CT"
FAMILIES = ["stat", "ih", "glcm"]


@pytest.fixture(scope="module")
def ct():
    image = read_image(STS / "image")
    sources = [pydicom.dcmread(STS / "image" / name) for name in image.meta["files"]]  # in slice order
    return image, sources, rtstruct_mask(STS / "mask" / "RS.dcm", image, ROI)


def _description(number: int, label: str):
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label,
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
        segmented_property_type=hd.sr.CodedConcept("108369006", "SCT", "Neoplasm"),
        algorithm_type="MANUAL")


def _write_seg(path: Path, sources, pixels: np.ndarray, labels=("GTV",), kind="BINARY") -> Path:
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=kind,
        segment_descriptions=[_description(i + 1, lab) for i, lab in enumerate(labels)],
        series_instance_uid=generate_uid(), series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="medfeat tests", manufacturer_model_name="highdicom", software_versions=hd.__version__,
        device_serial_number="1", omit_empty_frames=True)
    seg.save_as(path)
    return path


def test_a_highdicom_seg_is_the_rtstruct_mask_voxel_for_voxel(tmp_path, ct):
    image, sources, want = ct
    seg_path = _write_seg(tmp_path / "seg.dcm", sources, want.astype(np.uint8))
    seg = read_seg(seg_path)
    assert seg.labels == ["GTV"] and seg.frames.shape[0] == np.count_nonzero(want.any(axis=(1, 2)))
    np.testing.assert_array_equal(seg_mask(seg, image), want)
    got = medfeat.extract(image, seg_path, "default-3d", families=FAMILIES)
    assert got == medfeat.extract(image, STS / "mask" / "RS.dcm", "default-3d", families=FAMILIES, roi=ROI)
    # the SEG also lands on a NIfTI conversion of the series (world coordinates, not slice numbers)
    import nibabel as nib

    data = np.ascontiguousarray(image.array.transpose(2, 1, 0))  # (z, y, x) -> NIfTI's (i, j, k) = (x, y, z)
    iop = np.asarray(image.meta["orientation"], dtype=float)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = iop[:3] * image.spacing[2], iop[3:] * image.spacing[1]
    lps[:3, 2] = np.cross(iop[:3], iop[3:]) * image.spacing[0]
    lps[:3, 3] = image.origin[::-1]
    nib.save(nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps), tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(seg_mask(seg, read_image(tmp_path / "ct.nii.gz")), want)


def test_fractional_segments_and_choosing_one_of_several(tmp_path, ct):
    image, sources, want = ct
    # occupancy 0.7 inside, 0.3 on the voxels just around: in the ROI from one half up
    from scipy import ndimage

    ring = ndimage.binary_dilation(want) & ~want
    fractions = np.where(want, 0.7, np.where(ring, 0.3, 0.0)).astype(np.float32)
    frac = _write_seg(tmp_path / "frac.dcm", sources, fractions, kind="FRACTIONAL")
    np.testing.assert_array_equal(seg_mask(frac, image), want)
    # two segments: the tumour and its ring; chosen by label or by number
    both = _write_seg(tmp_path / "two.dcm", sources, np.stack([want, ring], axis=-1).astype(np.uint8),
                      labels=("GTV", "ring"))
    np.testing.assert_array_equal(seg_mask(both, image, "ring"), ring)
    np.testing.assert_array_equal(seg_mask(both, image, number=1), want)
    assert medfeat.extract(image, both, "default-3d", families=["stat"], label=2) == \
        medfeat.extract(image, ring, "default-3d", families=["stat"])
    with pytest.raises(InputError, match=r"SEG holds 2 segments; choose one .*1: 'GTV', 2: 'ring'"):
        seg_mask(both, image)
    with pytest.raises(InputError, match=r"no segment labelled 'gtv' \(did you mean 'GTV'\?\)"):
        seg_mask(both, image, "gtv")


def test_segs_off_the_image_grid_or_frame_are_refused(tmp_path, ct):
    image, sources, want = ct
    path = _write_seg(tmp_path / "seg.dcm", sources, want.astype(np.uint8))
    ds = pydicom.dcmread(path)
    for fg in ds.PerFrameFunctionalGroupsSequence:  # half a pixel along the rows
        pos = [float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient]
        fg.PlanePositionSequence[0].ImagePositionPatient = [pos[0] + 0.5 * float(image.spacing[2]), pos[1], pos[2]]
    ds.save_as(tmp_path / "shifted.dcm")
    with pytest.raises(InputError, match="off the voxel centres") as err:
        medfeat.extract(image, tmp_path / "shifted.dcm", "default-3d", families=["stat"])
    assert "shifted.dcm" in str(err.value) and "\n" not in str(err.value)
    ds = pydicom.dcmread(path)
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [
        2 * float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    ds.save_as(tmp_path / "coarse.dcm")
    with pytest.raises(InputError, match="another pixel spacing"):
        medfeat.extract(image, tmp_path / "coarse.dcm", "default-3d", families=["stat"])
    ds = pydicom.dcmread(path)
    ds.FrameOfReferenceUID = generate_uid()
    ds.save_as(tmp_path / "other-frame.dcm")
    with pytest.raises(InputError, match="do not share coordinates"):
        medfeat.extract(image, tmp_path / "other-frame.dcm", "default-3d", families=["stat"])
    # damaged: cut in its pixel data; through the CLI, one line and exit 2
    data = path.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 5000])
    r = subprocess.run([sys.executable, "-m", "medfeat", "extract", str(STS / "image"), "-m", str(tmp_path / "cut.dcm"),
                        "--families", "stat"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "cut.dcm" in line


def test_a_series_with_a_seg_beside_it_runs_as_one_image(tmp_path, ct):
    image, sources, want = ct
    patient = tmp_path / "STS_002"
    shutil.copytree(STS / "image", patient / "CT" / "image")
    (patient / "CT" / "mask").mkdir()
    _write_seg(patient / "CT" / "mask" / "seg.dcm", sources, want.astype(np.uint8))
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "medfeat", "run", str(patient), "-o", str(run_dir), "--workers", "1",
                        "--settings", "default-3d", "--families", ",".join(FAMILIES), "--quiet"],
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout + r.stderr
    (row,) = pq.read_table(run_dir / "features.parquet").to_pylist()
    assert Path(row["image"]).name == "image" and Path(row["mask"]).name == "mask" and row["error"] == ""
    want_row = medfeat.extract(image, STS / "mask" / "RS.dcm", "default-3d", families=FAMILIES, roi=ROI)
    for k in ("stat_mean", "ih_entropy", "cm_contrast_3d_avg"):
        assert row[k] == pytest.approx(want_row[k], rel=1e-12), k
