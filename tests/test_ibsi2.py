"""IBSI chapter 2 through medfeat's settings: every shared phase-1 response map from its
``ibsi2-<id>`` preset (the preset's filter on the phantom, via ``medfeat filter`` for one of them),
and every shared phase-2 reference value from ``medfeat.extract`` of the CT phantom with the
``ibsi2-<config>`` preset (filter on the whole image, ROI re-segmented on the original
intensities, interpolation for config B), within the published tolerances."""
from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import medfeat
from medfeat.columns import feature_columns
from medfeat.settings import Settings
from medfeat.filters import ibsi2
from medfeat.filters.registry import apply, label
from medfeat.io import read_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IBSI2 = SHARED / "ibsi2"
pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(not IBSI2.is_dir(), reason="../shared/data/ibsi2 is absent (CI has it)")]


def _maps() -> list[dict]:
    if not IBSI2.is_dir():
        return []
    with open(IBSI2 / "phase1_reference.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("row", _maps(), ids=lambda r: r["test_id"])
def test_phase1_map_from_its_preset(row):
    s = Settings.preset(f"ibsi2-{row['test_id']}")
    phantom = read_image(IBSI2 / "digital_phantom" / row["phantom"] / "image" / f"{row['phantom']}.nii.gz")
    got = apply(s.filters[0], phantom.array.astype(np.float64), phantom.spacing)
    ref = read_image(IBSI2 / row["file"]).array
    assert got.shape == ref.shape
    err = float(np.max(np.abs(got - ref)))
    assert err <= float(row["abs_tolerance"]), f"max |diff| {err:.4g} > {float(row['abs_tolerance']):.4g}"


def test_phase1_through_the_cli(tmp_path):
    out = tmp_path / "2a.nii.gz"
    r = subprocess.run([sys.executable, "-m", "medfeat", "filter",
                        str(IBSI2 / "digital_phantom" / "impulse" / "image" / "impulse.nii.gz"), "-o", str(out),
                        "--settings", "ibsi2-2.a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ref = read_image(IBSI2 / "response_maps" / "2_a-ValidCRM.nii.gz")
    got = read_image(out)
    assert got.spacing == ref.spacing and np.max(np.abs(got.array - ref.array)) <= 0.0675
    r = subprocess.run([sys.executable, "-m", "medfeat", "filter", str(out), "-o", str(tmp_path / "x.nii.gz"),
                        "--settings", "default-3d"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "names no filter" in r.stderr and "Traceback" not in r.stderr


def _values() -> dict[str, list[dict]]:
    if not IBSI2.is_dir():
        return {}
    out: dict[str, list[dict]] = {}
    with open(IBSI2 / "phase2_reference.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["value"]:
                out.setdefault(r["config_id"], []).append(r)
    return out


@pytest.fixture(scope="module")
def ct():
    root = SHARED / "ibsi" / "ct_phantom" / "nifti"
    return read_image(root / "image" / "phantom.nii.gz"), read_image(root / "mask" / "mask.nii.gz")


@pytest.mark.parametrize("config", sorted(_values()))
def test_phase2_values_from_their_preset(config, ct):
    image, mask = ct
    s = Settings.preset(f"ibsi2-{config}")
    got = medfeat.extract(image, mask, s)
    prefix = label(s.filters[0]) + "__" if s.filters else ""
    assert list(got) == [c.name for c in feature_columns(s)]
    misses = []
    for r in _values()[config]:
        column = prefix + r["feature_tag"].replace("_p10", "_P10").replace("_p90", "_P90")
        if abs(got[column] - float(r["value"])) > float(r["tolerance"]):
            misses.append(f"{column} {got[column]:.6g} vs {r['value']} +- {r['tolerance']}")
    assert not misses, misses


def test_every_phase1_and_phase2_id_has_a_preset():
    phase1 = {"1.a.1", "1.a.2", "1.a.3", "1.a.4", "1.b.1", "2.a", "2.b", "2.c", "3.a.1", "3.a.2", "3.a.3", "3.b.1",
              "3.b.2", "3.b.3", "3.c.1", "3.c.2", "3.c.3", "4.a.1", "4.a.2", "4.b.1", "4.b.2", "5.a.1", "5.a.2",
              "6.a.1", "6.a.2", "7.a.1", "7.a.2", "8.a.1", "8.a.2", "8.a.3", "9.a", "9.b.1", "10.b.1"}
    assert {p[len("ibsi2-"):] for p in ibsi2.PRESETS if p[len("ibsi2-"):] in ibsi2.PHASE1} == phase1
    for n in range(1, 10):
        for c in "AB":
            s = Settings.preset(f"ibsi2-{n}.{c}")
            assert s.families == ("stat",) and (s.filters == () if n == 1 else len(s.filters) == 1)
            assert (s.interpolation_spacing is not None) == (c == "B")
    with pytest.raises(medfeat.InputError, match="unknown settings preset"):
        Settings.preset("ibsi2-11.A")


def test_filters_in_a_settings_file_the_long_layout_and_a_production(tmp_path):
    # a settings file with two filters: columns prefixed by each filter's label, original kept;
    # the long layout names the image type; a production gives the same rows as extract
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    data.mkdir()
    import nibabel as nib

    for k in range(3):
        nib.save(nib.Nifti1Image(rng.integers(0, 400, (16, 14, 8)).astype(np.int16), np.diag([1.0, 1.0, 2.0, 1.0])),
                 data / f"v{k}.nii.gz")
    toml = tmp_path / "s.toml"
    toml.write_text('preset = "default-3d"\nfamilies = ["stat", "glcm", "morph"]\n'
                    'filters = [{type = "log", sigma_mm = 2.0}, {type = "wavelet", wavelet = "coif1", subband = "HLL"}]\n')
    s = Settings.from_file(toml)
    cols = [c.name for c in feature_columns(s)]
    assert "stat_mean" in cols and "morph_vol" in cols
    assert "log-s2mm-3d__stat_mean" in cols and "wavelet-coif1-HLL-l1__cm_joint_max_3d_avg" in cols
    assert not [c for c in cols if c.startswith("log-") and "morph" in c]  # shape: original image only
    want = medfeat.extract(data / "v0.nii.gz", None, s)
    assert list(want) == cols
    r = subprocess.run([sys.executable, "-m", "medfeat", "extract", str(data / "v0.nii.gz"), "--settings", str(toml),
                        "--layout", "long", "-o", str(tmp_path / "long.csv")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    import pyarrow.csv as pacsv

    long = pacsv.read_csv(tmp_path / "long.csv").to_pylist()
    types = {row["image_type"] for row in long}
    assert types == {"original", "log-s2mm-3d", "wavelet-coif1-HLL-l1"}
    row = next(x for x in long if x["image_type"] == "log-s2mm-3d" and x["feature"] == "stat.mean")
    assert row["value"] == pytest.approx(want["log-s2mm-3d__stat_mean"], rel=1e-12)
    r = subprocess.run([sys.executable, "-m", "medfeat", "run", str(data), "-o", str(tmp_path / "run"), "--settings",
                        str(toml), "--workers", "1", "--images-per-job", "2", "--quiet"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    import pyarrow.parquet as pq

    rows = {Path(x["image"]).name: x for x in pq.read_table(tmp_path / "run" / "features.parquet").to_pylist()}
    for k, v in want.items():
        assert rows["v0.nii.gz"][k] == pytest.approx(v, rel=1e-12, nan_ok=True), k


@pytest.mark.parametrize("spec", [
    {"type": "mean", "support": 5, "boundary": "mirror"}, {"type": "log", "sigma_mm": 3.0, "boundary": "nearest"},
    {"type": "log", "sigma_mm": 2.0, "dimension": "2d"},
    {"type": "laws", "kernel": "E5L5S5", "rotation_invariant": True, "energy_delta": 3, "boundary": "zero"},
    {"type": "gabor", "sigma_mm": 3.0, "wavelength_mm": 4.0, "gamma": 0.5, "theta_step": math.pi / 4,
     "planes": "orthogonal"},
    {"type": "wavelet", "wavelet": "db3", "subband": "HLH", "level": 2, "rotation_invariant": True},
    {"type": "pyradiomics_log", "sigma_mm": 2.0}, {"type": "gradient"}, {"type": "lbp2d"}])
def test_filtering_the_roi_box_with_the_filters_reach_equals_the_whole_image(spec):
    from medfeat.filters.registry import normalize, reach

    rng = np.random.default_rng(5)
    image = rng.normal(size=(24, 40, 36))
    spacing = (2.0, 1.0, 1.2)
    spec = normalize(spec)
    whole = apply(spec, image, spacing)
    r = reach(spec, spacing)
    roi = (slice(10, 14), slice(15, 22), slice(3, 9))  # near the x edge: the box stops there
    box = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(roi, r, image.shape))
    part = apply(spec, image[box], spacing)
    inner = tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(roi, box))
    np.testing.assert_allclose(part[inner], whole[roi], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("subband", ["LLH", "HHL", "LLL"])
@pytest.mark.parametrize("level", [1, 2])
def test_pyradiomics_wavelet_on_a_box_inside_the_image_equals_the_whole_image(subband, level):
    from medfeat.filters.registry import normalize, reach, wraps

    rng = np.random.default_rng(8)
    image = rng.normal(size=(31, 45, 38))  # odd sizes: PyRadiomics pads them by one wrapped voxel
    spacing = (2.0, 1.0, 1.2)
    spec = normalize({"type": "pyradiomics_wavelet", "subband": subband, "level": level})
    assert wraps(spec)
    r = reach(spec, spacing)
    roi = (slice(12, 17), slice(16, 25), slice(15, 22))
    box = tuple(slice(b.start - m, b.stop + m) for b, m in zip(roi, r))
    assert all(b.start >= 0 and b.stop <= n for b, n in zip(box, image.shape))  # inside: no wrap at the box
    whole = apply(spec, image, spacing)
    part = apply(spec, image[box], spacing)
    inner = tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(roi, box))
    np.testing.assert_allclose(part[inner], whole[roi], rtol=1e-12, atol=1e-12)


def test_a_periodic_filter_near_the_image_edge_gets_the_whole_image():
    # the ROI touches the x edge: a box would wrap there, so the pipeline filters the whole image
    from medfeat import Image, Settings
    from medfeat.filters.registry import normalize

    rng = np.random.default_rng(9)
    arr = rng.normal(100, 20, size=(20, 30, 30))
    mask = np.zeros(arr.shape, np.uint8)
    mask[8:12, 10:18, 0:6] = 1
    spec = {"type": "pyradiomics_wavelet", "subband": "HLH"}
    settings = Settings.from_dict({"families": ["stat"], "filters": [spec], "original": False})
    row = medfeat.extract(Image(arr, spacing=(2.0, 1.0, 1.0)), mask, settings)
    want = apply(normalize(spec), arr, (2.0, 1.0, 1.0))[mask.astype(bool)]
    assert row["wavelet-HLH__stat_mean"] == pytest.approx(want.mean(), rel=1e-12)
    assert row["wavelet-HLH__stat_max"] == pytest.approx(want.max(), rel=1e-12)


def test_filters_of_different_reach_each_on_their_own_box_equal_whole_image_filtering():
    # one settings file, filters reaching 1 voxel to the whole image: each runs on the ROI's box plus
    # its own reach, and every feature equals that of filtering the whole image first
    from medfeat import Image, Settings
    from medfeat.filters.registry import label, normalize

    rng = np.random.default_rng(12)
    arr = rng.normal(100, 20, size=(30, 64, 60))
    mask = np.zeros(arr.shape, np.uint8)
    mask[12:17, 25:37, 22:35] = 1
    spacing = (2.0, 0.9, 0.9)
    specs = [{"type": "mean", "support": 3}, {"type": "pyradiomics_log", "sigma_mm": 1.0},
             {"type": "pyradiomics_log", "sigma_mm": 3.0}, {"type": "pyradiomics_wavelet", "subband": "HLH"},
             {"type": "pyradiomics_wavelet", "subband": "LLL"}, {"type": "gradient"}, {"type": "square"}]
    settings = Settings.from_dict({"families": ["stat", "glcm"], "discretisation": "fbn", "bin_number": 16,
                                   "filters": specs, "original": False})
    row = medfeat.extract(Image(arr, spacing=spacing), mask, settings)
    plain = settings.replace(filters=(), original=True)
    for spec in specs:
        spec = normalize(spec)
        whole = apply(spec, arr, spacing)
        want = medfeat.extract(Image(whole, spacing=spacing), mask, plain)
        prefix = label(spec) + "__"
        for k, v in want.items():
            assert row[prefix + k] == pytest.approx(v, rel=1e-9, abs=1e-9, nan_ok=True), prefix + k
