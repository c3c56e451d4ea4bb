"""medfeat.pyradiomics: PyRadiomics parameter files as Settings (with notes for what is not exact),
and PyRadiomics' names of medfeat's columns."""
from __future__ import annotations

import json

import pytest

from medfeat import InputError, Settings
from medfeat.columns import feature_columns
from medfeat.pyradiomics import (DIFFERENCES, FEATURE_TAGS, feature_pairs, pyradiomics_column,
                                 settings_from_pyradiomics, settings_to_toml)


def convert(setting=None, **sections):
    params = dict(sections)
    if setting is not None:
        params["setting"] = setting
    return settings_from_pyradiomics(params)


def has_note(notes, *words):
    return any(all(w in n for w in words) for n in notes)


def test_defaults_are_pyradiomics_defaults():
    s, notes = convert()
    assert (s.dimension, s.aggregations, s.discretisation, s.bin_width) == ("3d", ("3D, averaged",), "fbs", 25.0)
    assert set(s.families) == {"stat", "ih", "morph", "glcm", "glrlm", "glszm", "ngldm", "ngtdm"}
    assert s.morph_autocorrelation is False and s.interpolation_spacing is None
    assert (s.distance, s.ngtdm_distance, s.ngldm_distance, s.ngldm_alpha) == (1, 1, 1, 0)
    assert has_note(notes, "binWidth 25 (PyRadiomics default)", "first bin edge")
    assert all("\n" not in n for n in notes)


def test_bin_count_and_bin_width():
    s, notes = convert({"binCount": 16})
    assert (s.discretisation, s.bin_number) == ("fbn", 16)
    assert not has_note(notes, "binWidth")
    s, notes = convert({"binWidth": 10})
    assert (s.discretisation, s.bin_width) == ("fbs", 10.0)
    assert has_note(notes, "setting binWidth 10", "floor(min / binWidth)")
    s, notes = convert({"binCount": 8, "binWidth": 5})
    assert (s.discretisation, s.bin_number) == ("fbn", 8)
    assert has_note(notes, "binWidth 5: ignored, binCount is given")


def test_resegmentation():
    s, _ = convert({"resegmentRange": [-500, 400]})
    assert (s.resegment_min, s.resegment_max, s.outlier_sigma) == (-500.0, 400.0, None)
    s, _ = convert({"resegmentRange": [-1000], "resegmentMode": "absolute"})
    assert (s.resegment_min, s.resegment_max) == (-1000.0, None)
    s, notes = convert({"resegmentRange": [-3, 3], "resegmentMode": "sigma"})
    assert (s.outlier_sigma, s.resegment_min) == (3.0, None)
    assert not has_note(notes, "resegmentRange")
    s, notes = convert({"resegmentRange": [-2, 3], "resegmentMode": "sigma"})
    assert s.outlier_sigma is None and has_note(notes, "resegmentRange [-2, 3] (sigma", "no re-segmentation done")
    s, notes = convert({"resegmentRange": [0.1, 0.9], "resegmentMode": "relative"})
    assert s.resegment_min is None and has_note(notes, "relative", "no medfeat equivalent")
    _, notes = convert({"resegmentRange": [0, 100], "resegmentShape": True})
    assert has_note(notes, "resegmentShape true", "ignored")


