"""Image and mask must share their grid (shape, spacing, origin, direction) within a tolerance, or
the mask is refused with the reason; ``resample_mask`` resamples it onto the image's grid instead.
Real data: a sarcoma CT and its tumour mask from ``../shared/data/sts``, re-written shifted or flipped."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import medfeat
from medfeat.errors import InputError

STS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sts" / "nifti" / "STS_001"
pytestmark = pytest.mark.skipif(not STS.is_dir(), reason="../shared/data/sts is absent (CI has it)")
FAMILIES = ["stat", "glcm"]


def _rewrite(src: Path, dst: Path, shift_mm=(0.0, 0.0, 0.0), flip_x: bool = False) -> Path:
    img = nib.load(src)
    data, affine = np.asanyarray(img.dataobj), img.affine.copy()
    if flip_x:  # the same voxels in the same places, stored with the x axis reversed
        data = data[::-1]
        affine[:3, 3] = affine[:3, 3] + affine[:3, 0] * (data.shape[0] - 1)
        affine[:3, 0] = -affine[:3, 0]
    affine[:3, 3] += np.asarray(shift_mm)
    nib.save(nib.Nifti1Image(data, affine), dst)
    return dst


def test_shifted_or_flipped_masks_are_refused(tmp_path):
    image, mask = STS / "CT_image.nii.gz", STS / "CT_mask.nii.gz"
    shifted = _rewrite(mask, tmp_path / "shifted.nii.gz", shift_mm=(0, 0, 50))
    with pytest.raises(InputError, match=r"origin is 50 mm from the image's.*--resample-mask"):
        medfeat.extract(image, shifted, "default-3d", families=FAMILIES)
    flipped = _rewrite(mask, tmp_path / "flipped.nii.gz", flip_x=True)
    with pytest.raises(InputError, match="axes point other ways"):
        medfeat.extract(image, flipped, "default-3d", families=FAMILIES)
    # within the tolerance: a shift of a thousandth of a voxel is the same grid
    tiny = _rewrite(mask, tmp_path / "tiny.nii.gz", shift_mm=(1e-4, 0, 0))
    want = medfeat.extract(image, mask, "default-3d", families=FAMILIES)
    assert medfeat.extract(image, tiny, "default-3d", families=FAMILIES) == want


def test_resample_mask_puts_a_flipped_mask_back_on_the_image_grid(tmp_path):
    image, mask = STS / "CT_image.nii.gz", STS / "CT_mask.nii.gz"
    flipped = _rewrite(mask, tmp_path / "flipped.nii.gz", flip_x=True)
    s = medfeat.Settings.preset("default-3d").replace(resample_mask=True)
    want = medfeat.extract(image, mask, "default-3d", families=FAMILIES)
    got = medfeat.extract(image, flipped, s, families=FAMILIES)
    assert got == pytest.approx(want, rel=1e-12)
    # shifted by whole voxels along z: the ROI moves with it (not the same features), and stays a ROI
    dz = float(nib.load(mask).header.get_zooms()[2])
    shifted = _rewrite(mask, tmp_path / "shifted.nii.gz", shift_mm=(0, 0, 2 * dz))
    moved = medfeat.extract(image, shifted, s, families=FAMILIES)
    assert moved["stat_mean"] != pytest.approx(want["stat_mean"], rel=1e-6)
