"""The feature families: each :class:`Family` names its module in :mod:`medfeat.features`, how it is
computed from a :class:`~medfeat.roi.ROI` and what it needs. :data:`FAMILIES` keys each family by
its module's own ``FAMILY`` constant."""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from medfeat.errors import InputError
from medfeat.features.base import FeatureDef, column, undirected_aggregations

if TYPE_CHECKING:  # settings imports this module (to check family names); the ROI imports settings
    from medfeat.roi import ROI
    from medfeat.settings import Settings

# families that describe a volume: left out for single-slice images under ``single_slice`` settings
VOLUME_ONLY_FAMILIES = ("morph", "li")
# Families that describe the ROI's shape or need the image as read: not computed on filtered images.
SHAPE_FAMILIES = ("morph", "morph2d", "li", "gift")


@dataclass(frozen=True)
class Family:
    """A feature family: its module (FAMILY, FEATURES, docs), how it is computed from a ROI, what it needs."""

    key: str  # its name in settings and column prefixes: the module's ``FAMILY`` (a test checks they agree)
    module: str
    compute: Callable[[ROI], dict[str, float]]
    textured: bool  # per-aggregation features
    min_voxels: int = 1
    features_for: Callable[[Settings], tuple[FeatureDef, ...]] | None = None  # when columns depend on settings
    undirected: bool = False  # matrices without directions: IBSI's "2D", "2.5D", "3D" methods
    uses: tuple[str, ...] = ()  # the ROI's cached arrays it reads (the others are released early)
    reads_grey: bool = True  # reads the ROI's grey intensities (gift reads the colour pixels only)

    @cached_property
    def features(self) -> tuple[FeatureDef, ...]:
        return importlib.import_module(self.module).FEATURES

    def feature_defs(self, settings: Settings) -> tuple[FeatureDef, ...]:
        """This family's features under ``settings`` (:attr:`features` unless they depend on them)."""
        return self.features if self.features_for is None else self.features_for(settings)

    def aggregations(self, settings: Settings) -> tuple[str, ...]:
        """The aggregation methods of this family's columns under ``settings`` (none if not textured)."""
        if not self.textured:
            return ()
        aggs = settings.texture_aggregations
        return undirected_aggregations(aggs) if self.undirected else aggs


def _stat(roi: ROI) -> dict[str, float]:
    from medfeat.features.intensity_statistics import statistics_features

    return statistics_features(roi.values)


def _ih(roi: ROI) -> dict[str, float]:
    from medfeat.features.intensity_histogram import histogram_features

    levels, n = roi.level_values
    return histogram_features(levels, n)


def _ivh(roi: ROI) -> dict[str, float]:
    from medfeat.features.intensity_volume_histogram import ivh_features

    return ivh_features(*roi.ivh_representation())


def _glcm(roi: ROI) -> dict[str, float]:
    from medfeat.features.glcm import glcm_features

    s = roi.settings
    return glcm_features(roi.levels, roi.n_levels, s.texture_aggregations, s.distance)


def _glrlm(roi: ROI) -> dict[str, float]:
    from medfeat.features.glrlm import glrlm_features

    return glrlm_features(roi.levels, roi.n_levels, roi.settings.texture_aggregations)


def _ngtdm(roi: ROI) -> dict[str, float]:
    from medfeat.features.ngtdm import ngtdm_features

    s = roi.settings
    return ngtdm_features(roi.levels, s.texture_aggregations, s.ngtdm_distance)


def _ngldm(roi: ROI) -> dict[str, float]:
    from medfeat.features.ngldm import ngldm_features

    s = roi.settings
    return ngldm_features(roi.levels, s.texture_aggregations, s.ngldm_distance, s.ngldm_alpha)


def _glszm(roi: ROI) -> dict[str, float]:
    from medfeat.features.glszm import glszm_features

    return glszm_features(roi.levels, roi.n_levels, roi.settings.texture_aggregations)


def _gldzm(roi: ROI) -> dict[str, float]:
    from medfeat.features.gldzm import gldzm_features

    # IBSI 3.9: zones from the intensity mask, distances from the morphological mask
    return gldzm_features(roi.levels, roi.n_levels, roi.settings.texture_aggregations, roi.morph_mask)


def _morph(roi: ROI) -> dict[str, float]:
    from medfeat.features.morphology import morphology_features

    # IBSI 3.1: always 3D, shape from the morphological mask, intensities from the intensity mask
    out = morphology_features(roi.morph_mask, roi.image, roi.mask, roi.spacing,
                              autocorrelation=roi.settings.morph_autocorrelation)
    return {column(tag): v for tag, v in out.items()}


