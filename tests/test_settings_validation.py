"""Settings are checked once, at the edge: every bad value and every bad settings file is a one-line
InputError naming the file (or preset / "settings") and the key."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medfeat import InputError, Settings
from medfeat.settings import MAX_BINS, PRESETS


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("key, value, match", [
    ("bin_width", "25", r"bin_width must be a finite number > 0, not '25' \(a string\)"),
    ("bin_width", float("nan"), "bin_width must be a finite number > 0, not nan"),
    ("bin_width", math.inf, "bin_width must be a finite number > 0"),
    ("bin_width", 0, "bin_width must be a finite number > 0, not 0"),
    ("ivh_bin_width", -2.5, "ivh_bin_width must be a finite number > 0"),
    ("bin_number", 2.5, "bin_number must be an integer in 1..1000000, not 2.5"),
    ("bin_number", 0, "bin_number must be an integer in 1"),
    ("bin_number", True, r"bin_number must be an integer .* \(a boolean\)"),
    ("bin_number", "32", "bin_number must be an integer"),
    ("ivh_bin_number", 2_000_000_000, r"ivh_bin_number must be an integer in 1..1000000 \(the IVH allocates"),
    ("distance", 0, "distance must be an integer >= 1, not 0"),
    ("ngtdm_distance", 1.5, "ngtdm_distance must be an integer >= 1"),
    ("ngldm_distance", -1, "ngldm_distance must be an integer >= 1"),
    ("ngldm_alpha", -1, "ngldm_alpha must be an integer >= 0"),
    ("gift_grey_levels", 95, "gift_grey_levels must be an integer in 1..94"),
    ("round_intensities", 1, r"round_intensities must be true or false, not 1 \(a number\)"),
    ("morph_autocorrelation", "yes", "morph_autocorrelation must be true or false"),
    ("dimension", ["2d"], r"dimension must be one of '2d', '3d', not \['2d'\] \(a list\)"),
    ("discretisation", "fixed", "discretisation must be one of 'fbn', 'fbs', 'none'"),
    ("ivh_discretisation", None, "ivh_discretisation must be one of"),
    ("families", "glcm", r"families must be a list of feature family names, not 'glcm' \(a string\)"),
    ("families", ["glcm", "nope"], r"families has unknown feature families \['nope'\]"),
    ("families", ["glcm", "glcm"], "families names"),
    ("aggregations", "3D, averaged", "aggregations must be a list"),
    ("aggregations", ["3D, mean"], "aggregations has an unknown aggregation method"),
    ("aggregations", [], "aggregations is empty"),
    ("resegment_min", "low", "resegment_min must be a finite number"),
    ("resegment_max", math.inf, "resegment_max must be a finite number"),
    ("outlier_sigma", 0, "outlier_sigma must be a finite number > 0"),
    ("interpolation", ["linear"], "interpolation must be one of"),
    ("roi_interpolation", "cubic", "roi_interpolation must be one of"),
    ("roi_partial_volume", 0, r"roi_partial_volume must be a number in \(0, 1\]"),
    ("roi_partial_volume", 1.5, r"roi_partial_volume must be a number in \(0, 1\]"),
    ("roi_partial_volume", float("nan"), "roi_partial_volume must be"),
    ("interpolation_spacing", "2.0", "interpolation_spacing must be a list of 2"),
    ("interpolation_spacing", [2.0, "x"], "interpolation_spacing must be 2"),
    ("interpolation_spacing", [1.0, 1.0, 1.0, 1.0], "interpolation_spacing must be 2"),
    ("interpolation_spacing", [0.0, 1.0], "interpolation_spacing must be 2"),
    ("interpolation_spacing", [math.nan, 1.0], "interpolation_spacing must be 2"),
    ("description", 3, "description must be a string"),
])
def test_each_bad_value_is_one_line_naming_source_and_key(key, value, match):
    with pytest.raises(InputError, match=match) as exc:
        Settings(**{key: value})
    assert _one_line(exc).startswith(f"settings: {key} ")
    with pytest.raises(InputError, match=match) as exc:  # the same check through a file's dict
        Settings.from_dict({key: value}, name="s.toml")
    assert _one_line(exc).startswith(f"s.toml: {key} ")


def test_cross_field_checks():
    with pytest.raises(InputError, match=r"resegment_min \(5\) is above resegment_max \(1\)"):
        Settings(resegment_min=5, resegment_max=1)
    with pytest.raises(InputError, match="needs interpolation_spacing"):
        Settings(interpolation="linear")


def test_good_values_are_normalised():
    s = Settings(bin_width=25, resegment_min=np.int16(-500), bin_number=np.int64(16), ivh_bin_number=1000.0,
                 families=["stat", "glcm"], aggregations=["3D, averaged"], interpolation_spacing=[2, 2, 2],
                 round_intensities=np.bool_(True))
    assert (s.bin_width, s.resegment_min, s.bin_number, s.ivh_bin_number) == (25.0, -500.0, 16, 1000)
    assert type(s.bin_width) is float and type(s.bin_number) is int and type(s.ivh_bin_number) is int
    assert s.families == ("stat", "glcm") and s.aggregations == ("3D, averaged",)
    assert s.interpolation_spacing == (2.0, 2.0, 2.0) and s.interpolation == "linear"
    assert s.round_intensities is True
    assert Settings(ivh_bin_number=MAX_BINS).ivh_bin_number == MAX_BINS
    with pytest.raises(InputError, match="bin_width"):  # replace() checks too
        Settings().replace(bin_width=-1)


def test_presets_still_load_and_round_trip_through_toml(tmp_path):
    for name in PRESETS:
        s = Settings.preset(name)
        path = tmp_path / f"{name}.toml"
        path.write_text(s.to_toml(comments=["written by a test", ""]))
        back = Settings.from_file(path)
        assert back == s.replace(name=str(path))
        assert Settings.from_dict(s.to_dict(), name=name) == s.replace(description="")


def test_unknown_keys_preset_and_name():
    with pytest.raises(InputError, match=r"unknown settings \['bin_numbr'\]"):
        Settings.from_dict({"bin_numbr": 3}, name="x.toml")
    with pytest.raises(InputError, match=r"unknown settings \['name'\]"):
        Settings.from_dict({"name": "mine"}, name="x.toml")
    with pytest.raises(InputError, match="x.toml: preset must be one of") as exc:
        Settings.from_dict({"preset": "nope"}, name="x.toml")
    _one_line(exc)
    with pytest.raises(InputError, match="x.toml: preset must be one of"):
        Settings.from_dict({"preset": 3}, name="x.toml")
    with pytest.raises(InputError, match="settings must be a table"):
        Settings.from_dict(["bin_number", 3], name="x.yaml")
    s = Settings.from_dict({"preset": "ibsi-a", "bin_width": 10}, name="x.toml")
    assert (s.name, s.bin_width, s.resegment_min) == ("x.toml", 10.0, -500.0)
    with pytest.raises(InputError, match="^x.toml: bin_width"):
        Settings.from_dict({"preset": "ibsi-a", "bin_width": "10"}, name="x.toml")


@pytest.mark.parametrize("suffix, text", [
    (".toml", 'preset = "default-2d"\nbin_number = 16\nfamilies = ["stat", "glcm"]\n'),
    (".yaml", "preset: default-2d\nbin_number: 16\nfamilies: [stat, glcm]\n"),
    (".yml", "preset: default-2d\nbin_number: 16\nfamilies:\n  - stat\n  - glcm\n"),
    (".json", '{"preset": "default-2d", "bin_number": 16, "families": ["stat", "glcm"]}'),
])
def test_toml_yaml_and_json_files_give_the_same_settings(tmp_path, suffix, text):
    path = tmp_path / f"s{suffix}"
    path.write_text(text)
    for s in (Settings.from_file(path), Settings.resolve(path), Settings.resolve(str(path)), Settings.from_toml(path)):
        assert (s.dimension, s.bin_number, s.families, s.name) == ("2d", 16, ("stat", "glcm"), str(path))


@pytest.mark.parametrize("suffix, text", [
    (".toml", 'bin_width = "25"\n'),
    (".yaml", "bin_width: '25'\n"),
    (".json", '{"bin_width": "25"}'),
])
def test_every_format_goes_through_the_same_validation(tmp_path, suffix, text):
    path = tmp_path / f"s{suffix}"
    path.write_text(text)
    with pytest.raises(InputError, match=r"bin_width must be a finite number > 0, not '25' \(a string\)") as exc:
        Settings.resolve(path)
    assert _one_line(exc).startswith(f"{path}: bin_width")


def test_json_nan_and_yaml_empty(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"bin_width": NaN}')
    with pytest.raises(InputError, match="bin_width must be a finite number > 0, not nan"):
        Settings.from_file(path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert Settings.from_file(empty) == Settings(name=str(empty))


@pytest.mark.parametrize("name, content, match", [
    ("bad.toml", b"bin_number = = 3\n", "invalid TOML: "),
    ("bad.yaml", b"bin_number: [3\n", r"invalid YAML: .*\(line \d+, column \d+\)"),
    ("bad.yaml", b"bin_number: 3\nbin_number: 4\n", "invalid YAML: .*key 'bin_number' given twice"),
    ("two.yaml", b"bin_number: 3\n---\nbin_number: 4\n", "holds 2 YAML documents"),
    ("bad.json", b'{"bin_number": 3,}', r"invalid JSON: .*\(line 1, column \d+\)"),
    ("dup.json", b'{"bin_number": 3, "bin_number": 4}', "invalid JSON: key 'bin_number' given twice"),
    ("latin1.toml", 'description = "caf\u00e9"\n'.encode("latin-1"), r"not UTF-8 text \(byte 0xe9 at offset"),
    ("list.yaml", b"- bin_number\n- 3\n", "settings must be a table"),
])
def test_bad_files_are_one_line(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as exc:
        Settings.resolve(path)
    assert _one_line(exc).startswith(str(path))


def test_missing_directory_and_other_paths(tmp_path):
    with pytest.raises(InputError, match="settings file not found") as exc:
        Settings.resolve(tmp_path / "nope.yaml")
    _one_line(exc)
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(InputError, match="is a directory, not a settings file") as exc:
        Settings.resolve(folder)
    _one_line(exc)
    with pytest.raises(InputError, match="is a directory"):
        Settings.from_file(tmp_path)
    with pytest.raises(InputError, match="not a settings preset .* nor a settings file"):
        Settings.resolve("defualt-3d")
    with pytest.raises(InputError, match="must be Settings, a preset name or a settings file path"):
        Settings.resolve(3)
    bom = tmp_path / "bom.json"
    bom.write_bytes("\ufeff".encode() + json.dumps({"bin_number": 8}).encode())
    assert Settings.resolve(bom).bin_number == 8
    assert Settings.resolve({"bin_number": 8}).bin_number == 8


def test_to_toml_escapes_descriptions(tmp_path):
    s = Settings(description='quote " backslash \\ tab \t del \x7f unicode \u00e9 \U0001F600')
    path = tmp_path / "s.toml"
    path.write_text(s.to_toml(), encoding="utf-8")
    assert Settings.from_file(path).description == s.description


def test_single_slice_settings_are_resolved_once_and_follow_their_inputs():
    s = Settings.preset("auto")
    first, fams = s.single_slice_settings(("stat", "morph", "glcm"))
    assert fams == ("stat", "glcm") and first.name == s.single_slice
    assert s.single_slice_settings(("stat", "morph", "glcm"))[0] is first  # asked per image: resolved once
    fresh = Settings.preset(s.single_slice).replace(families=fams, geometry_tolerance=s.geometry_tolerance,
                                                    resample_mask=s.resample_mask)
    assert first == fresh
    s.geometry_tolerance = 0.25  # settings are mutable: a changed input gives a new answer
    assert s.single_slice_settings(("stat", "morph", "glcm"))[0].geometry_tolerance == 0.25
    assert s.replace(single_slice=None).single_slice_settings(("stat",)) is None


def test_family_keys_are_their_modules_family_and_checking_them_imports_no_feature_module():
    """The registry names each family without importing it (a production's client checks settings
    and plans; only its workers extract), and every name is its module's own ``FAMILY``."""
    import importlib
    import subprocess
    import sys

    from medfeat.families import FAMILIES

    for key, fam in FAMILIES.items():
        assert importlib.import_module(fam.module).FAMILY == key == fam.key
    code = ("import sys; from medfeat.settings import Settings; from medfeat.families import check_families; "
            "s = Settings.resolve('default-3d'); check_families(['glcm', 'gift', 'morph'], s); "
            "Settings.resolve('default-2d').replace(families=('gift', 'stat')); "
            "print(sorted(m for m in sys.modules if m.startswith('medfeat.features.') and m != 'medfeat.features.base'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", [["log"], {"a": 1}, None, 3])
def test_a_filter_type_that_is_not_a_name_is_one_line(kind):
    """A list or table as a filter's type was unhashable in the registry lookup (TypeError, a traceback;
    found by fuzzing the settings)."""
    with pytest.raises(InputError, match="unknown filter type") as exc:
        Settings.from_dict({"filters": [{"type": kind}]}, name="s.toml")
    assert "\n" not in str(exc.value)