def test_resampling_and_interpolators():
    s, notes = convert({"resampledPixelSpacing": [1, 2, 3]})  # (x, y, z) -> (z, y, x); default sitkBSpline
    assert (s.interpolation_spacing, s.interpolation, s.roi_interpolation) == ((3.0, 2.0, 1.0), "cubic", "nearest")
    assert has_note(notes, "resampledPixelSpacing", "centres the new grid")
    s, _ = convert({"resampledPixelSpacing": [2, 2, 0], "interpolator": "sitkLinear"})  # z kept: in-plane
    assert (s.interpolation_spacing, s.interpolation) == ((2.0, 2.0), "linear")
    s, _ = convert({"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkNearestNeighbor"})
    assert s.interpolation == "nearest"
    s, _ = convert({"resampledPixelSpacing": [1, 1, 1], "interpolator": 2})  # SimpleITK's enum value
    assert s.interpolation == "linear"
    s, notes = convert({"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkLanczosWindowedSinc"})
    assert s.interpolation == "cubic" and has_note(notes, "sitkLanczosWindowedSinc", "cubic B-spline")
    s, notes = convert({"interpolator": "sitkLinear"})
    assert s.interpolation_spacing is None and has_note(notes, "no effect without resampledPixelSpacing")
    s, notes = convert({"resampledPixelSpacing": [0, 1, 1]})
    assert s.interpolation_spacing is None and has_note(notes, "no interpolation done")
    s, _ = convert({"resampledPixelSpacing": None})
    assert s.interpolation_spacing is None
    with pytest.raises(InputError, match="setting interpolator must be a SimpleITK interpolator"):
        convert({"interpolator": "sitkCubic"})
    with pytest.raises(InputError, match="setting resampledPixelSpacing must be 3 spacings"):
        convert({"resampledPixelSpacing": [1, 1]})


def test_force2d_distances_and_gldm():
    s, notes = convert({"force2D": True})
    assert (s.dimension, s.aggregations) == ("2d", ("2.5D, direction-merged",))
    assert not has_note(notes, "force2D")
    _, notes = convert({"force2D": True, "force2Ddimension": 2})
    assert has_note(notes, "force2Ddimension 2", "axial slices used")
    s, notes = convert({"distances": [1, 2]})
    assert (s.distance, s.ngtdm_distance, s.ngldm_distance) == (2, 2, 2)
    assert has_note(notes, "distances [1, 2]", "GLCM features differ")
    assert not has_note(notes, "NGTDM and GLDM")
    _, notes = convert({"distances": [2]})
    assert has_note(notes, "distances [2]", "NGTDM and GLDM neighbourhoods")
    s, notes = convert({"gldm_a": 2})
    assert s.ngldm_alpha == 2 and not has_note(notes, "gldm_a")
    _, notes = convert({"symmetricalGLCM": False, "weightingNorm": "euclidean"})
    assert has_note(notes, "symmetricalGLCM false", "ignored") and has_note(notes, "weightingNorm 'euclidean'")


@pytest.mark.parametrize("key, value, words", [
    ("label", 2, ("label 2", "label=2")),
    ("normalize", True, ("normalize true", "ignored")),
    ("normalizeScale", 100, ("normalizeScale", "ignored")),
    ("removeOutliers", 3, ("removeOutliers", "ignored")),
    ("voxelArrayShift", 300, ("voxelArrayShift 300", "ignored")),
    ("preCrop", True, ("preCrop", "always crops")),
    ("padDistance", 10, ("padDistance",)),
    ("geometryTolerance", 1e-4, ("geometryTolerance", "ignored")),
    ("correctMask", True, ("correctMask", "ignored")),
    ("minimumROIDimensions", 2, ("minimumROIDimensions", "ignored")),
    ("minimumROISize", 10, ("minimumROISize", "ignored")),
    ("additionalInfo", True, ("additionalInfo", "ignored")),
    ("sigma", [1.0, 2.0], ("sigma", "LoG", "not enabled")),
    ("wavelet", "coif1", ("wavelet", "Wavelet")),
    ("madeUpSetting", 1, ("madeUpSetting", "not a PyRadiomics 3.0.1 setting")),
])
def test_unsupported_settings_get_their_note(key, value, words):
    s, notes = convert({key: value})
    assert has_note(notes, f"setting {key}", *words), notes
    assert s == convert()[0]  # nothing else changed