def _morph_defs(settings: Settings) -> tuple[FeatureDef, ...]:
    from medfeat.features.morphology import feature_defs

    return feature_defs(settings.morph_autocorrelation)


def _morph2d(roi: ROI) -> dict[str, float]:
    from medfeat.features.morphology_2d import morphology_2d_features

    out = morphology_2d_features(roi.morph_mask, roi.spacing)
    return {column(tag): v for tag, v in out.items()}


def _li(roi: ROI) -> dict[str, float]:
    from medfeat.features.local_intensity import local_intensity_features

    around, box = roi.surroundings
    out = local_intensity_features(around, box, roi.image, roi.mask, roi.spacing)
    return {column(tag): v for tag, v in out.items()}

def _gift(roi: ROI) -> dict[str, float]:
    from medfeat.features.gift import feature_row, gift_features, gift_rgb, packed_feature_row

    # GIFT works on the whole picture (the ROI's box), in colour, forced to 256 x 256
    rgb = gift_rgb(roi.pixels if roi.pixels is not None else roi.image, roi.source)
    features = gift_features(rgb, grey_levels=roi.settings.gift_grey_levels)
    return packed_feature_row(features) if roi.pack_gift else feature_row(features)


def _gift_defs(settings: Settings) -> tuple[FeatureDef, ...]:
    from medfeat.features.gift import feature_defs

    return feature_defs(settings.gift_grey_levels)


_LEVELS = ("levels", "n_levels")

class FamilyRegistry(Mapping[str, Family]):
    """Families by key (:attr:`Family.key`, the module's ``FAMILY``), in the order given. A feature
    module is imported only when a family computes or lists its features, not to check a family's
    name: they import numba and scipy (~0.4 s), which the client of a production (it plans, checks
    settings and assembles; its workers extract) and a command that extracts nothing need not pay."""

    def __init__(self, families: Iterable[Family]):
        self._by_key: dict[str, Family] = {}
        for fam in families:
            if fam.key in self._by_key:
                raise RuntimeError(f"feature family {fam.key!r} of {fam.module} is also {self._by_key[fam.key].module}'s")
            self._by_key[fam.key] = fam

    def __getitem__(self, key: str) -> Family:
        return self._by_key[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"FamilyRegistry({list(self)})"


FAMILIES = FamilyRegistry((
    Family("stat", "medfeat.features.intensity_statistics", _stat, textured=False, uses=("values",)),
    Family("ih", "medfeat.features.intensity_histogram", _ih, textured=False, uses=("level_values",)),
    Family("ivh", "medfeat.features.intensity_volume_histogram", _ivh, textured=False, uses=("values",)),
    Family("glcm", "medfeat.features.glcm", _glcm, textured=True, min_voxels=2, uses=_LEVELS),
    Family("glrlm", "medfeat.features.glrlm", _glrlm, textured=True, uses=_LEVELS),
    Family("ngtdm", "medfeat.features.ngtdm", _ngtdm, textured=True, min_voxels=2, undirected=True, uses=_LEVELS),
    Family("ngldm", "medfeat.features.ngldm", _ngldm, textured=True, undirected=True, uses=_LEVELS),
    Family("glszm", "medfeat.features.glszm", _glszm, textured=True, undirected=True, uses=_LEVELS),
    Family("gldzm", "medfeat.features.gldzm", _gldzm, textured=True, undirected=True, uses=_LEVELS),
    Family("gift", "medfeat.features.gift", _gift, textured=False, features_for=_gift_defs, reads_grey=False),
    Family("morph", "medfeat.features.morphology", _morph, textured=False, features_for=_morph_defs),
    Family("morph2d", "medfeat.features.morphology_2d", _morph2d, textured=False),
    Family("li", "medfeat.features.local_intensity", _li, textured=False),
))


def filtered_families(fams: Iterable[str]) -> tuple[str, ...]:
    """The families a filtered image gets: all but the shape ones (:data:`SHAPE_FAMILIES`)."""
    return tuple(f for f in fams if f not in SHAPE_FAMILIES)


def check_families(families: Iterable[str] | None, settings: Settings) -> tuple[str, ...]:
    """``families`` (default: ``settings.families``) as a tuple; unknown names are an :class:`InputError`."""
    fams = settings.families if families is None else tuple(families)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise InputError(None, f"unknown feature families {unknown}; available: {', '.join(FAMILIES)}")
    return fams
