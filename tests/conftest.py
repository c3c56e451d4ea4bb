"""Shared test helpers: the ../shared data folder and the IBSI reference table."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
IBSI = SHARED / "data" / "ibsi"


def require_shared(*parts: str) -> Path:
    """Path under ../shared; skips the calling test with a reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/{'/'.join(parts)} (absent in this clone; CI has it)")
    return path


def ibsi_reference(family_prefix: str, data: str) -> list[dict]:
    """Rows of reference_values.csv whose tag starts with ``family_prefix`` (e.g. ``"cm."``) for one
    data set (``"dig. phantom"``, ``"config. A"`` ...); value and tolerance parsed to float.  A row whose
    value the table leaves empty (config. C ``morph.comp.1``) gets ``value`` None."""
    path = require_shared("data", "ibsi", "reference_values.csv")
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["tag"].startswith(family_prefix) and r["data"] == data:
                r = dict(r)
                r["value"] = float(r["value"]) if r["value"].strip() else None
                r["tolerance"] = float(r["tolerance"])
                rows.append(r)
    return rows


def matches_reference(computed: float, value: float, tolerance: float) -> bool:
    """IBSI comparison: within the tolerance, or (tolerance 0) equal at the 3 significant digits given."""
    if computed is None or not np.isfinite(computed):
        return False
    if tolerance > 0:
        return abs(computed - value) <= tolerance + 1e-9 * max(1.0, abs(value))
    if value == 0:
        return abs(computed) < 5e-4
    digits = 3 - int(math.floor(math.log10(abs(value)))) - 1
    return round(computed, digits) == round(value, digits) or math.isclose(
        float(f"{computed:.3g}"), float(f"{value:.3g}"), rel_tol=1e-12
    )


def digital_phantom() -> tuple[np.ndarray, np.ndarray]:
    """The IBSI digital phantom as ``(image, mask)`` arrays in (z, y, x) order (4 x 4 x 5)."""
    import nibabel as nib

    img = require_shared("data", "ibsi", "digital_phantom", "image", "phantom.nii.gz")
    msk = require_shared("data", "ibsi", "digital_phantom", "mask", "mask.nii.gz")
    image = np.asarray(nib.load(img).dataobj).transpose(2, 1, 0).astype(np.float64)
    mask = np.asarray(nib.load(msk).dataobj).transpose(2, 1, 0) > 0
    return image, mask


def digital_phantom_levels() -> np.ndarray:
    """Discretised digital phantom (its grey levels are already 1..6): int array, 0 outside the ROI."""
    image, mask = digital_phantom()
    return np.where(mask, image, 0).astype(np.int64)
