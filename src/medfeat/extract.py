"""One image (and its mask) -> one row of features.

Pipeline, following IBSI chapter 2: crop to the ROI's bounding box, optional interpolation of the
image and the ROI to a new spacing (:mod:`medfeat.interpolation`), optional rounding,
re-segmentation (range, then outliers), discretisation, then the requested feature families.

>>> import medfeat
>>> row = medfeat.extract("ct.nii.gz", mask="tumour.nii.gz", settings="default-3d")  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import tomllib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, Callable, Iterable

import numpy as np

from medfeat import processing
from medfeat.errors import InputError
from medfeat.features.base import (AGGREGATIONS_2D, AGGREGATIONS_3D, FeatureDef, check_aggregations, column,
                                   undirected_aggregations)
from medfeat.image import Image

# families that describe a volume: left out for single-slice images under ``single_slice`` settings
VOLUME_ONLY_FAMILIES = ("morph", "li")
PRESETS = ("auto", "default-2d", "default-3d", "ibsi-phantom", "ibsi-a", "ibsi-b", "ibsi-c", "ibsi-d", "ibsi-e")


# ----------------------------------------------------------------------------- settings checks
# Every Settings field is checked once, in Settings.__post_init__, by the function named for it in
# _CHECKS: it returns the field's normalised value (tuples, floats) or raises _Bad with the reason,
# which __post_init__ turns into a one-line InputError naming the settings file (or preset) and key.

# The most bins a fixed-bin-number discretisation may ask for: the intensity histogram and the IVH
# allocate arrays this long per ROI (IBSI uses 32 and 1000; a typo once asked for a 15 GiB IVH).
MAX_BINS = 1_000_000
SETTINGS_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


class _Bad(ValueError):
    """A settings value's problem (the key is added by Settings.__post_init__)."""


