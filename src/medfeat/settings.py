"""Processing and feature settings: :class:`Settings` (one image -> one row), the presets, the
checks every setting passes through, and settings files (TOML, YAML, JSON; TOML written back).

>>> from medfeat.settings import Settings
>>> s = Settings.preset("ibsi-a").replace(bin_number=16)  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Iterable

import numpy as np

from medfeat.errors import InputError
from medfeat.families import FAMILIES, VOLUME_ONLY_FAMILIES
from medfeat.features.base import AGGREGATIONS_2D, AGGREGATIONS_3D, check_aggregations

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
        Feature families to compute, see :data:`medfeat.families.FAMILIES`.
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
        # asked once per image: resolving the preset (a TOML file, every check) each time cost 0.25 ms
        # per 256x256 image of a gift production (3% of its time); keyed by what the answer depends on
        key = (self.single_slice, fams, self.geometry_tolerance, self.resample_mask)
        cache = self.__dict__.setdefault("_single_slice_cache", {})
        if key not in cache:
            cache[key] = Settings.preset(self.single_slice).replace(
                families=fams, geometry_tolerance=self.geometry_tolerance, resample_mask=self.resample_mask)
        return cache[key], fams

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

