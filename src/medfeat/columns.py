"""The feature columns a row holds for given settings and families, in their stable order."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from medfeat.families import FAMILIES, check_families, filtered_families
from medfeat.features.base import FeatureDef, column
from medfeat.settings import Settings


@dataclass(frozen=True)
class Column:
    """What a feature column holds (for the long layout and for documentation)."""

    name: str
    family: str
    feature: FeatureDef
    aggregation: str = ""


def feature_columns(settings: Settings | str | None = None, families: Iterable[str] | None = None) -> list[Column]:
    """The feature columns :func:`medfeat.extract` returns for these settings, in their stable order."""
    s = Settings.resolve(settings)
    fams = check_families(families, s)
    cols = family_columns(s, fams)
    alt = s.single_slice_settings(fams)
    if alt is not None:  # volumes' columns, then those only single-slice images have
        seen = {c.name for c in cols}
        cols += [c for c in family_columns(*alt) if c.name not in seen]
    if s.filters:
        from medfeat.filters.registry import label

        base = family_columns(s.replace(filters=()), filtered_families(fams))
        cols = (cols if s.original else []) + [Column(label(spec) + "__" + c.name, c.family, c.feature, c.aggregation)
                                               for spec in s.filters for c in base]
    return cols


def single_slice_only_columns(settings: Settings | str | None = None, families: Iterable[str] | None = None
                              ) -> tuple[set[str], set[str]]:
    """For settings with ``single_slice``: (columns only volumes get, columns only single-slice
    images get); two empty sets otherwise. A table may leave out those no row fills."""
    s = Settings.resolve(settings)
    fams = check_families(families, s)
    alt = s.single_slice_settings(fams)
    if alt is None:
        return set(), set()
    vol, one = {c.name for c in family_columns(s, fams)}, {c.name for c in family_columns(*alt)}
    return vol - one, one - vol


def family_columns(s: Settings, fams: tuple[str, ...]) -> list[Column]:
    """The columns of families ``fams`` under ``s`` (no single-slice alternative, no filter prefix)."""
    cols = []
    for key in fams:
        fam = FAMILIES[key]
        if fam.textured:
            for agg in fam.aggregations(s):
                cols.extend(Column(column(f.tag, agg), key, f, agg) for f in fam.features)
        else:
            cols.extend(Column(column(f.tag), key, f) for f in fam.feature_defs(s))
    return cols