def _show(value: Any) -> str:
    """A value for an error message: its repr (shortened) and, when not obvious, its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {bool: "a boolean", str: "a string", list: "a list", tuple: "a list", dict: "a table"}.get(type(value))
    return f"{text} ({kind})" if kind else text


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _finite(v: Any) -> bool:
    """A finite number (not a boolean, a string, NaN or infinite)."""
    try:
        return _is_number(v) and math.isfinite(float(v))
    except OverflowError:  # an int beyond float's range
        return False


def _integer(lo: int, hi: int | None = None, note: str = "") -> Callable[[Any], int]:
    want = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"

    def check(v: Any) -> int:
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            n = int(v)
        elif _finite(v) and float(v).is_integer():  # 32.0 from a JSON writer
            n = int(v)
        else:
            raise _Bad(f"must be {want}{note}, not {_show(v)}")
        if n < lo or (hi is not None and n > hi):
            raise _Bad(f"must be {want}{note}, not {_show(n)}")
        return n

    return check


def _real(positive: bool = False, optional: bool = False, hi: float | None = None,
          what: str = "") -> Callable[[Any], float | None]:
    want = what or ("a finite number > 0" if positive else "a finite number")

    def check(v: Any) -> float | None:
        if v is None and optional:
            return None
        if not _finite(v) or (positive and v <= 0) or (hi is not None and v > hi):
            raise _Bad(f"must be {want}{' (or left out)' if optional else ''}, not {_show(v)}")
        return float(v)

    return check


def _boolean(v: Any) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise _Bad(f"must be true or false, not {_show(v)}{' (a number)' if _is_number(v) else ''}")
    return bool(v)


def _choice(choices: Iterable[str], optional: bool = False) -> Callable[[Any], str | None]:
    choices = tuple(choices)
    want = ", ".join(repr(c) for c in choices)

    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if not isinstance(v, str) or v not in choices:
            raise _Bad(f"must be one of {want}{' (or left out)' if optional else ''}, not {_show(v)}")
        return v

    return check


def _names(v: Any, what: str) -> tuple:
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
        raise _Bad(f"must be a list of {what}, not {_show(v)}")
    bad = [x for x in v if not isinstance(x, str)]
    if bad:
        raise _Bad(f"must be a list of {what} (strings), not {_show(list(v))}")
    dup = sorted({x for x in v if list(v).count(x) > 1})
    if dup:
        raise _Bad(f"names {dup} more than once")
    return tuple(v)


def _families(v: Any) -> tuple[str, ...]:
    fams = _names(v, "feature family names")
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise _Bad(f"has unknown feature families {unknown}; available: {', '.join(FAMILIES)}")
    return fams


def _aggregations(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    aggs = _names(v, "IBSI aggregation methods")
    if not aggs:
        raise _Bad("is empty: name at least one method, or leave it out for every method of the dimension")
    try:
        return check_aggregations(aggs)
    except ValueError as exc:
        raise _Bad(f"has an {exc}") from None


def _interpolation(v: Any) -> str | None:
    from medfeat.interpolation import METHODS

    return _choice(METHODS, optional=True)(v)


def _roi_interpolation(v: Any) -> str:
    from medfeat.interpolation import ROI_METHODS

    return _choice(ROI_METHODS)(v)


def _spacing(v: Any) -> tuple[float, ...] | None:
    if v is None:
        return None
    want = "2 (y, x: in-plane) or 3 (z, y, x) positive spacings in mm"
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, np.ndarray)):
        raise _Bad(f"must be a list of {want}, not {_show(v)}")
    if len(v) not in (2, 3) or not all(_finite(x) and x > 0 for x in v):
        raise _Bad(f"must be {want}, not {_show(list(v) if isinstance(v, tuple) else v)}")
    return tuple(float(x) for x in v)


def _filters(v: Any) -> tuple:
    """A list of filter tables (``{type = "log", sigma_mm = 1.5}``), each checked and completed by
    :mod:`medfeat.filters.registry`."""
    if v is None:
        return ()
    if isinstance(v, dict):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise _Bad(f"must be a list of filter tables, not {_show(v)}")
    from medfeat.filters.registry import normalize

    out = []
    for k, spec in enumerate(v):
        try:
            out.append(normalize(spec))
        except InputError as exc:
            raise _Bad(f"[{k}]: {exc.reason}") from None
    return tuple(out)


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad(f"must be a string, not {_show(v)}")
    return v


_DISCRETISATIONS = ("fbn", "fbs", "none")
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "dimension": _choice(("2d", "3d")),
    "aggregations": _aggregations,
    "round_intensities": _boolean,
    "resegment_min": _real(optional=True),
    "resegment_max": _real(optional=True),
    "outlier_sigma": _real(positive=True, optional=True),
    "discretisation": _choice(_DISCRETISATIONS),
    "bin_number": _integer(1, MAX_BINS),
    "bin_width": _real(positive=True),
    "ivh_discretisation": _choice(_DISCRETISATIONS),
    "ivh_bin_number": _integer(1, MAX_BINS, " (the IVH allocates arrays of this length; IBSI uses 1000)"),
    "ivh_bin_width": _real(positive=True),
    "distance": _integer(1),
    "ngtdm_distance": _integer(1),
    "ngldm_distance": _integer(1),
    "ngldm_alpha": _integer(0),
    "gift_grey_levels": _integer(1, 94, " (4 is GIFT's)"),
    "morph_autocorrelation": _boolean,
    "families": _families,
    "interpolation": _interpolation,
    "interpolation_spacing": _spacing,
    "roi_interpolation": _roi_interpolation,
    "roi_partial_volume": _real(positive=True, hi=1.0, what="a number in (0, 1]"),
    "geometry_tolerance": _real(positive=True, hi=0.5, what="a number in (0, 0.5] (a fraction of a voxel)"),
    "resample_mask": _boolean,
    "single_slice": _choice(tuple(p for p in PRESETS if p != "auto"), optional=True),
    "filters": _filters,
    "original": _boolean,
    "description": _text,
}


@dataclass
class Settings:
    """Processing and feature settings (one image -> one row). See the presets in ``medfeat/presets``.

    Attributes
    ----------
    dimension : {"2d", "3d"}
        Texture computed slice by slice (2D/2.5D aggregation) or over the volume (3D).
    aggregations : tuple of str or None
        IBSI aggregation methods for texture families; None means every method of ``dimension``.
    round_intensities : bool
        Round intensities to the nearest integer first (IBSI CT configurations), after
        interpolation when there is one.
    resegment_min, resegment_max : float or None
        Re-segmentation range; voxels outside leave the intensity mask.
    outlier_sigma : float or None
        Outlier re-segmentation: drop voxels beyond mean +/- sigma * sd (after the range).
    discretisation : {"fbn", "fbs", "none"}
        Texture and intensity-histogram discretisation: fixed bin number ``bin_number``, fixed bin
        size ``bin_width`` (lower bound = ``resegment_min`` when set), or none (integer images:
        grey level = value - minimum + 1).
    ivh_discretisation : {"fbn", "fbs", "none"}
        Discretisation for the intensity-volume histogram (``ivh_bin_number``, ``ivh_bin_width``).
    distance : int
        GLCM neighbour distance (Chebyshev).
    ngtdm_distance, ngldm_distance : int
        NGTDM / NGLDM neighbourhood radius (Chebyshev; IBSI default 1).
    ngldm_alpha : int
        NGLDM coarseness parameter: neighbours within this many grey levels are dependent (IBSI 0).
    gift_grey_levels : int
        Grey bins of the ``gift`` family: 4 is GNU GIFT's; 1..94. Any other value makes the gift
        features incompatible with GIFT's (see :mod:`medfeat.features.gift`).
    morph_autocorrelation : bool
        Moran's I and Geary's C in the ``morph`` family (IBSI 3.1.28-29); False leaves these two
        columns out: they cost more than the rest of the family (~50 ms for a 117k-voxel ROI).
    families : tuple of str
        Feature families to compute, see :data:`FAMILIES`.
    interpolation : str or None
        Intensity interpolation to ``interpolation_spacing`` before re-segmentation (IBSI 2.4, see
        :mod:`medfeat.interpolation`): ``"nearest"``, ``"linear"`` (alias ``"bilinear"``,
        ``"trilinear"``) or ``"cubic"`` (cubic B-spline; alias ``"bicubic"``, ``"tricubic"``).
        None with a spacing given means ``"linear"``.
    interpolation_spacing : tuple of float or None
        New voxel spacing in mm: ``(y, x)`` interpolates in-plane only (slice-wise configurations),
        ``(z, y, x)`` every axis. None: no interpolation.
    roi_interpolation : {"linear", "nearest"}
        ROI mask interpolation (aliases ``"bilinear"``, ``"trilinear"``); used with
        ``interpolation_spacing``.
    roi_partial_volume : float
        Partial-volume threshold in (0, 1]: an interpolated mask value at least this keeps the voxel
        in the ROI (IBSI: 0.5).
    geometry_tolerance : float
        How far a label-image mask's grid may differ from the image's, as a fraction of the largest
        voxel size, in every element of the voxel-to-world mapping (origin, spacing, direction):
        a mask shifted, flipped or on another grid is refused (PyRadiomics' ``geometryTolerance``).
    resample_mask : bool
        Instead of refusing a mask on another grid, resample it onto the image's grid (nearest
        neighbour in world coordinates; mask voxels outside the image are dropped).
    filters : tuple of dict
        Image filters (IBSI chapter 2, PyRadiomics' image types), each a table with ``type`` and
        its parameters (:mod:`medfeat.filters.registry`): every filtered image gets the families
        but the shape ones (morph, morph2d, li, gift), in columns prefixed with the filter's label
        (``log-s1.5mm__stat_mean``). The filter runs on the whole (interpolated) image; the ROI
        and its re-segmentation come from the original intensities (IBSI 2).
    original : bool
        Features of the original image too (with filters; without, always).
    single_slice : str or None
        A preset for single-slice images (the ``auto`` preset: ``"default-2d"``), whose families are
        these settings' families but for the 3D-only ``morph`` and ``li``. None: these settings run
        on every image, and a single-slice row under 3D settings gets a note saying so.
    """

    dimension: str = "3d"
    aggregations: tuple[str, ...] | None = None
    round_intensities: bool = False
    resegment_min: float | None = None
    resegment_max: float | None = None
    outlier_sigma: float | None = None
    discretisation: str = "fbn"
    bin_number: int = 32
    bin_width: float = 25.0
    ivh_discretisation: str = "fbn"
    ivh_bin_number: int = 1000
    ivh_bin_width: float = 2.5
    distance: int = 1
    ngtdm_distance: int = 1
    ngldm_distance: int = 1
    ngldm_alpha: int = 0
    gift_grey_levels: int = 4
    morph_autocorrelation: bool = True
    families: tuple[str, ...] = ("stat", "ih", "ivh", "glcm", "glrlm", "ngtdm", "ngldm", "glszm", "gldzm",
                                 "morph", "li")
    interpolation: str | None = None
    interpolation_spacing: tuple[float, ...] | None = None
    roi_interpolation: str = "linear"
    roi_partial_volume: float = 0.5
    geometry_tolerance: float = 1e-3
    resample_mask: bool = False
    single_slice: str | None = None
    filters: tuple = ()
    original: bool = True
    description: str = ""
    name: str = "custom"

    def __post_init__(self) -> None:
        # Every field is checked here, once: Settings(...), from_dict, from_file, preset and
        # replace() all pass through this (dataclasses.replace calls __post_init__).
        if not isinstance(self.name, str):
            raise InputError("settings", f"name must be a string, not {_show(self.name)}")
        src = self.name if self.name != "custom" else "settings"
        for f in dataclasses.fields(self):
            check = _CHECKS.get(f.name)
            if check is not None:
                try:
                    setattr(self, f.name, check(getattr(self, f.name)))
                except _Bad as exc:
                    raise InputError(src, f"{f.name} {exc}") from None
        if (self.resegment_min is not None and self.resegment_max is not None
                and self.resegment_min > self.resegment_max):
            raise InputError(src, f"resegment_min ({self.resegment_min:g}) is above resegment_max "
                                  f"({self.resegment_max:g})")
        if self.interpolation_spacing is None and self.interpolation is not None:
            raise InputError(src, f"interpolation {self.interpolation!r} needs interpolation_spacing (mm)")
        if self.interpolation_spacing is not None and self.interpolation is None:
            self.interpolation = "linear"

    @property
    def texture_aggregations(self) -> tuple[str, ...]:
        if self.aggregations is not None:
            return self.aggregations
        return AGGREGATIONS_2D if self.dimension == "2d" else AGGREGATIONS_3D

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def single_slice_settings(self, families: Iterable[str] | None = None) -> "tuple[Settings, tuple[str, ...]] | None":
        """The settings and families a single-slice image gets (``single_slice``), or None."""
        if not self.single_slice:
            return None
        fams = tuple(f for f in (self.families if families is None else families) if f not in VOLUME_ONLY_FAMILIES)
        s = Settings.preset(self.single_slice).replace(families=fams, geometry_tolerance=self.geometry_tolerance,
                                                       resample_mask=self.resample_mask)
        return s, fams

    def to_dict(self) -> dict:
        """Every setting as plain JSON values (tuples as lists), without ``name`` and
        ``description``: ``Settings.from_dict(s.to_dict())`` equals ``s`` but for those two."""
        d = dataclasses.asdict(self)
        d.pop("name", None)
        d.pop("description", None)
        d["filters"] = [{k: list(v) if isinstance(v, tuple) else v for k, v in f.items()} for f in self.filters]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def to_toml(self, comments: Iterable[str] = ()) -> str:
        """These settings as a TOML settings file: every setting but ``name`` (``None`` ones left
        out: that is their default), ``comments`` as ``#`` lines on top. ``Settings.from_file`` of
        the file equals these settings but for ``name``."""
        lines = [f"# {c}".rstrip() for text in comments for c in str(text).splitlines() or [""]]
        d = dataclasses.asdict(self)
        d.pop("name", None)
        for key, value in d.items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: dict, name: str = "custom") -> "Settings":
        """Settings from a mapping of settings (a parsed settings file); ``preset`` starts from that
        preset. Unknown keys and bad values raise a one-line :class:`InputError` naming ``name``."""
        if not isinstance(data, dict):
            raise InputError(name, f"settings must be a table of key = value pairs, not {_show(data)}")
        data = dict(data)
        base = data.pop("preset", None)
        fields = {f.name for f in dataclasses.fields(cls)} - {"name"}
        unknown = sorted(str(k) for k in set(data) - fields)
        if unknown:
            raise InputError(name, f"unknown settings {unknown}; known: {sorted(fields)}")
        if base is not None:
            if not isinstance(base, str) or base not in PRESETS:
                raise InputError(name, f"preset must be one of {', '.join(PRESETS)}, not {_show(base)}")
            return dataclasses.replace(cls.preset(base), name=name, **data)
        return cls(name=name, **data)

    @classmethod
    def preset(cls, name: str) -> "Settings":
        """A named preset: one of :data:`PRESETS`, or an IBSI chapter-2 test ``ibsi2-<id>``
        (:mod:`medfeat.filters.ibsi2`)."""
        if isinstance(name, str) and name.startswith("ibsi2-"):
            from medfeat.filters import ibsi2

            if name in ibsi2.PRESETS:
                return cls.from_dict(ibsi2.preset(name), name=name)
        if not isinstance(name, str) or name not in PRESETS:
            raise InputError(str(name), f"unknown settings preset; available: {', '.join(PRESETS)}, "
                                        "ibsi2-<IBSI 2 test id> (e.g. ibsi2-2.a, ibsi2-3.B)")
        text = resources.files("medfeat").joinpath("presets", f"{name}.toml").read_text()
        return cls.from_dict(tomllib.loads(text), name=name)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Settings":
        """Settings from a TOML, YAML (``.yaml``, ``.yml``) or JSON (``.json``) file, by its
        extension (any other: TOML); ``preset = "..."`` in it starts from that preset."""
        return cls.from_dict(load_settings_file(path), name=os.fspath(path))

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "Settings":
        """Settings from a settings file: :meth:`from_file` (TOML, or YAML / JSON by extension)."""
        return cls.from_file(path)

    @classmethod
    def resolve(cls, settings: "Settings | dict | str | os.PathLike | None") -> "Settings":
        """Settings, a mapping of settings, a preset name, a settings file path (TOML, YAML, JSON),
        or None (``auto``: ``default-3d``, and ``default-2d`` for single-slice images)."""
        if settings is None:
            return cls.preset("auto")
        if isinstance(settings, Settings):
            return settings
        if isinstance(settings, dict):
            return cls.from_dict(settings, name="settings")
        if not isinstance(settings, (str, os.PathLike)):
            raise InputError("settings", "must be Settings, a preset name or a settings file path, "
                                         f"not {_show(settings)}")
        text = os.fspath(settings)
        if text in PRESETS or text.startswith("ibsi2-"):
            return cls.preset(text)
        if text.lower().endswith(SETTINGS_SUFFIXES) or os.path.exists(text):
            return cls.from_file(text)
        raise InputError(text, f"not a settings preset ({', '.join(PRESETS)}) nor a settings file "
                               f"({', '.join(SETTINGS_SUFFIXES)})")


def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's; DEL must be escaped in TOML, not in JSON
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # finite (checked): 25.0, 0.001, 1e-05 are all TOML floats
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _yaml_loader():
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                            key_node.start_mark)
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                pass
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def _unique_json_keys(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} given twice")
        out[key] = value
    return out


def load_settings_file(path: str | os.PathLike, what: str = "settings file") -> Any:
    """The parsed content of a TOML, YAML (``.yaml``, ``.yml``) or JSON (``.json``) file, chosen by
    its extension (any other: TOML). Each way it can fail (missing, a directory, unreadable, not
    UTF-8, invalid syntax) is a one-line :class:`InputError` naming the file. An empty YAML file
    is an empty table. Used for medfeat settings files and PyRadiomics parameter files."""
    try:
        p = os.fspath(path)
    except TypeError:
        raise InputError("settings", f"a {what} path must be a string or a path, not {_show(path)}") from None
    suffix = os.path.splitext(p)[1].lower()
    kind = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}.get(suffix, "TOML")
    if os.path.isdir(p):
        raise InputError(p, f"is a directory, not a {what}")
    try:
        with open(p, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise InputError(p, f"{what} not found") from None
    except IsADirectoryError:
        raise InputError(p, f"is a directory, not a {what}") from None
    except PermissionError:
        raise InputError(p, f"cannot read the {what}: permission denied") from None
    except OSError as exc:
        raise InputError(p, f"cannot read the {what}: {_one_line(exc.strerror or exc)}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(p, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                            f"a {what} is UTF-8 {kind}") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    if kind == "TOML":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(p, f"invalid TOML: {_one_line(exc)}") from None
    if kind == "JSON":
        try:
            return json.loads(text, object_pairs_hook=_unique_json_keys)
        except json.JSONDecodeError as exc:
            raise InputError(p, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        except (ValueError, RecursionError) as exc:
            raise InputError(p, f"invalid JSON: {_one_line(exc)}") from None
    import yaml

    try:
        docs = list(yaml.load_all(text, Loader=_yaml_loader()))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = " ".join(_one_line(x) for x in (exc.context, exc.problem) if x)
        raise InputError(p, f"invalid YAML: {reason}{where}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise InputError(p, f"invalid YAML: {_one_line(exc)}") from None
    if len(docs) > 1:
        raise InputError(p, f"holds {len(docs)} YAML documents; a {what} is one")
    data = docs[0] if docs else None
    return {} if data is None else data


class ROI:
    """An image's region of interest, processed per :class:`Settings` and ready for the families.

    Everything is computed lazily, once: a family that does not need grey levels never pays for
    discretisation.
    """

    def __init__(self, intensities: np.ndarray, morph_mask: np.ndarray, settings: Settings,
                 spacing: tuple[float, float, float], source: str, pixels: Image | None = None,
                 intensity_mask: np.ndarray | None = None):
        self.settings = settings
        self.spacing = spacing
        self.source = source
        self.pixels = pixels  # the image's ROI box as read (colour kept), for the gift family
        box = processing.bounding_box(morph_mask)
        self._around, self._box = intensities, box  # what the ROI box was cut from (local intensity)
        self.image = intensities[box]  # float64, or the image's own integer type
        if settings.round_intensities and self.image.dtype.kind == "f":
            self.image = np.round(self.image)
        self.morph_mask = morph_mask[box]
        mask = self.morph_mask
        if intensity_mask is not None:  # a filtered image: re-segmented on the original intensities
            self.mask = intensity_mask[box] & mask
            return
        if settings.resegment_min is not None or settings.resegment_max is not None:
            mask = processing.resegment_range(self.image, mask, settings.resegment_min, settings.resegment_max)
        if settings.outlier_sigma is not None:
            mask = processing.resegment_outliers(self.image, mask, settings.outlier_sigma)
        self.mask = mask

    @cached_property
    def surroundings(self) -> tuple[np.ndarray, tuple[slice, ...]]:
        """The intensities this ROI was cut from, rounded like :attr:`image`, and where
        :attr:`image` lies in them: the ROI box and the image around it as far as the caller
        gave it (:func:`extract` widens it for the ``li`` family, whose spheres reach outside
        the ROI, IBSI 3.2)."""
        around = self._around
        return (np.round(around) if self.settings.round_intensities and around.dtype.kind == "f" else around), self._box

    @cached_property
    def values(self) -> np.ndarray:
        """Intensities of the voxels in the intensity mask (1-D, float64)."""
        return self.image[self.mask].astype(np.float64, copy=False)

    def _discretise(self, method: str, n: int, width: float) -> tuple[np.ndarray, int]:
        x = self.values
        s = self.settings
        if method == "fbn":
            return processing.discretise_fixed_bin_number(x, n), n
        if method == "fbs":
            levels = processing.discretise_fixed_bin_size(x, width, s.resegment_min)
            return levels, int(levels.max())
        if not np.all(x == np.round(x)):
            raise InputError(self.source, "discretisation 'none' needs integer intensities; use 'fbn' or 'fbs'")
        lo = s.resegment_min if s.resegment_min is not None else x.min()
        levels = (x - np.floor(lo)).astype(np.int32) + 1
        return levels, int(levels.max())

    @cached_property
    def level_values(self) -> tuple[np.ndarray, int]:
        """Discretised grey levels of the intensity-mask voxels (1-D) and the number of levels."""
        s = self.settings
        return self._discretise(s.discretisation, s.bin_number, s.bin_width)

    @cached_property
    def n_levels(self) -> int:
        """The number of grey levels of the discretisation (``N_g``)."""
        return self.level_values[1]

    # the large arrays a ROI caches, and what each is derived from (see :meth:`release`)
    _DERIVED = {"values": (), "level_values": ("values",), "levels": ("level_values",),
                "n_levels": ("level_values",)}

    def release(self, still_needed: Iterable[str]) -> None:
        """Drop the cached arrays that neither ``still_needed`` (names of cached properties, such
        as :attr:`Family.uses` of the families still to compute) nor what they derive from need:
        on a large ROI each is hundreds of MB (float64 values of a 34 M-voxel ROI: 272 MB)."""
        need = set(still_needed)
        pending = [k for k in need if k in self._DERIVED]
        while pending:
            key = pending.pop()
            if key not in self.__dict__:  # not computed yet: keep its sources
                for src in self._DERIVED[key]:
                    if src not in need:
                        need.add(src)
                        pending.append(src)
        for key in ("values", "level_values", "levels"):
            if key not in need:
                self.__dict__.pop(key, None)

    @cached_property
    def levels(self) -> np.ndarray:
        """Discretised grey levels as an array over the ROI box, 0 outside the intensity mask."""
        out = np.zeros(self.image.shape, dtype=np.int32)
        out[self.mask] = self.level_values[0]
        return out

    def ivh_representation(self) -> tuple[np.ndarray, np.ndarray]:
        """ROI intensities as the IVH sees them, and the IVH's intensity set ``G``."""
        s = self.settings
        x = self.values
        if s.ivh_discretisation == "fbn":
            levels = processing.discretise_fixed_bin_number(x, s.ivh_bin_number)
            return levels, np.arange(1, s.ivh_bin_number + 1, dtype=np.float64)
        if s.ivh_discretisation == "fbs":
            w = s.ivh_bin_width
            lo = s.resegment_min if s.resegment_min is not None else x.min()
            levels = processing.discretise_fixed_bin_size(x, w, lo)
            top = levels.max()
            if s.resegment_max is not None:
                top = max(top, int(processing.discretise_fixed_bin_size(np.array([s.resegment_max]), w, lo)[0]))
            centres = lo + (np.arange(1, top + 1) - 0.5) * w
            return lo + (levels - 0.5) * w, centres
        lo = s.resegment_min if s.resegment_min is not None else x.min()
        hi = s.resegment_max if s.resegment_max is not None else x.max()
        if np.all(x == np.round(x)):
            grid = np.arange(np.ceil(lo), np.floor(hi) + 1, dtype=np.float64)
            x = x.astype(np.int64)  # integer intensities take the IVH's counting path
        else:  # continuous intensities: the values present are all the IVH can resolve
            grid = np.unique(x)
        return x, grid


@dataclass(frozen=True)
class Family:
    """A feature family: its module (FEATURES, docs), how it is computed from a ROI, what it needs."""

    key: str
    module: str
    compute: Callable[[ROI], dict[str, float]]
    textured: bool  # per-aggregation features
    min_voxels: int = 1
    features_for: Callable[[Settings], tuple[FeatureDef, ...]] | None = None  # when columns depend on settings
    undirected: bool = False  # matrices without directions: IBSI's "2D", "2.5D", "3D" methods
    uses: tuple[str, ...] = ()  # the ROI's cached arrays it reads (the others are released early)

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


def _widen_for_spheres(img: Image, box: tuple[slice, ...], morph: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intensities of the ROI box widened by the local-intensity sphere's reach (within the
    image), and the ROI mask (``morph``, on the box) placed in that wider box."""
    from medfeat.features.local_intensity import sphere_margin

    wide = tuple(slice(max(0, b.start - h), min(n, b.stop + h))
                 for b, h, n in zip(box, sphere_margin(img.spacing), img.shape))
    arr = img.array[wide] if not img.is_rgb else img.array[wide + (slice(None),)]
    mask = np.zeros(arr.shape[:3], dtype=bool)
    mask[tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, wide))] = morph
    return (arr if arr.dtype.kind in "iu" and not img.is_rgb else Image(arr, spacing=img.spacing).intensity()), mask


def _gift(roi: ROI) -> dict[str, float]:
    from medfeat.features.gift import feature_row, gift_features, gift_rgb

    # GIFT works on the whole picture (the ROI's box), in colour, forced to 256 x 256
    rgb = gift_rgb(roi.pixels if roi.pixels is not None else roi.image, roi.source)
    return feature_row(gift_features(rgb, grey_levels=roi.settings.gift_grey_levels))


def _gift_defs(settings: Settings) -> tuple[FeatureDef, ...]:
    from medfeat.features.gift import feature_defs

    return feature_defs(settings.gift_grey_levels)


_LEVELS = ("levels", "n_levels")

FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family("stat", "medfeat.features.intensity_statistics", _stat, textured=False, uses=("values",)),
        Family("ih", "medfeat.features.intensity_histogram", _ih, textured=False, uses=("level_values",)),
        Family("ivh", "medfeat.features.intensity_volume_histogram", _ivh, textured=False, uses=("values",)),
        Family("glcm", "medfeat.features.glcm", _glcm, textured=True, min_voxels=2, uses=_LEVELS),
        Family("glrlm", "medfeat.features.glrlm", _glrlm, textured=True, uses=_LEVELS),
        Family("ngtdm", "medfeat.features.ngtdm", _ngtdm, textured=True, min_voxels=2, undirected=True,
               uses=_LEVELS),
        Family("ngldm", "medfeat.features.ngldm", _ngldm, textured=True, undirected=True, uses=_LEVELS),
        Family("glszm", "medfeat.features.glszm", _glszm, textured=True, undirected=True, uses=_LEVELS),
        Family("gldzm", "medfeat.features.gldzm", _gldzm, textured=True, undirected=True, uses=_LEVELS),
        Family("gift", "medfeat.features.gift", _gift, textured=False, features_for=_gift_defs),
        Family("morph", "medfeat.features.morphology", _morph, textured=False, features_for=_morph_defs),
        Family("morph2d", "medfeat.features.morphology_2d", _morph2d, textured=False),
        Family("li", "medfeat.features.local_intensity", _li, textured=False),
    )
}


@dataclass(frozen=True)
class Column:
    """What a feature column holds (for the long layout and for documentation)."""

    name: str
    family: str
    feature: FeatureDef
    aggregation: str = ""


def feature_columns(settings: Settings | str | None = None, families: Iterable[str] | None = None) -> list[Column]:
    """The feature columns :func:`extract` returns for these settings, in their stable order."""
    s = Settings.resolve(settings)
    fams = _check_families(families, s)
    cols = _columns(s, fams)
    alt = s.single_slice_settings(fams)
    if alt is not None:  # volumes' columns, then those only single-slice images have
        seen = {c.name for c in cols}
        cols += [c for c in _columns(*alt) if c.name not in seen]
    if s.filters:
        from medfeat.filters.registry import label

        base = _columns(s.replace(filters=()), filtered_families(fams))
        cols = (cols if s.original else []) + [Column(label(spec) + "__" + c.name, c.family, c.feature, c.aggregation)
                                               for spec in s.filters for c in base]
    return cols


def single_slice_only_columns(settings: Settings | str | None = None, families: Iterable[str] | None = None
                              ) -> tuple[set[str], set[str]]:
    """For settings with ``single_slice``: (columns only volumes get, columns only single-slice
    images get); two empty sets otherwise. A table may leave out those no row fills."""
    s = Settings.resolve(settings)
    fams = _check_families(families, s)
    alt = s.single_slice_settings(fams)
    if alt is None:
        return set(), set()
    vol, one = {c.name for c in _columns(s, fams)}, {c.name for c in _columns(*alt)}
    return vol - one, one - vol


def _columns(s: Settings, fams: tuple[str, ...]) -> list[Column]:
    cols = []
    for key in fams:
        fam = FAMILIES[key]
        if fam.textured:
            for agg in fam.aggregations(s):
                cols.extend(Column(column(f.tag, agg), key, f, agg) for f in fam.features)
        else:
            cols.extend(Column(column(f.tag), key, f) for f in fam.feature_defs(s))
    return cols


def _check_families(families, settings: Settings) -> tuple[str, ...]:
    fams = settings.families if families is None else tuple(families)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise InputError(None, f"unknown feature families {unknown}; available: {', '.join(FAMILIES)}")
    return fams


def _as_image(image: Image | str | os.PathLike | np.ndarray) -> Image:
    if isinstance(image, Image):
        return image
    if isinstance(image, np.ndarray):
        return Image(image, source="<array>")
    from medfeat.io import read_image

    return read_image(image)


def _voxel_to_world(img: Image) -> np.ndarray | None:
    """The 3x4 map from medfeat's (z, y, x, 1) voxel index to world coordinates: the file's affine
    where it has one (NIfTI), else the axis-aligned grid of origin and spacing."""
    affine = img.meta.get("affine") if isinstance(img.meta, dict) else None
    if affine is not None:
        a = np.asarray(affine, dtype=float)[:3]
        return a[:, [2, 1, 0, 3]]  # (x, y, z) index columns -> medfeat's (z, y, x)
    m = np.zeros((3, 4))
    m[:, :3] = np.diag(img.spacing)
    m[:, 3] = img.origin
    return m


def _geometry_difference(mask: Image, image: Image, tol: float) -> str | None:
    """Why ``mask``'s grid is not ``image``'s within ``tol`` voxels, or None. Masks of another file
    family (a DICOM image, a NIfTI mask) have other world conventions: only shape and spacing count."""
    if mask.array.shape[:3] != image.array.shape[:3]:
        return f"shape {tuple(mask.array.shape[:3])} differs from the image's {image.shape}"
    if not np.allclose(mask.spacing, image.spacing, rtol=tol, atol=1e-6):
        return f"spacing {mask.spacing} mm differs from the image's {image.spacing} mm"
    if ("affine" in (mask.meta or {})) != ("affine" in (image.meta or {})):
        return None
    a, b = _voxel_to_world(mask), _voxel_to_world(image)
    limit = tol * max(image.spacing)
    if np.abs(a[:, :3] - b[:, :3]).max() > limit:
        return "its axes point other ways than the image's (flipped or rotated voxel-to-world mapping)"
    shift = a[:, 3] - b[:, 3]
    if np.abs(shift).max() > limit:
        return f"its origin is {np.linalg.norm(shift):.3g} mm from the image's"
    return None


def _resample_mask(mask: Image, image: Image) -> np.ndarray:
    """The mask's values at the image's voxel centres (nearest neighbour in world coordinates),
    slice by slice so that memory stays bounded; voxels outside the mask's grid are 0."""
    src, dst = _voxel_to_world(mask), _voxel_to_world(image)
    full = np.vstack([src, [0, 0, 0, 1]])
    to_mask = np.linalg.inv(full)[:3] @ np.vstack([dst, [0, 0, 0, 1]])  # image index -> mask index
    arr = mask.array
    out = np.zeros(image.shape, dtype=arr.dtype)
    _, ny, nx = image.shape
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    for z in range(image.shape[0]):
        idx = np.stack([np.full(yy.shape, z), yy, xx, np.ones(yy.shape)]).reshape(4, -1)
        ijk = np.rint(to_mask @ idx).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(arr.shape[:3])[:, None]), axis=0)
        plane = np.zeros(ny * nx, dtype=arr.dtype)
        plane[inside] = arr[ijk[0, inside], ijk[1, inside], ijk[2, inside]]
        out[z] = plane.reshape(ny, nx)
    return out


