"""One input check for every texture family (features/base.check_levels, check_distance): the same
refusal, with the same one-line reason, whichever family is handed a bad discretised image."""
import numpy as np
import pytest

from medfeat.features.base import check_distance, check_levels
from medfeat.features.glcm import glcm_features
from medfeat.features.gldzm import gldzm_features
from medfeat.features.glrlm import glrlm_features
from medfeat.features.glszm import glszm_features
from medfeat.features.ngldm import ngldm_features
from medfeat.features.ngtdm import ngtdm_features

GOOD = np.array([[[1, 2, 2], [0, 1, 3], [3, 3, 1]]], dtype=np.int32)
FAMILIES = {
    "glcm": lambda lv: glcm_features(lv, 4, ("3D, averaged",)),
    "glrlm": lambda lv: glrlm_features(lv, 4, ("3D, averaged",)),
    "glszm": lambda lv: glszm_features(lv, 4, ("3D",)),
    "gldzm": lambda lv: gldzm_features(lv, 4, ("3D",)),
    "ngtdm": lambda lv: ngtdm_features(lv, ("3D",)),
    "ngldm": lambda lv: ngldm_features(lv, ("3D",)),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_accepts_the_same_small_image(family):
    out = FAMILIES[family](GOOD)
    assert out and all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bad, error, message", [
    (GOOD.astype(np.float64), TypeError, "levels must be an integer array, got dtype float64"),
    (GOOD - 1, ValueError, "grey levels must be >= 0 (0 outside the ROI)"),
    (GOOD.astype(np.int64) * 2**31, ValueError, "grey levels must be in 1.."),  # 1..n_levels or 1..2**31-1
    (GOOD[np.newaxis], ValueError, "levels must be a (z, y, x) array, got shape (1, 1, 3, 3)"),
])
def test_every_family_refuses_a_bad_image_the_same_way(family, bad, error, message):
    with pytest.raises(error) as info:
        FAMILIES[family](bad)
    assert str(info.value).startswith(message)


def test_levels_and_distance_checks_by_hand():
    assert check_levels(GOOD[0]).shape == (1, 3, 3)  # a 2D image is one slice
    assert check_levels(GOOD.astype(bool)).dtype == bool
    assert check_levels(np.zeros((0, 4, 4), np.uint8)).size == 0  # an empty ROI box passes the check
    with pytest.raises(ValueError, match="must be a positive integer, got 0"):
        check_levels(GOOD, n_levels=0)
    with pytest.raises(ValueError, match=r"grey levels must be in 1..2 inside the ROI, got 3"):
        check_levels(GOOD, n_levels=2)
    assert check_distance(2) == 2 and check_distance(3.0) == 3
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"distance must be a positive integer, got {bad!r}"):
            check_distance(bad)
    with pytest.raises(ValueError, match="distance must be a positive integer"):
        glcm_features(GOOD, 4, ("3D, averaged",), distance=0)
    with pytest.raises(ValueError, match="distance must be a positive integer"):
        ngtdm_features(GOOD, ("3D",), distance=-2)
