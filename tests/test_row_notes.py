"""Settings chosen per image and the row's ``note``: with no settings (the ``auto`` preset) a
single-slice image gets ``default-2d`` and a volume ``default-3d``, each row saying what ran; explicit
3D settings on one slice, a resampled mask and irregular DICOM slice spacing are noted in the row."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage
from pydicom.uid import generate_uid

import medfeat
from medfeat.columns import feature_columns
from medfeat.settings import Settings
from medfeat.tables import read_provenance
from test_io import write_ct_slice

FAMILIES = "stat,glcm,morph"
rng = np.random.default_rng(12)


def _picture(path: Path) -> Path:
    PILImage.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8)).save(path)
    return path


def _volume(path: Path) -> Path:
    data = rng.integers(0, 1000, (20, 18, 6)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0])), path)
    return path


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medfeat", *map(str, args)], capture_output=True, text=True,
                          timeout=180)


def _rows(path: Path) -> dict[str, dict]:
    return {Path(r["image"]).name: r for r in pq.read_table(path).to_pylist()}


def _same(row: dict, want: dict) -> None:
    assert want and all(row[k] == pytest.approx(v, rel=1e-12, nan_ok=True) for k, v in want.items())


def test_auto_gives_a_picture_2d_features_and_a_volume_3d_features(tmp_path):
    png, vol = _picture(tmp_path / "slice.png"), _volume(tmp_path / "vol.nii.gz")
    out = tmp_path / "both.parquet"
    r = _cli("extract", png, vol, "--families", FAMILIES, "-o", out)
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert rows["slice.png"]["note"] == "default-2d settings (single-slice image); morph left out"
    assert rows["vol.nii.gz"]["note"] == ""
    _same(rows["slice.png"], medfeat.extract(png, settings="default-2d", families=["stat", "glcm"]))
    _same(rows["vol.nii.gz"], medfeat.extract(vol, settings="default-3d", families=FAMILIES.split(",")))
    # each kind's own columns are null in the other kind's row
    assert rows["slice.png"]["morph_vol"] is None and rows["vol.nii.gz"]["cm_joint_max_2d_avg"] is None
    assert read_provenance(out)["settings_name"] == "auto"

    # a table of one kind leaves out the other kind's columns
    def features(path):
        return [c for c in pq.read_schema(path).names if c not in ("image", "sha256", "error", "note")]
    r = _cli("extract", png, "--families", FAMILIES, "-o", tmp_path / "2d.parquet")
    assert r.returncode == 0, r.stderr
    assert features(tmp_path / "2d.parquet") == [c.name for c in feature_columns("default-2d", ["stat", "glcm"])]
    r = _cli("extract", vol, "--families", FAMILIES, "-o", tmp_path / "3d.parquet")
    assert r.returncode == 0, r.stderr
    assert features(tmp_path / "3d.parquet") == [c.name for c in feature_columns("default-3d", FAMILIES.split(","))]


def test_explicit_3d_settings_on_one_slice_are_noted(tmp_path):
    png = _picture(tmp_path / "slice.png")
    notes: list[str] = []
    row = medfeat.extract(png, settings="default-3d", families=["stat", "glcm"], notes=notes)
    assert notes and notes[0].startswith("3D settings on a single-slice image")
    assert "cm_joint_max_3d_avg" in row
    # 2D settings on a slice, and 3D settings on a volume: nothing to say
    notes = []
    medfeat.extract(png, settings="default-2d", families=["stat", "glcm"], notes=notes)
    medfeat.extract(_volume(tmp_path / "v.nii.gz"), settings="default-3d", families=["stat"], notes=notes)
    assert notes == []
    # the preset a single slice gets must be a preset, and may not be "auto" itself
    with pytest.raises(medfeat.InputError, match="single_slice"):
        Settings(single_slice="auto")


def test_irregular_dicom_slice_spacing_is_reported_in_the_row(tmp_path):
    uid = generate_uid()
    for k, z in enumerate([0.0, 2.5, 5.0, 10.0, 12.5]):  # one slice missing between 5 and 10
        write_ct_slice(tmp_path / f"IM{k}.dcm", rng.integers(0, 2000, (8, 8)), z, uid)
    out = tmp_path / "f.parquet"
    r = _cli("extract", tmp_path, "--families", "stat", "-o", out)
    assert r.returncode == 0, r.stderr
    (row,) = pq.read_table(out).to_pylist()
    assert row["note"] == ("irregular slice spacing: gaps of 2.5 to 5 mm between slices, features computed "
                           "with the median 2.5 mm")


STS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sts" / "nifti" / "STS_001"


@pytest.mark.skipif(not STS.is_dir(), reason="../shared/data/sts is absent (CI has it)")
def test_a_resampled_mask_is_noted_in_the_row(tmp_path):
    from test_mask_geometry import _rewrite

    flipped = _rewrite(STS / "CT_mask.nii.gz", tmp_path / "flipped.nii.gz", flip_x=True)
    out = tmp_path / "f.csv"
    r = _cli("extract", STS / "CT_image.nii.gz", "-m", flipped, "--resample-mask", "--families", "stat",
             "--settings", "default-3d", "-o", out)
    assert r.returncode == 0, r.stderr
    import pyarrow.csv as pacsv

    (row,) = pacsv.read_csv(out).to_pylist()
    assert row["note"].startswith("mask resampled onto the image grid (nearest neighbour): ")
    assert "axes point other ways" in row["note"]
    assert json.loads((tmp_path / "f.csv.meta.json").read_text())["settings"]["resample_mask"] is True


def test_a_production_without_settings_chooses_per_image(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    png, vol = _picture(data / "a.png"), _volume(data / "b.nii.gz")
    _picture(data / "c.png")
    r = _cli("run", data, "-o", tmp_path / "run", "--families", FAMILIES, "--workers", "1", "--images-per-job", "2",
             "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _rows(tmp_path / "run" / "features.parquet")
    assert sorted(rows) == ["a.png", "b.nii.gz", "c.png"]
    _same(rows["a.png"], medfeat.extract(png, settings="default-2d", families=["stat", "glcm"]))
    _same(rows["b.nii.gz"], medfeat.extract(vol, settings="default-3d", families=FAMILIES.split(",")))
    assert rows["a.png"]["note"].startswith("default-2d settings") and rows["b.nii.gz"]["note"] == ""
    assert read_provenance(tmp_path / "run" / "features.parquet")["settings"]["single_slice"] == "default-2d"