def _as_mask(mask, image: Image, label: int | None, roi: str | None = None,
             settings: "Settings | None" = None, notes: list[str] | None = None) -> np.ndarray:
    name = image.source or "<array>"
    if mask is None:
        if roi is not None:
            raise InputError(name, f"roi={roi!r} names an RTSTRUCT ROI, but no mask was given")
        return np.ones(image.shape, dtype=bool)
    from medfeat.io.rtstruct import RTStruct, find_rtstruct, rtstruct_mask
    from medfeat.io.seg import Segmentation, find_seg, seg_mask

    segmentation = mask if isinstance(mask, Segmentation) else None
    if segmentation is None and isinstance(mask, (str, os.PathLike)):
        segmentation = find_seg(mask)
    if segmentation is not None:  # a DICOM SEG: roi is a segment label, label a segment number
        return seg_mask(segmentation, image, roi, label)
    structures = mask if isinstance(mask, RTStruct) else None
    if structures is None and isinstance(mask, (str, os.PathLike)):
        structures = find_rtstruct(mask)
    if structures is not None:
        if label is not None:
            raise InputError(os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else structures.source,
                             "label selects a value of a label-image mask; choose an RTSTRUCT ROI with roi=NAME")
        return rtstruct_mask(structures, image, roi)
    if roi is not None:
        src = mask.source if isinstance(mask, Image) else (
            os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else "<mask array>")
        raise InputError(src, f"roi={roi!r} names an RTSTRUCT ROI or SEG segment, but the mask is neither")
    if isinstance(mask, np.ndarray):
        arr, src, spacing = (mask[np.newaxis] if mask.ndim == 2 else mask), "<mask array>", None
    else:
        m = mask if isinstance(mask, Image) else _as_image(mask)
        if m.is_rgb:
            raise InputError(m.source, "mask is a colour image; masks must be single-channel label images")
        arr, src, spacing = m.array, m.source or "<mask>", m.spacing
        tol = settings.geometry_tolerance if settings is not None else 1e-3
        why = _geometry_difference(m, image, tol)
        if why is not None and settings is not None and settings.resample_mask:
            arr, spacing = _resample_mask(m, image), image.spacing
            if notes is not None:
                notes.append(f"mask resampled onto the image grid (nearest neighbour): {why}")
        elif why is not None and ("origin" in why or "axes" in why):
            raise InputError(src, f"mask geometry does not match the image {name}: {why} (tolerance "
                                  f"{tol:g} voxel); resample it onto the image grid with --resample-mask")
    if arr.shape != image.shape:
        raise InputError(src, f"mask shape {tuple(arr.shape)} does not match image shape {image.shape} of {name}")
    if spacing is not None and not np.allclose(spacing, image.spacing, rtol=1e-3, atol=1e-4):
        raise InputError(src, f"mask spacing {spacing} mm does not match image spacing {image.spacing} mm of {name}")
    if label is None:
        if arr.dtype == bool:
            out = arr
        elif arr.dtype.kind in "fc":  # a NaN (or infinite) mask value is no label: not in the ROI
            out = (arr != 0) & np.isfinite(arr)
        else:
            out = arr != 0
    else:
        out = arr == label
    if not out.any():
        what = "no non-zero voxel" if label is None else f"no voxel with label {label}"
        raise InputError(src, f"mask is empty ({what})")
    return out


