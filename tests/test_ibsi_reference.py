"""Every IBSI reference value of the foundation families, through the public API.

Digital phantom: all rows of stat, ih, ivh, GLCM and GLRLM (every aggregation method).
CT phantom configuration A (NIfTI image + mask, as ../shared/data/ibsi/configs.md prescribes):
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


def _rows(data: str):
    if not (SHARED / "data" / "ibsi" / "reference_values.csv").exists():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="needs ../shared/data/ibsi (CI has it)"))]
    out = []
    for fam, prefix in FAMILY_PREFIX.items():
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


def _check(features, row):
    name = column(row["tag"], row["aggregation"] or None)
    assert name in features, f"{name} not computed"
    got = features[name]
    assert matches_reference(got, row["value"], row["tolerance"]), (
        f"{row['tag']} [{row['aggregation']}] = {got!r}, IBSI {row['value']} +/- {row['tolerance']}")


@pytest.mark.parametrize("family,row", _rows("dig. phantom"))
def test_digital_phantom(family, row):
    _check(_phantom_features(), row)


@pytest.mark.parametrize("family,row", _rows("config. A"))
def test_ct_phantom_config_a(family, row):
    _check(_config_a_features(), row)


def test_reference_rows_are_all_covered():
    """The table holds the expected number of rows for these families: nothing silently skipped."""
    if not (SHARED / "data" / "ibsi" / "reference_values.csv").exists():
        pytest.skip("needs ../shared/data/ibsi (CI has it)")
    n_phantom = sum(len(ibsi_reference(p, "dig. phantom")) for p in FAMILY_PREFIX.values())
    n_a = sum(len(ibsi_reference(p, "config. A")) for p in FAMILY_PREFIX.values())
    assert n_phantom == 18 + 23 + 6 + 25 * 6 + 16 * 6
    assert n_a == 18 + 23 + 6 + 25 * 4 + 16 * 4
