"""Radiomics cohorts as productions: the sarcoma patients of ``../shared/data/sts`` as a folder
(masks paired by name, never taken for images), as DICOM series with their RTSTRUCT, and as a CSV
cohort with identifier columns -- each row equal to ``medfeat.extract`` of the same image and mask."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import medfeat
from medfeat.production.ledger import Ledger
from medfeat.production.plan import discover

STS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sts"
pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not STS.is_dir(), reason="../shared/data/sts is absent (CI has it)")]

SETTINGS = "default-3d"
FAMILIES = "stat,ih,glcm"


def _run(tmp_path: Path, dataset, *extra: str, failed: int = 0) -> list[dict]:
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "medfeat", "run", str(dataset), "-o", str(run_dir), "--workers", "2",
                        "--images-per-job", "2", "--settings", SETTINGS, "--families", FAMILIES, "--quiet", *extra],
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == (2 if failed else 0), r.stdout + r.stderr
    if failed:
        assert f"medfeat: {failed} of " in r.stderr
    led = Ledger(run_dir)
    try:
        assert led.check_consistency() == []
    finally:
        led.close()
    return pq.read_table(run_dir / "features.parquet").to_pylist()


def _same_as_extract(row: dict, image, mask, **kw) -> None:
    want = medfeat.extract(image, mask, SETTINGS, families=FAMILIES.split(","), **kw)
    assert row["error"] == ""
    for k in ("stat_mean", "stat_var", "ih_entropy", "cm_contrast_3d_avg", "cm_joint_entr_3d_avg"):
        assert row[k] == pytest.approx(want[k], rel=1e-12), k


def test_folder_cohort_pairs_masks_and_never_extracts_them(tmp_path):
    patient = STS / "nifti" / "STS_003"
    items = discover(str(patient))
    assert [(Path(i.image).name, Path(i.mask).name) for i in items] == [
        ("CT_image.nii.gz", "CT_mask.nii.gz"), ("MR_T1_image.nii.gz", "MR_T1_mask.nii.gz"),
        ("PET_image.nii.gz", "PET_mask.nii.gz")]
    rows = _run(tmp_path, patient)
    assert len(rows) == 3 and not any("mask" in Path(r["image"]).name for r in rows)
    for r in rows:
        assert r["mask"] == r["image"].replace("_image", "_mask")
        _same_as_extract(r, r["image"], r["mask"])


def test_dicom_series_with_rtstruct_is_one_image_with_its_mask(tmp_path):
    patient = STS / "dicom" / "STS_002"
    items = discover(str(patient))
    assert [(Path(i.image).relative_to(patient).as_posix(), Path(i.mask).relative_to(patient).as_posix())
            for i in items] == [("CT/image", "CT/mask"), ("MR_T1/image", "MR_T1/mask"), ("PET/image", "PET/mask")]
    # one modality keeps the test short: the CT series (60 slices) and its RTSTRUCT
    ct = tmp_path / "STS_002"
    shutil.copytree(patient / "CT", ct / "CT")
    rows = _run(tmp_path, ct, "--roi", "GTV_Mass_CT")
    assert len(rows) == 1
    row = rows[0]
    assert Path(row["image"]).name == "image" and Path(row["mask"]).name == "mask" and row["roi"] == "GTV_Mass_CT"
    _same_as_extract(row, patient / "CT" / "image", patient / "CT" / "mask" / "RS.dcm", roi="GTV_Mass_CT")


def test_csv_cohort_with_identifiers_label_and_roi(tmp_path):
    rows_in = []
    for pid in ("STS_001", "STS_005"):
        for mod in ("CT", "PET"):
            rows_in.append((pid, mod, STS / "nifti" / pid / f"{mod}_image.nii.gz", STS / "nifti" / pid / f"{mod}_mask.nii.gz"))
    csv = tmp_path / "cohort.csv"
    rt_image, rt = STS / "dicom" / "STS_002" / "CT" / "image", STS / "dicom" / "STS_002" / "CT" / "mask" / "RS.dcm"
    csv.write_text("patient,modality,image,mask,label,roi\n"
                   + "".join(f"{p},{m},{i},{k},1,\n" for p, m, i, k in rows_in)
                   + f"STS_002,CT-rt,{rt_image},{rt},,GTV_Mass_CT\n"
                   + f"STS_002,CT-wrong-roi,{rt_image},{rt},,GTV\n"
                   + f"STS_404,CT,{tmp_path / 'missing.nii.gz'},,,\n")
    rows = _run(tmp_path, csv, failed=2)
    assert len(rows) == 7
    by = {(r["patient"], r["modality"]): r for r in rows}
    for p, m, i, k in rows_in:
        r = by[(p, m)]
        assert (r["image"], r["mask"], r["label"], r["roi"]) == (str(i), str(k), 1, "")
        _same_as_extract(r, i, k, label=1)
    r = by[("STS_002", "CT-rt")]
    assert (r["label"], r["roi"]) == (None, "GTV_Mass_CT")
    _same_as_extract(r, rt_image, rt, roi="GTV_Mass_CT")
    bad = by[("STS_002", "CT-wrong-roi")]
    assert "no ROI named 'GTV'" in bad["error"] and "GTV_Mass_CT" in bad["error"]
    # a listed file that does not exist is an error row; the production still completes
    gone = by[("STS_404", "CT")]
    assert "missing.nii.gz" in gone["error"] and "not found" in gone["error"]