def _interpolate(img: Image, morph: np.ndarray, s: Settings, name: str, around: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Image and ROI on the IBSI grid of ``s.interpolation_spacing`` (around the ROI only; with
    ``around``, as far beyond it as the local-intensity spheres reach)."""
    from medfeat.interpolation import interpolate_roi

    new_spacing = tuple(s.interpolation_spacing)
    if len(new_spacing) == 2:  # in-plane only: slices stay as they are
        new_spacing = (img.spacing[0],) + new_spacing
    margin = 0
    if around:
        from medfeat.features.local_intensity import sphere_margin

        margin = sphere_margin(new_spacing)
    # the interpolation crops (with a margin) and converts only the part around the ROI
    source = img.intensity() if img.is_rgb else img.array
    values, new_mask, grid, _ = interpolate_roi(source, morph, img.spacing, new_spacing, s.interpolation,
                                                s.roi_interpolation, s.roi_partial_volume, margin)
    if not new_mask.any():
        raise InputError(name, f"the region of interest vanishes when interpolated to {new_spacing} mm "
                               f"(partial-volume threshold {s.roi_partial_volume})")
    bad = np.count_nonzero(~np.isfinite(values[new_mask]))
    if bad:
        raise InputError(name, f"image has {bad} NaN/inf voxel(s) inside the interpolated region of interest")
    return values, new_mask, tuple(float(v) for v in grid.spacing)


def _settings_for(img: Image, s: Settings, fams: tuple[str, ...], notes: list[str]
                  ) -> tuple[Settings, tuple[str, ...]]:
    """The settings and families this image runs with, and the notes its row gets about them."""
    gaps = img.meta.get("irregular_slice_spacing") if isinstance(img.meta, dict) else None
    if gaps:
        notes.append(f"irregular slice spacing: gaps of {min(gaps):g} to {max(gaps):g} mm between slices, "
                     f"features computed with the median {img.spacing[0]:g} mm")
    if img.shape[0] != 1:
        return s, fams
    alt = s.single_slice_settings(fams)
    if alt is not None:
        left = [f for f in fams if f not in alt[1]]
        notes.append(f"{alt[0].name} settings (single-slice image)" + (f"; {', '.join(left)} left out" if left else ""))
        return alt
    if s.dimension == "3d" and any(FAMILIES[f].textured or f in VOLUME_ONLY_FAMILIES for f in fams):
        notes.append("3D settings on a single-slice image: 3D texture, morph and li treat it as a volume one "
                     "voxel thick (default-2d, or no --settings, computes slice features)")
    return s, fams


def extract(image: Image | str | os.PathLike | np.ndarray,
            mask: Image | str | os.PathLike | np.ndarray | None = None,
            settings: Settings | str | os.PathLike | None = None,
            *, families: Iterable[str] | None = None, label: int | None = None,
            roi: str | None = None, notes: list[str] | None = None) -> dict[str, float]:
    """Extract features from one image.

    Parameters
    ----------
    image : Image, path or ndarray
        The image; a path is read with :func:`medfeat.io.read_image`. RGB images are converted to
        BT.601 luma for the radiomics families; the ``gift`` family uses the colours.
    mask : Image, path, ndarray or None
        Region of interest on the image grid; non-zero voxels (or voxels equal to ``label``).
        A DICOM SEG file gives segment ``roi`` (its label) or ``label`` (its number).
        A DICOM RTSTRUCT file (or a folder holding only that file) gives the contours of ROI
        ``roi`` (:mod:`medfeat.io.rtstruct`). None means the whole image.
    settings : Settings, preset name, TOML path or None
        Processing settings; default ``auto`` (``default-3d``; ``default-2d`` for a single slice).
    families : iterable of str, optional
        Families to compute (default: ``settings.families``).
    label : int, optional
        Mask label to use.
    roi : str, optional
        ROIName of an RTSTRUCT mask, or SegmentLabel of a SEG; may be omitted when the file
        holds one ROI (segment).
    notes : list, optional
        Receives one line per thing the row's reader should know: the preset a single-slice image
        got (``single_slice`` settings) or 3D settings on a single slice, a mask resampled onto the
        image grid, irregular slice spacing in a DICOM series.

    Returns
    -------
    dict
        ``{column name: value}`` in the stable order of :func:`feature_columns`.

    Raises
    ------
    InputError
        Unreadable image or mask, mismatched mask, empty ROI, non-finite voxels, bad settings.
    """
    s = Settings.resolve(settings)
    fams = _check_families(families, s)
    img = _as_image(image)
    notes = [] if notes is None else notes
    s, fams = _settings_for(img, s, fams, notes)
    morph = _as_mask(mask, img, label, roi, s, notes)
    name = img.source or "<array>"
    whole_mask = morph
    # crop before converting: a tumour ROI is a small part of a CT volume
    box = processing.bounding_box(morph)
    pixels = Image(img.array[box] if not img.is_rgb else img.array[box + (slice(None),)],
                   spacing=img.spacing, source=name, meta=img.meta)  # as read, colour kept (gift)
    # integer intensities stay as read (a view, no float64 copy of the box: a 65 M-voxel CT box
    # would take 520 MB); the ROI's values are converted when taken (ROI.values)
    intensities = pixels.array if pixels.array.dtype.kind in "iu" and not pixels.is_rgb else pixels.intensity()
    n_roi = int(np.count_nonzero(morph[box]))
    if pixels.array.dtype.kind == "f":  # integer images hold no NaN/inf
        bad = n_roi - int(np.count_nonzero(np.isfinite(intensities) & morph[box]))
        if bad:
            raise InputError(name, f"image has {bad} NaN/inf voxel(s) inside the region of interest")
    spacing = img.spacing
    if s.interpolation_spacing is None:
        morph = morph[box]
        if "li" in fams:  # local intensity spheres reach outside the ROI (IBSI 3.2)
            intensities, morph = _widen_for_spheres(img, box, morph)
    else:  # IBSI 2.4: interpolate image and ROI before re-segmentation (and before rounding)
        intensities, morph, spacing = _interpolate(img, morph, s, name, around="li" in fams)
        n_roi = int(np.count_nonzero(morph))
    roi = ROI(intensities, morph, s, spacing, name, pixels=pixels)
    n = int(np.count_nonzero(roi.mask))
    need = max((FAMILIES[f].min_voxels for f in fams), default=1)
    if n < need:
        what = "after re-segmentation " if n < n_roi else ""
        fam = next(f for f in fams if FAMILIES[f].min_voxels == need)
        src = mask.source if isinstance(mask, Image) else (os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else name)
        raise InputError(src, f"mask leaves {n} voxel(s) {what}but {fam} needs at least {need}")
    out: dict[str, float] = {}
    if s.original or not s.filters:
        for k, f in enumerate(fams):
            out.update(FAMILIES[f].compute(roi))
            roi.release(u for later in fams[k + 1:] for u in FAMILIES[later].uses)
    if s.filters:
        del roi
        out.update(_filtered_features(img, whole_mask, s, fams, name))
    return out


# Families that describe the ROI's shape or need the image as read: not computed on filtered images.
SHAPE_FAMILIES = ("morph", "morph2d", "li", "gift")


def filtered_families(fams: Iterable[str]) -> tuple[str, ...]:
    """The families a filtered image gets: all but the shape ones (:data:`SHAPE_FAMILIES`)."""
    return tuple(f for f in fams if f not in SHAPE_FAMILIES)


def _filtered_features(img: Image, whole_mask: np.ndarray, s: Settings, fams: tuple[str, ...],
                       name: str) -> dict[str, float]:
    """Features of every filtered image (IBSI 2): the filter runs on the whole image (interpolated
    first when the settings interpolate, and rounded when they round), the ROI and its
    re-segmentation come from the original intensities, the families from the response."""
    from medfeat.filters import registry

    spacing = tuple(float(v) for v in img.spacing)
    if s.interpolation_spacing is not None:
        spacing = tuple(s.interpolation_spacing)
        if len(spacing) == 2:
            spacing = (float(img.spacing[0]),) + spacing
    # The ROI's box and as much around it as the filters reach: the ROI's responses are those of
    # filtering the whole image (the box stops at the image's edge, where the padding is the
    # same), at a fraction of the cost on a CT; filters that see the whole image get it all.
    reaches = [registry.reach(spec, spacing) for spec in s.filters]
    margin = None if any(r is None for r in reaches) else tuple(max(r[a] for r in reaches) for a in range(3))
    if s.interpolation_spacing is not None:
        from medfeat.interpolation import interpolate_roi

        source = img.intensity() if img.is_rgb else img.array
        source, mask, grid, _ = interpolate_roi(source, whole_mask, img.spacing, spacing, s.interpolation,
                                                s.roi_interpolation, s.roi_partial_volume,
                                                margin=1 << 30 if margin is None else margin)
        spacing = tuple(float(v) for v in grid.spacing)
    else:
        box = processing.bounding_box(whole_mask)
        if margin is not None:
            box = tuple(slice(max(b.start - m, 0), min(b.stop + m, n))
                        for b, m, n in zip(box, margin, whole_mask.shape))
        else:
            box = tuple(slice(0, n) for n in whole_mask.shape)
        source = (img.intensity() if img.is_rgb else img.array)[box].astype(np.float64)
        mask = whole_mask[box]
    if s.round_intensities:
        source = np.round(source)
    keep = mask
    if s.resegment_min is not None or s.resegment_max is not None:
        keep = processing.resegment_range(source, keep, s.resegment_min, s.resegment_max)
    if s.outlier_sigma is not None:
        keep = processing.resegment_outliers(source, keep, s.outlier_sigma)
    plain = s.replace(resegment_min=None, resegment_max=None, outlier_sigma=None, round_intensities=False, filters=())
    ffams = filtered_families(fams)
    out: dict[str, float] = {}
    cache: dict = {}
    for spec in s.filters:
        response = registry.apply(spec, source, spacing, cache)
        roi = ROI(response, mask, plain, spacing, name, intensity_mask=keep)
        n = int(np.count_nonzero(roi.mask))
        need = max((FAMILIES[f].min_voxels for f in ffams), default=1)
        if n < need:
            raise InputError(name, f"the ROI leaves {n} voxel(s) after re-segmentation but {need} are needed")
        prefix = registry.label(spec) + "__"
        for k, f in enumerate(ffams):
            out.update({prefix + c: v for c, v in FAMILIES[f].compute(roi).items()})
            roi.release(u for later in ffams[k + 1:] for u in FAMILIES[later].uses)
    return out
