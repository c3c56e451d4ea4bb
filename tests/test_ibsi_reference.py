"""Every IBSI reference value of the foundation families, through the public API.

Digital phantom: all rows of stat, ih, ivh, GLCM, GLRLM, NGTDM, NGLDM, GLSZM and GLDZM (every
aggregation method).
CT phantom configuration A (NIfTI image + mask, as ../shared/data/ibsi/configs.md prescribes):
all rows of the same families.
Morphology and local intensity (IBSI 3.1, 3.2): every digital phantom and configuration A row.
CT phantom configurations B-E (interpolation to 2 mm: bilinear in-plane, trilinear, tricubic spline;
ROI partial-volume threshold 0.5; re-segmentation and outlier filtering; presets ``ibsi-b``..``ibsi-e``):
all rows of the same families.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import medfeat
from medfeat.features.base import column

from conftest import SHARED, digital_phantom, ibsi_reference, matches_reference

FAMILY_PREFIX = {"stat": "stat.", "ih": "ih.", "ivh": "ivh.", "glcm": "cm.", "glrlm": "rlm."}
FAMILY_PREFIX["ngtdm"] = ("ngt.", "ntg.")  # IBSI's manual tags complexity "ntg.complexity" (a typo)
FAMILY_PREFIX["ngldm"] = "ngl."
FAMILY_PREFIX["glszm"] = "szm."
FAMILY_PREFIX["gldzm"] = "dzm."
# morphology and local intensity: checked on the digital phantom and configuration A
PHANTOM_A_PREFIX = {**FAMILY_PREFIX, "morph": "morph.", "li": "loc."}
# reference tag -> medfeat's tag, where IBSI's manual has a typo
TAG_ALIASES = {"ntg.complexity": "ngt.complexity"}


def _rows(data: str, prefixes: dict = FAMILY_PREFIX):
    if not (SHARED / "data" / "ibsi" / "reference_values.csv").exists():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="needs ../shared/data/ibsi (CI has it)"))]
    out = []
    for fam, prefix in prefixes.items():
        for row in ibsi_reference(prefix, data):
            agg = row["aggregation"] or None
            out.append(pytest.param(fam, row, id=f"{row['tag']}[{row['aggregation'] or '-'}]"))
    return out


@functools.cache
def _phantom_features() -> dict[str, float]:
    image, mask = digital_phantom()
    return medfeat.extract(medfeat.Image(image, spacing=(2.0, 2.0, 2.0)), mask, "ibsi-phantom")


@functools.cache
def _config_a_features() -> dict[str, float]:
    base = SHARED / "data" / "ibsi" / "ct_phantom" / "nifti"
    image = medfeat.read_image(base / "image" / "phantom.nii.gz")
    mask = medfeat.read_image(base / "mask" / "mask.nii.gz")
    # configs.md: from NIfTI, convert image and mask to float32 and round to the nearest integer.
    image.array = np.round(image.array.astype(np.float32))
    mask.array = np.round(mask.array.astype(np.float32))
    return medfeat.extract(image, mask, "ibsi-a")


@functools.cache
def _config_features(config: str) -> dict[str, float]:
    """Features of the CT phantom (NIfTI) under preset ``ibsi-<config>``, read as configs.md says."""
    base = SHARED / "data" / "ibsi" / "ct_phantom" / "nifti"
    image = medfeat.read_image(base / "image" / "phantom.nii.gz")
    mask = medfeat.read_image(base / "mask" / "mask.nii.gz")
    image.array = np.round(image.array.astype(np.float32))
    mask.array = np.round(mask.array.astype(np.float32))
    return medfeat.extract(image, mask, f"ibsi-{config.lower()}")


def _check(features, row):
    name = column(TAG_ALIASES.get(row["tag"], row["tag"]), row["aggregation"] or None)
    assert name in features, f"{name} not computed"
    got = features[name]
    assert matches_reference(got, row["value"], row["tolerance"]), (
        f"{row['tag']} [{row['aggregation']}] = {got!r}, IBSI {row['value']} +/- {row['tolerance']}")


@pytest.mark.parametrize("family,row", _rows("dig. phantom", PHANTOM_A_PREFIX))
def test_digital_phantom(family, row):
    _check(_phantom_features(), row)


@pytest.mark.parametrize("family,row", _rows("config. A", PHANTOM_A_PREFIX))
def test_ct_phantom_config_a(family, row):
    _check(_config_a_features(), row)


def _config_rows(configs: str = "BCDE"):
    out = []
    for config in configs:
        for p in _rows(f"config. {config}"):
            if p.values[1] is None:  # ../shared is absent: one skipped case
                return [pytest.param(None, None, None, marks=p.marks)]
            out.append(pytest.param(config, *p.values, id=f"{config}-{p.id}"))
    return out


@pytest.mark.parametrize("config,family,row", _config_rows())
def test_ct_phantom_configs_b_to_e(config, family, row):
    _check(_config_features(config), row)


def test_reference_rows_are_all_covered():
    """The table holds the expected number of rows for these families: nothing silently skipped."""
    if not (SHARED / "data" / "ibsi" / "reference_values.csv").exists():
        pytest.skip("needs ../shared/data/ibsi (CI has it)")
    n_phantom = sum(len(ibsi_reference(p, "dig. phantom")) for p in FAMILY_PREFIX.values())
    n_a = sum(len(ibsi_reference(p, "config. A")) for p in FAMILY_PREFIX.values())
    # ... then NGTDM, NGLDM, GLSZM, GLDZM: 2D, 2.5D, 3D (config. A: 2D, 2.5D)
    assert n_phantom == 18 + 23 + 6 + 25 * 6 + 16 * 6 + 5 * 3 + 17 * 3 + 16 * 3 * 2
    assert n_a == 18 + 23 + 6 + 25 * 4 + 16 * 4 + 5 * 2 + 17 * 2 + 16 * 2 * 2
    for data in ("dig. phantom", "config. A"):  # morphology (25 of its 29 features), local intensity (2)
        assert len(ibsi_reference("morph.", data)) == 25 and len(ibsi_reference("loc.", data)) == 2
    n = {c: sum(len(ibsi_reference(p, f"config. {c}")) for p in FAMILY_PREFIX.values()) for c in "BCDE"}
    assert n["B"] == n_a  # B is slice-wise like A
    assert n["C"] == n["D"] == n["E"] == 18 + 23 + 6 + 25 * 2 + 16 * 2 + 5 + 17 + 16 * 2  # 3D only