def test_image_types_voxel_settings_and_classes():
    s, notes = convert(imageType={"Original": {"binWidth": 5}, "LoG": {"sigma": [1.0]}, "Wavelet": {}},
                       voxelSetting={"kernelRadius": 2})
    assert s.bin_width == 5.0  # Original's own settings override the general ones
    # image types become filters, named as PyRadiomics names them
    from medfeat.filters.registry import label

    assert [label(f) for f in s.filters] == ["log-sigma-1-0-mm-3D"] + [
        f"wavelet-{b}" for b in ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL")]
    assert s.original and not any("imageType LoG" in n for n in notes)  # ITK's own LoG: nothing to note
    assert has_note(notes, "voxelSetting kernelRadius", "ignored")
    s, notes = convert(imageType={"LoG": {"sigma": [2, 3.5]}, "Square": {}, "LBP3D": {}})
    assert not s.original and [label(f) for f in s.filters] == ["log-sigma-2-mm-3D", "log-sigma-3-5-mm-3D", "square"]
    assert has_note(notes, "imageType LBP3D", "not available")
    with pytest.raises(InputError, match="sigma must be a list of positive numbers"):
        convert(imageType={"LoG": {"sigma": [-1]}})
    s, notes = convert(featureClass={"glcm": ["JointEnergy", "MCC", "Bogus"], "shape2D": None, "firstorder": []})
    assert s.families == ("stat", "ih", "glcm", "morph2d")
    assert has_note(notes, "featureClass glcm: 3 feature(s) listed", "whole family glcm")
    assert has_note(notes, "Bogus unknown to PyRadiomics")
    assert has_note(notes, "no medfeat counterpart for MCC")
    assert has_note(notes, "featureClass shape2D", "only with force2D")
    assert has_note(notes, "featureClass firstorder", "Kurtosis", "excess kurtosis")
    s, _ = convert({"force2D": True}, featureClass={"gldm": None, "ngtdm": None})
    assert s.families == ("ngtdm", "ngldm")
    with pytest.raises(InputError, match="unknown featureClass 'glmc'"):
        convert(featureClass={"glmc": None})
    with pytest.raises(InputError, match="unknown imageType 'LoGG'"):
        convert(imageType={"LoGG": {}})
    with pytest.raises(InputError, match=r"unknown PyRadiomics parameter sections \['settings'\]"):
        settings_from_pyradiomics({"settings": {"binWidth": 5}})


@pytest.mark.parametrize("setting, match", [
    ({"binWidth": "25"}, "setting binWidth must be a number, not '25'"),
    ({"binWidth": 0}, "setting binWidth must be a number > 0"),
    ({"binCount": 2.5}, "setting binCount must be an integer"),
    ({"force2D": 1}, "setting force2D must be true or false"),
    ({"distances": 1}, "setting distances must be a list of integers"),
    ({"distances": [0]}, "setting distances must be a non-empty list of integers >= 1"),
    ({"resegmentMode": "percent"}, "setting resegmentMode must be 'absolute', 'relative' or 'sigma'"),
    ({"resegmentRange": [1, 2, 3]}, "setting resegmentRange must be a list of 1 or 2 numbers"),
    ({"resegmentRange": [400, -500]}, "resegment_min .* is above resegment_max"),
])
def test_bad_values_are_one_line(setting, match):
    with pytest.raises(InputError, match=match) as exc:
        convert(setting)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("PyRadiomics parameters: ")


@pytest.mark.parametrize("image_type, match", [  # found by fuzzing the converter: these raised int()/float() errors
    ({"Wavelet": {"level": [1, 2]}}, "imageType Wavelet: level must be an integer >= 1, not \\[1, 2\\]"),
    ({"Wavelet": {"start_level": float("inf")}}, "imageType Wavelet: start_level must be an integer >= 0, not inf"),
    ({"Wavelet": {"level": "1e999"}}, "imageType Wavelet: level must be an integer >= 1, not '1e999'"),
    ({"Wavelet": {"wavelet": 3}}, "imageType Wavelet: wavelet must be a name"),
    ({"LBP2D": {"lbp2DSamples": 2.5}}, "imageType LBP2D: lbp2DSamples must be an integer >= 1, not 2.5"),
    ({"LBP2D": {"lbp2DRadius": "one"}}, "imageType LBP2D: lbp2DRadius must be a number >= 0, not 'one'"),
    ({"LoG": {"sigma": [1.0, float("inf")]}}, "imageType LoG: sigma must be a list of positive numbers"),
    ({"LoG": {"sigma": [True]}}, "imageType LoG: sigma must be a list of positive numbers"),
])
def test_bad_image_type_values_are_one_line(image_type, match):
    with pytest.raises(InputError, match=match) as exc:
        settings_from_pyradiomics({"imageType": {"Original": {}, **image_type}})
    assert "\n" not in str(exc.value) and str(exc.value).startswith("PyRadiomics parameters: ")


PARAMS_YAML = """\
# a typical PyRadiomics CT parameter file
imageType:
  Original: {}
  LoG:
    sigma: [1.0, 3.0]
featureClass:
  shape:
  firstorder:
  glcm:
  glrlm:
  glszm:
  gldm:
  ngtdm:
setting:
  binWidth: 25
  label: 1
  interpolator: 'sitkBSpline'
  resampledPixelSpacing: [1, 1, 1]
  resegmentRange: [-1000, 400]
  normalize: false
  geometryTolerance: 0.0001
  voxelArrayShift: 0
  distances: [1]
"""


def test_full_yaml_file_round_trip(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_YAML)
    s, notes = settings_from_pyradiomics(path)
    assert s.name == str(path) and str(path) in s.description
    assert (s.dimension, s.aggregations, s.discretisation, s.bin_width) == ("3d", ("3D, averaged",), "fbs", 25.0)
    assert (s.interpolation, s.interpolation_spacing, s.roi_interpolation) == ("cubic", (1.0, 1.0, 1.0), "nearest")
    assert (s.resegment_min, s.resegment_max) == (-1000.0, 400.0)
    assert s.families == ("stat", "ih", "glcm", "glrlm", "ngtdm", "ngldm", "glszm", "morph")
    assert has_note(notes, "setting label 1")
    assert has_note(notes, "geometryTolerance") and not has_note(notes, "voxelArrayShift")
    assert not has_note(notes, "normalize")
    # the same as JSON, and as a dict
    as_json = tmp_path / "params.json"
    import yaml

    as_json.write_text(json.dumps(yaml.safe_load(PARAMS_YAML)))
    s_json, notes_json = settings_from_pyradiomics(as_json)
    assert s_json.replace(name=s.name, description=s.description) == s and notes_json == notes
    s_dict, _ = settings_from_pyradiomics(yaml.safe_load(PARAMS_YAML))
    assert s_dict.replace(name=s.name, description=s.description) == s
    # written as a medfeat TOML settings file (notes as comments) and read back
    text = settings_to_toml(s, notes)
    assert text.startswith("# medfeat settings from ") and "# - setting label 1" in text
    out = tmp_path / "settings.toml"
    out.write_text(text)
    assert Settings.from_file(out) == s.replace(name=str(out))


def test_bad_parameter_files(tmp_path):
    with pytest.raises(InputError, match="PyRadiomics parameter file not found"):
        settings_from_pyradiomics(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidth: [25\n")
    with pytest.raises(InputError, match="invalid YAML") as exc:
        settings_from_pyradiomics(bad)
    assert "\n" not in str(exc.value) and str(exc.value).startswith(str(bad))
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(InputError, match="is a mapping with sections"):
        settings_from_pyradiomics(listed)
    with pytest.raises(InputError, match="must be a dict or the path"):
        settings_from_pyradiomics(3)
    with pytest.raises(InputError, match="is a directory"):
        settings_from_pyradiomics(tmp_path)


def test_column_names_known_pairs():
    assert pyradiomics_column("cm_energy_3d_avg") == "original_glcm_JointEnergy"
    assert pyradiomics_column("cm_energy_25d_dmrg") == "original_glcm_JointEnergy"
    assert pyradiomics_column("rlm_sre_3d_avg") == "original_glrlm_ShortRunEmphasis"
    assert pyradiomics_column("szm_sze_3d") == "original_glszm_SmallAreaEmphasis"
    assert pyradiomics_column("ngl_lde_25d") == "original_gldm_SmallDependenceEmphasis"
    assert pyradiomics_column("ngt_coarseness_3d") == "original_ngtdm_Coarseness"
    assert pyradiomics_column("stat_mean") == "original_firstorder_Mean"
    assert pyradiomics_column("stat_P10") == "original_firstorder_10Percentile"
    assert pyradiomics_column("ih_entropy") == "original_firstorder_Entropy"
    assert pyradiomics_column("morph_vol") == "original_shape_MeshVolume"
    assert pyradiomics_column("morph_2d_circularity") == "original_shape2D_Sphericity"
    assert pyradiomics_column("stat_kurt") == "original_firstorder_Kurtosis"
    assert pyradiomics_column("stat_kurt", identical_only=True) is None
    assert pyradiomics_column("morph_pca_major", identical_only=True) is None
    assert pyradiomics_column("morph_pca_elongation", identical_only=True) == "original_shape_Elongation"


def test_medfeat_only_features_and_other_aggregations_do_not_map():
    for col in ("loc_peak_local", "ivh_V10", "morph_moran_i", "ih_mode", "stat_cov", "cm_energy_2d_avg",
                "cm_energy_3d_mrg", "szm_sze_2d", "dzm_sde_3d", "ngl_dc_perc_3d", "not_a_column"):
        assert pyradiomics_column(col) is None, col


def test_mapping_matches_medfeat_columns():
    # every mapped column exists under PyRadiomics' aggregations, and the names are unique per setting
    for force2d, shape in ((False, "morph"), (True, "morph2d")):
        s, _ = convert({"force2D": force2d}, featureClass={c: None for c in ("firstorder", "glcm", "glrlm",
                                                                              "glszm", "gldm", "ngtdm")})
        s = s.replace(families=s.families + (shape,))
        cols = [c.name for c in feature_columns(s)]
        names = [pyradiomics_column(c) for c in cols]
        mapped = [n for n in names if n is not None]
        assert len(mapped) == len(set(mapped))
        expected = sum(len(t) for c, t in FEATURE_TAGS.items() if c != ("shape2D" if shape == "morph" else "shape"))
        assert len(mapped) == expected
    assert set(DIFFERENCES) <= {f"{c}_{n}" for c, t in FEATURE_TAGS.items() for n in t}
    assert ("original_glcm_JointEnergy", "cm_energy_2d_avg") in feature_pairs("2D, averaged")
    assert ("original_shape2D_Perimeter", "morph_2d_perimeter") in feature_pairs("2D, averaged")
    assert ("glszm_SmallAreaEmphasis", "szm_sze_3d") in feature_pairs("3D, averaged", image_type="")


def test_cli_converts_a_parameter_file_and_names_columns_like_pyradiomics(tmp_path):
    import subprocess
    import sys

    import numpy as np
    import pyarrow.csv as pacsv

    import medfeat
    from medfeat.settings import Settings
    from medfeat.io.netpbm import write_netpbm
    from medfeat.pyradiomics import settings_from_pyradiomics

    params = tmp_path / "params.yaml"
    params.write_text("setting:\n  binWidth: 10\n  force2D: true\nimageType:\n  Original: {}\n"
                      "featureClass:\n  firstorder:\n  glcm:\n")
    out = tmp_path / "s.toml"
    r = subprocess.run([sys.executable, "-m", "medfeat", "settings", "--from-pyradiomics", str(params), "-o", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    want, notes = settings_from_pyradiomics(params)
    got = Settings.from_file(out)
    assert got.to_dict() == want.to_dict() and notes and all(f"medfeat: note: {n}" in r.stderr for n in notes)
    img = tmp_path / "a.pgm"
    write_netpbm(img, np.random.default_rng(3).integers(0, 200, (40, 40), dtype=np.uint8))
    table = tmp_path / "f.csv"
    r = subprocess.run([sys.executable, "-m", "medfeat", "extract", str(img), "--settings", str(out), "--names",
                        "pyradiomics", "-o", str(table)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    row = pacsv.read_csv(table).to_pylist()[0]
    ref = medfeat.extract(img, None, got)
    assert row["original_firstorder_Mean"] == pytest.approx(ref["stat_mean"], rel=1e-12)
    assert row["original_glcm_Contrast"] == pytest.approx(ref["cm_contrast_25d_dmrg"], rel=1e-12)
    assert "cm_contrast_25d_dmrg" not in row
