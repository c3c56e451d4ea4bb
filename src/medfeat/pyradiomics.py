"""PyRadiomics drop-in: its parameter files as medfeat :class:`~medfeat.settings.Settings`, and its
feature names for medfeat's columns.

>>> from medfeat.pyradiomics import settings_from_pyradiomics, pyradiomics_column
>>> settings, notes = settings_from_pyradiomics("params.yaml")  # doctest: +SKIP
>>> pyradiomics_column("cm_energy_3d_avg")
'original_glcm_JointEnergy'

:func:`settings_from_pyradiomics` reads a PyRadiomics parameter file (YAML or JSON, sections
``setting``, ``imageType``, ``featureClass``, ``voxelSetting``; PyRadiomics 3.0.1's schema) or the
same as a dict, and returns the medfeat settings closest to it and one line for every setting that
has no exact medfeat equivalent (what was done instead, or that it was ignored). What maps exactly:

============================  ==================================================================
PyRadiomics                   medfeat
============================  ==================================================================
binCount                      ``discretisation = "fbn"``, ``bin_number`` (IBSI fixed bin number)
binWidth (default 25)         ``discretisation = "fbs"``, ``bin_width`` (bin edges differ: a note)
resegmentRange, absolute      ``resegment_min``, ``resegment_max``
resegmentRange, sigma [-k,k]  ``outlier_sigma = k`` (population sd, as PyRadiomics)
resampledPixelSpacing [x,y,z] ``interpolation_spacing`` (z, y, x); 0 for z: in-plane ``(y, x)``
interpolator                  ``interpolation``: sitkNearestNeighbor -> nearest, sitkLinear ->
                              linear, sitkBSpline -> cubic; the mask by nearest neighbour, as
                              PyRadiomics (``roi_interpolation = "nearest"``)
force2D                       ``dimension = "2d"``, texture "2.5D, direction-merged" (PyRadiomics
                              builds one matrix per in-plane direction over all slices, features
                              averaged over directions); without: "3D, averaged" (13 directions)
distances [1..d]              ``ngtdm_distance``, ``ngldm_distance`` = d; GLCM only for d = 1
gldm_a                        ``ngldm_alpha`` (PyRadiomics' GLDM is IBSI's NGLDM)
featureClass                  families: firstorder -> stat + ih, shape -> morph (without Moran's I
                              and Geary's C, which PyRadiomics lacks), shape2D -> morph2d, glcm,
                              glrlm, glszm, gldm -> ngldm, ngtdm
imageType                     Original: the image as read (``original``); LoG (each sigma),
                              Wavelet (the 8 level-1 sub-bands), Square, SquareRoot, Logarithm,
                              Exponential, Gradient, LBP2D: ``filters`` (PyRadiomics' definitions,
                              :mod:`medfeat.filters.pyradiomics_types`); LBP3D: not available
============================  ==================================================================

The PyRadiomics feature <-> medfeat IBSI tag tables below were moved from ``bench/extract_speed.py``,
where they were checked numerically against PyRadiomics 3.0.1 (``RadiomicsFeatureExtractor.execute``)
on a 256x256 CT slice (force2D) and a 117k-voxel STS CT tumour ROI (3D): every pair agrees to a
relative 1e-6, except those in :data:`DIFFERENCES`, which differ by the stated definition. The
feature names and defaults are PyRadiomics 3.0.1's (its documentation, "Radiomic Features" and
"Customizing the Extraction", and ``radiomics/schemas/paramSchema.yaml``); the tags are IBSI's
(reference manual, chapter 3).
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable

from medfeat.errors import InputError
from medfeat.families import FAMILIES
from medfeat.settings import Settings, load_settings_file
from medfeat.features.base import column, undirected_aggregations

__all__ = ["settings_from_pyradiomics", "settings_to_toml", "pyradiomics_column", "feature_pairs",
           "FEATURE_TAGS", "DIFFERENCES", "TRANSFORMS", "POPULATION_COVARIANCE", "PYRADIOMICS_VERSION"]

PYRADIOMICS_VERSION = "3.0.1"

# ----------------------------------------------------------------------------- feature names
# PyRadiomics feature -> medfeat IBSI tag, for features with the same definition in both (but for
# DIFFERENCES). Left out: firstorder TotalEnergy (energy times voxel volume, not IBSI), glcm MCC
# (not in IBSI), shape's per-plane 2D diameters (not in IBSI): see NO_COUNTERPART.
FIRST_ORDER = {
    "Mean": "stat.mean", "Variance": "stat.var", "Skewness": "stat.skew", "Kurtosis": "stat.kurt",
    "Median": "stat.median", "Minimum": "stat.min", "Maximum": "stat.max", "10Percentile": "stat.P10",
    "90Percentile": "stat.P90", "InterquartileRange": "stat.iqr", "Range": "stat.range",
    "MeanAbsoluteDeviation": "stat.mad", "RobustMeanAbsoluteDeviation": "stat.rmad",
    "Energy": "stat.energy", "RootMeanSquared": "stat.rms",
    "Entropy": "ih.entropy", "Uniformity": "ih.uniformity",
}
GLCM = {
    "JointEnergy": "cm.energy", "Contrast": "cm.contrast", "JointEntropy": "cm.joint.entr",
    "JointAverage": "cm.joint.avg", "SumSquares": "cm.joint.var", "MaximumProbability": "cm.joint.max",
    "DifferenceAverage": "cm.diff.avg", "DifferenceVariance": "cm.diff.var", "DifferenceEntropy": "cm.diff.entr",
    "SumAverage": "cm.sum.avg", "SumEntropy": "cm.sum.entr",
    "Id": "cm.inv.diff", "Idm": "cm.inv.diff.mom", "Idn": "cm.inv.diff.norm", "Idmn": "cm.inv.diff.mom.norm",
    "InverseVariance": "cm.inv.var", "Correlation": "cm.corr", "Autocorrelation": "cm.auto.corr",
    "ClusterTendency": "cm.clust.tend", "ClusterShade": "cm.clust.shade", "ClusterProminence": "cm.clust.prom",
    "Imc1": "cm.info.corr.1", "Imc2": "cm.info.corr.2",
}
GLRLM = {
    "ShortRunEmphasis": "rlm.sre", "LongRunEmphasis": "rlm.lre",
    "LowGrayLevelRunEmphasis": "rlm.lgre", "HighGrayLevelRunEmphasis": "rlm.hgre",
    "ShortRunLowGrayLevelEmphasis": "rlm.srlge", "ShortRunHighGrayLevelEmphasis": "rlm.srhge",
    "LongRunLowGrayLevelEmphasis": "rlm.lrlge", "LongRunHighGrayLevelEmphasis": "rlm.lrhge",
    "GrayLevelNonUniformity": "rlm.glnu", "GrayLevelNonUniformityNormalized": "rlm.glnu.norm",
    "RunLengthNonUniformity": "rlm.rlnu", "RunLengthNonUniformityNormalized": "rlm.rlnu.norm",
    "RunPercentage": "rlm.r.perc", "GrayLevelVariance": "rlm.gl.var", "RunVariance": "rlm.rl.var",
    "RunEntropy": "rlm.rl.entr",
}
GLSZM = {
    "SmallAreaEmphasis": "szm.sze", "LargeAreaEmphasis": "szm.lze",
    "GrayLevelNonUniformity": "szm.glnu", "GrayLevelNonUniformityNormalized": "szm.glnu.norm",
    "SizeZoneNonUniformity": "szm.zsnu", "SizeZoneNonUniformityNormalized": "szm.zsnu.norm",
    "ZonePercentage": "szm.z.perc", "GrayLevelVariance": "szm.gl.var", "ZoneVariance": "szm.zs.var",
    "ZoneEntropy": "szm.zs.entr", "LowGrayLevelZoneEmphasis": "szm.lgze", "HighGrayLevelZoneEmphasis": "szm.hgze",
    "SmallAreaLowGrayLevelEmphasis": "szm.szlge", "SmallAreaHighGrayLevelEmphasis": "szm.szhge",
    "LargeAreaLowGrayLevelEmphasis": "szm.lzlge", "LargeAreaHighGrayLevelEmphasis": "szm.lzhge",
}
GLDM = {  # PyRadiomics' GLDM is IBSI's NGLDM (alpha = gldm_a, distance 1)
    "SmallDependenceEmphasis": "ngl.lde", "LargeDependenceEmphasis": "ngl.hde",
    "GrayLevelNonUniformity": "ngl.glnu", "DependenceNonUniformity": "ngl.dcnu",
    "DependenceNonUniformityNormalized": "ngl.dcnu.norm", "GrayLevelVariance": "ngl.gl.var",
    "DependenceVariance": "ngl.dc.var", "DependenceEntropy": "ngl.dc.entr",
    "LowGrayLevelEmphasis": "ngl.lgce", "HighGrayLevelEmphasis": "ngl.hgce",
    "SmallDependenceLowGrayLevelEmphasis": "ngl.ldlge", "SmallDependenceHighGrayLevelEmphasis": "ngl.ldhge",
    "LargeDependenceLowGrayLevelEmphasis": "ngl.hdlge", "LargeDependenceHighGrayLevelEmphasis": "ngl.hdhge",
}
NGTDM = {"Coarseness": "ngt.coarseness", "Contrast": "ngt.contrast", "Busyness": "ngt.busyness",
         "Complexity": "ngt.complexity", "Strength": "ngt.strength"}
SHAPE_3D = {
    "MeshVolume": "morph.vol", "VoxelVolume": "morph.approx.vol", "SurfaceArea": "morph.area",
    "SurfaceVolumeRatio": "morph.av", "Sphericity": "morph.sphericity", "Maximum3DDiameter": "morph.diam",
    "MajorAxisLength": "morph.pca.major", "MinorAxisLength": "morph.pca.minor", "LeastAxisLength": "morph.pca.least",
    "Elongation": "morph.pca.elongation", "Flatness": "morph.pca.flatness",
}
SHAPE_2D = {
    "MeshSurface": "morph.2d.area", "PixelSurface": "morph.2d.approx.area", "Perimeter": "morph.2d.perimeter",
    "PerimeterSurfaceRatio": "morph.2d.pa", "Sphericity": "morph.2d.circularity",
    "MaximumDiameter": "morph.2d.diam", "MajorAxisLength": "morph.2d.pca.major",
    "MinorAxisLength": "morph.2d.pca.minor", "Elongation": "morph.2d.pca.elongation",
}
# PyRadiomics feature class -> {feature: IBSI tag}
FEATURE_TAGS: dict[str, dict[str, str]] = {
    "firstorder": FIRST_ORDER, "shape": SHAPE_3D, "shape2D": SHAPE_2D, "glcm": GLCM, "glrlm": GLRLM,
    "glszm": GLSZM, "gldm": GLDM, "ngtdm": NGTDM,
}
# PyRadiomics features (enabled by default) without a medfeat counterpart, and why
NO_COUNTERPART: dict[str, dict[str, str]] = {
    "firstorder": {"TotalEnergy": "energy x voxel volume, not in IBSI"},
    "shape": {"Maximum2DDiameterSlice": "not in IBSI", "Maximum2DDiameterColumn": "not in IBSI",
              "Maximum2DDiameterRow": "not in IBSI"},
    "glcm": {"MCC": "maximal correlation coefficient, not in IBSI"},
}
# deprecated in PyRadiomics (not computed unless asked for by name); no medfeat counterpart
DEPRECATED: dict[str, tuple[str, ...]] = {
    "firstorder": ("StandardDeviation",),
    "shape": ("Compactness1", "Compactness2", "SphericalDisproportion"),
    "shape2D": ("SphericalDisproportion",),
    "glcm": ("SumVariance", "Dissimilarity", "Homogeneity1", "Homogeneity2"),
    "gldm": ("GrayLevelNonUniformityNormalized", "DependencePercentage"),
}
# PyRadiomics value -> the medfeat definition: kurtosis m4/m2^2 -> IBSI's excess kurtosis; 2D
# "sphericity" 2 sqrt(pi A) / P -> circularity 4 pi A / P^2.
TRANSFORMS = {"firstorder_Kurtosis": lambda v: v - 3.0, "shape2D_Sphericity": lambda v: v * v}
# PyRadiomics' PCA axis lengths use the population covariance (divide by N), IBSI's (and medfeat's)
# the sample covariance (N - 1): theirs times sqrt(N / (N - 1)) is the IBSI value
POPULATION_COVARIANCE = ("shape_MajorAxisLength", "shape_MinorAxisLength", "shape_LeastAxisLength",
                         "shape2D_MajorAxisLength", "shape2D_MinorAxisLength")
_NG = "N_g: PyRadiomics uses the highest grey level present in the ROI, IBSI the discretisation's"
# mapped features whose values are not the same number (PyRadiomics name without the image type)
DIFFERENCES: dict[str, str] = {
    "firstorder_Kurtosis": "PyRadiomics m4/m2^2, medfeat IBSI's excess kurtosis: PyRadiomics' value - 3",
    "shape2D_Sphericity": "PyRadiomics 2 sqrt(pi A)/P, medfeat circularity 4 pi A/P^2: its square",
    **{name: "PyRadiomics divides the covariance by N, IBSI by N - 1: PyRadiomics' value x sqrt(N/(N-1))"
       for name in POPULATION_COVARIANCE},
    "glcm_Idn": _NG, "glcm_Idmn": _NG,
}
# IBSI tag prefixes of the texture families (columns carry an aggregation); glcm and glrlm are
# directional, the others not
TEXTURED = ("cm.", "rlm.", "szm.", "ngl.", "ngt.")
_DIRECTIONAL = ("cm.", "rlm.")
# the texture aggregations PyRadiomics computes: 3D (13 directions averaged; one 3D matrix for the
# undirected families) and force2D (per in-plane direction over all slices, averaged; one matrix of
# in-plane neighbourhoods over all slices)
PYRADIOMICS_AGGREGATIONS = ("3D, averaged", "2.5D, direction-merged")
_CLASS_FAMILIES = {"firstorder": ("stat", "ih"), "shape": ("morph",), "shape2D": ("morph2d",), "glcm": ("glcm",),
                   "glrlm": ("glrlm",), "glszm": ("glszm",), "gldm": ("ngldm",), "ngtdm": ("ngtdm",)}
DEFAULT_CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")  # PyRadiomics' (no shape2D)


def feature_pairs(aggregation: str = "3D, averaged", image_type: str = "original") -> list[tuple[str, str]]:
    """``(PyRadiomics name, medfeat column)`` of every mapped feature for one IBSI texture
    ``aggregation`` (its dimension chooses ``shape`` or ``shape2D``); PyRadiomics names with the
    ``image_type`` prefix (``""``: none, ``glcm_JointEnergy``)."""
    undirected = undirected_aggregations((aggregation,))[0]
    shape_class = "shape" if undirected == "3D" else "shape2D"
    prefix = f"{image_type}_" if image_type else ""
    pairs = []
    for cls, table in FEATURE_TAGS.items():
        if cls in ("shape", "shape2D") and cls != shape_class:
            continue
        for name, tag in table.items():
            agg = None if not tag.startswith(TEXTURED) else aggregation if tag.startswith(_DIRECTIONAL) else undirected
            pairs.append((f"{prefix}{cls}_{name}", column(tag, agg)))
    return pairs


_COLUMNS: dict[str, str] = {}


def pyradiomics_column(medfeat_column: str, *, identical_only: bool = False) -> str | None:
    """PyRadiomics' name (``original_glcm_JointEnergy``) of a medfeat column, or None where
    PyRadiomics has no such feature (medfeat-only features, and texture columns of aggregations
    PyRadiomics does not compute: it has "3D, averaged" (``_3d_avg``, ``_3d``) and, with force2D,
    "2.5D, direction-merged" (``_25d_dmrg``, ``_25d``)). Both 3D and 2.5D columns map to the same
    name: settings from :func:`settings_from_pyradiomics` ask for one of them only.

    ``identical_only``: None also for the features of :data:`DIFFERENCES` (same feature, another
    definition: kurtosis, 2D sphericity, PCA axis lengths; N_g of Idn / Idmn)."""
    if not _COLUMNS:
        for agg in PYRADIOMICS_AGGREGATIONS:
            for name, col in feature_pairs(agg, image_type=""):
                _COLUMNS.setdefault(col, name)
    image_type, _, base = medfeat_column.rpartition("__")  # a filtered image's column: its label first
    name = _COLUMNS.get(base)
    if name is None or (identical_only and name in DIFFERENCES):
        return None
    return f"{image_type or 'original'}_{name}"


# ----------------------------------------------------------------------------- parameter files

_SECTIONS = ("setting", "imageType", "featureClass", "voxelSetting")
# SimpleITK interpolators by name and by enum value -> medfeat interpolation (None: no equivalent)
_INTERPOLATORS = {"sitkNearestNeighbor": "nearest", "sitkLinear": "linear", "sitkBSpline": "cubic",
                  "sitkGaussian": None, "sitkLabelGaussian": None, "sitkHammingWindowedSinc": None,
                  "sitkCosineWindowedSinc": None, "sitkWelchWindowedSinc": None, "sitkLanczosWindowedSinc": None,
                  "sitkBlackmanWindowedSinc": None}
_INTERPOLATOR_CODES = dict(enumerate(_INTERPOLATORS, start=1))  # sitkNearestNeighbor = 1, ... = 10
_FILTER_SETTINGS = {"sigma": "LoG", "start_level": "Wavelet", "level": "Wavelet", "wavelet": "Wavelet",
                    "gradientUseSpacing": "Gradient", "lbp2DRadius": "LBP2D", "lbp2DSamples": "LBP2D",
                    "lbp2DMethod": "LBP2D", "lbp3DLevels": "LBP3D", "lbp3DIcosphereRadius": "LBP3D",
                    "lbp3DIcosphereSubdivision": "LBP3D"}
_IGNORED = {
    "preCrop": "medfeat always crops to the ROI's bounding box (no setting needed; no effect on values)",
    "padDistance": "medfeat takes the margin interpolation needs by itself (no effect on values)",
    "geometryTolerance": "medfeat compares mask and image spacing with a relative tolerance of 1e-3; ignored",
    "correctMask": "medfeat refuses a mask on another grid than the image's (it does not resample masks); ignored",
    "minimumROIDimensions": "medfeat refuses a ROI too small for a family (glcm, ngtdm: 2 voxels) instead; ignored",
    "minimumROISize": "medfeat refuses a ROI too small for a family (glcm, ngtdm: 2 voxels) instead; ignored",
    "additionalInfo": "medfeat writes no diagnostic columns; ignored",
    "label_channel": "medfeat reads single-channel label masks; ignored",
    "dtype": "medfeat computes in float64; ignored",
}
_IMAGE_TYPES = ("Original", "LoG", "Wavelet", "Square", "SquareRoot", "Logarithm", "Exponential", "Gradient",
                "LBP2D", "LBP3D")


def _type_number(custom: dict, kind: str, key: str, default, integer: bool, minimum: float, source: str):
    """An image type's numeric setting (None: the default), checked: a finite number (an integer where
    ``integer``) >= ``minimum``; else one line naming the parameter file."""
    v = custom.get(key)
    if v is None:
        return default
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not math.isfinite(v) or v < minimum:
        want = f"{'an integer' if integer else 'a number'} >= {minimum:g}"
        raise InputError(source, f"imageType {kind}: {key} must be {want}, not {_show(v)}")
    return v


def _image_type_filters(kind: str, custom: dict, notes: list[str], source: str) -> list[dict]:
    """medfeat filter tables for one of PyRadiomics' image types (with its settings)."""
    if kind == "LoG":
        sigmas = custom.get("sigma") or []
        if not isinstance(sigmas, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in sigmas):
            raise InputError(source, f"imageType LoG: sigma must be a list of positive numbers, not {_show(sigmas)}")
        if not sigmas:
            notes.append("imageType LoG: no sigma given, so no LoG image (as PyRadiomics)")
        return [{"type": "pyradiomics_log", "sigma_mm": v} for v in sigmas]
    if kind == "Wavelet":
        wavelet = custom.get("wavelet", "coif1")
        if not isinstance(wavelet, str):
            raise InputError(source, f"imageType Wavelet: wavelet must be a name such as 'coif1', not {_show(wavelet)}")
        level = _type_number(custom, kind, "level", 1, True, 1, source)
        if _type_number(custom, kind, "start_level", 0, True, 0, source) != 0 or level != 1:
            notes.append("imageType Wavelet: only the first level's eight sub-bands (start_level 0, level 1) "
                         "are converted")
        return [{"type": "pyradiomics_wavelet", "subband": band, "wavelet": wavelet, "level": 1}
                for band in ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL")]
    if kind == "LBP3D":
        notes.append("imageType LBP3D: not available (spherical-harmonics LBP); ignored")
        return []
    if kind == "LBP2D":
        return [{"type": "lbp2d", "radius": float(_type_number(custom, kind, "lbp2DRadius", 1.0, False, 0, source)),
                 "samples": _type_number(custom, kind, "lbp2DSamples", 8, True, 1, source)}]
    if kind == "Gradient" and custom.get("gradientUseSpacing") is False:
        notes.append("imageType Gradient: gradientUseSpacing false is not available; the spacing is used")
    return [{"type": kind.lower()}]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """The ``setting`` values, type-checked, with the keys read remembered."""

    def __init__(self, setting: dict, source: str):
        self.setting, self.source, self.used = setting, source, set()

    def bad(self, key: str, want: str) -> InputError:
        return InputError(self.source, f"setting {key} must be {want}, not {_show(self.setting[key])}")

    def has(self, key: str) -> bool:
        return key in self.setting and self.setting[key] is not None

    def get(self, key: str, kind: str, default: Any = None, positive: bool = False, minimum: float | None = None):
        self.used.add(key)
        if not self.has(key):
            return default
        v = self.setting[key]
        if kind == "bool":
            if not isinstance(v, bool):
                raise self.bad(key, "true or false")
            return v
        if kind == "str":
            if not isinstance(v, str):
                raise self.bad(key, "a string")
            return v
        if kind in ("int", "float"):
            ok = isinstance(v, int) if kind == "int" else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok or v != v or v in (float("inf"), float("-inf")):
                raise self.bad(key, "an integer" if kind == "int" else "a number")
            if (positive and v <= 0) or (minimum is not None and v < minimum):
                raise self.bad(key, f"{'an integer' if kind == 'int' else 'a number'} "
                                    f"{'> 0' if positive else f'>= {minimum:g}'}")
            return v
        if kind in ("ints", "floats"):
            item = int if kind == "ints" else (int, float)
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, item) and not isinstance(x, bool)
                                                           and x == x for x in v):
                raise self.bad(key, f"a list of {'integers' if kind == 'ints' else 'numbers'}")
            return list(v)
        raise AssertionError(kind)


def _load(params: dict | str | os.PathLike) -> tuple[dict, str]:
    if isinstance(params, (str, os.PathLike)):
        source = os.fspath(params)
        data = load_settings_file(params, what="PyRadiomics parameter file")
    elif isinstance(params, dict):
        source, data = "PyRadiomics parameters", params
    else:
        raise InputError("PyRadiomics parameters", "must be a dict or the path of a YAML / JSON parameter file, "
                                                   f"not {type(params).__name__}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(source, f"a PyRadiomics parameter file is a mapping with sections {', '.join(_SECTIONS)}, "
                                 f"not {_show(data)}")
    unknown = sorted(str(k) for k in data if k not in _SECTIONS)
    if unknown:
        raise InputError(source, f"unknown PyRadiomics parameter sections {unknown}; known: {', '.join(_SECTIONS)}")
    for key in _SECTIONS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise InputError(source, f"section {key} must be a mapping, not {_show(data[key])}")
    return data, source


def settings_from_pyradiomics(params: dict | str | os.PathLike) -> tuple[Settings, list[str]]:
    """medfeat settings from a PyRadiomics parameter file (YAML or JSON, by extension) or the
    same as a dict; see the module's docstring for what maps to what.

    Returns
    -------
    settings : Settings
        Named after the file (``"PyRadiomics parameters"`` for a dict); texture in PyRadiomics'
        aggregation ("3D, averaged", or "2.5D, direction-merged" with force2D), the families of the
        enabled feature classes.
    notes : list of str
        One line for every setting without an exact medfeat equivalent: what was done instead,
        or that it was ignored (``"setting binWidth: ..."``).

    Raises
    ------
    InputError
        Unreadable file, unknown section, feature class or interpolator, a value of the wrong type.
    """
    data, source = _load(params)
    notes: list[str] = []
    setting = dict(data.get("setting") or {})
    image_types = data.get("imageType") if "imageType" in data else {"Original": {}}  # PyRadiomics' default
    image_types = image_types or {}
    filters: list[dict] = []
    for kind, custom in image_types.items():
        if kind not in _IMAGE_TYPES:
            raise InputError(source, f"unknown imageType {kind!r}; PyRadiomics' are {', '.join(_IMAGE_TYPES)}")
        if custom is not None and not isinstance(custom, dict):
            raise InputError(source, f"imageType {kind} must map to its settings (or nothing), not {_show(custom)}")
        if kind == "Original":
            setting.update(custom or {})  # image-type settings override the general ones
            continue
        custom = {**setting, **(custom or {})}  # a type's own settings win over the general ones
        filters += _image_type_filters(kind, custom, notes, source)

    r = _Reader(setting, source)
    out: dict[str, Any] = {}

    # discretisation
    bin_count = r.get("binCount", "int", positive=True)
    bin_width = r.get("binWidth", "float", positive=True)
    if bin_count is not None:
        out.update(discretisation="fbn", bin_number=bin_count)
        if bin_width is not None:
            notes.append(f"setting binWidth {bin_width:g}: ignored, binCount is given (PyRadiomics then uses binCount)")
    else:
        out.update(discretisation="fbs", bin_width=float(25.0 if bin_width is None else bin_width))
        notes.append(f"setting binWidth {out['bin_width']:g}{' (PyRadiomics default)' if bin_width is None else ''}: "
                     "fixed bin size; PyRadiomics puts the first bin edge at floor(min / binWidth) * binWidth, "
                     "medfeat at resegment_min (else the ROI minimum): grey levels may be shifted, which changes "
                     "the texture features that depend on grey-level values")

    # re-segmentation
    mode = r.get("resegmentMode", "str", default="absolute")
    if mode not in ("absolute", "relative", "sigma"):
        raise r.bad("resegmentMode", "'absolute', 'relative' or 'sigma'")
    rng = r.get("resegmentRange", "floats")
    if rng is not None:
        if len(rng) not in (1, 2):
            raise r.bad("resegmentRange", "a list of 1 or 2 numbers")
        if mode == "absolute":
            out["resegment_min"] = float(rng[0])
            if len(rng) == 2:
                out["resegment_max"] = float(rng[1])
        elif mode == "sigma" and len(rng) == 2 and rng[0] == -rng[1] and rng[1] > 0:
            out["outlier_sigma"] = float(rng[1])
        else:
            what = ("relative to the ROI's maximum" if mode == "relative"
                    else "asymmetric or one-sided sigma range (medfeat's outlier_sigma k is [-k, k])")
            notes.append(f"setting resegmentRange {rng} ({mode}, {what}): no medfeat equivalent; "
                         "no re-segmentation done")
    elif r.has("resegmentMode"):
        notes.append("setting resegmentMode: no effect without resegmentRange")
    if r.get("resegmentShape", "bool", default=False):
        notes.append("setting resegmentShape true: medfeat computes shape from the mask before "
                     "re-segmentation (IBSI's morphological mask); ignored")

    # resampling
    spacing = r.get("resampledPixelSpacing", "floats")
    r.used.add("interpolator")
    raw = setting.get("interpolator")
    interp_name = None
    if isinstance(raw, str) and raw in _INTERPOLATORS:
        interp_name = raw
    elif isinstance(raw, int) and not isinstance(raw, bool) and raw in _INTERPOLATOR_CODES:
        interp_name = _INTERPOLATOR_CODES[raw]
    elif raw is not None:
        raise r.bad("interpolator", f"a SimpleITK interpolator ({', '.join(_INTERPOLATORS)}) or its number 1..10")
    if spacing is not None:
        if len(spacing) != 3 or any(v < 0 for v in spacing):
            raise r.bad("resampledPixelSpacing", "3 spacings [x, y, z] in mm, each >= 0 (0: keep the image's)")
        x, y, z = (float(v) for v in spacing)
        grid = None
        if x > 0 and y > 0:
            grid = (z, y, x) if z > 0 else (y, x)
        elif x > 0 or y > 0 or z > 0:
            notes.append(f"setting resampledPixelSpacing {spacing}: keeping the spacing of the x or y axis "
                         "only has no medfeat equivalent; no interpolation done")
        if grid is not None:
            method = _INTERPOLATORS[interp_name or "sitkBSpline"]
            if method is None:
                notes.append(f"setting interpolator {interp_name}: no medfeat equivalent; cubic B-spline "
                             "(sitkBSpline) used instead")
                method = "cubic"
            out.update(interpolation=method, interpolation_spacing=grid, roi_interpolation="nearest")
            notes.append("setting resampledPixelSpacing: medfeat centres the new grid on the image (IBSI 2.4), "
                         "PyRadiomics aligns it with the image's corner, and does not resample an axis the "
                         "mask spans one slice of: interpolated intensities, and features, differ slightly")
    elif interp_name is not None:
        notes.append(f"setting interpolator {interp_name}: no effect without resampledPixelSpacing")

    # 2D / 3D
    force2d = r.get("force2D", "bool", default=False)
    dim2d = r.get("force2Ddimension", "int", default=0, minimum=0)
    if dim2d > 2:
        raise r.bad("force2Ddimension", "0, 1 or 2")
    if force2d:
        out.update(dimension="2d", aggregations=("2.5D, direction-merged",))
        if dim2d != 0:
            notes.append(f"setting force2Ddimension {dim2d}: medfeat slices along the first array axis "
                         "(0, axial for (z, y, x) volumes) only; axial slices used")
    else:
        out.update(dimension="3d", aggregations=("3D, averaged",))
        if r.has("force2Ddimension") and dim2d != 0:
            notes.append("setting force2Ddimension: no effect without force2D")

    # neighbourhoods
    distances = r.get("distances", "ints", default=[1])
    if not distances or any(d < 1 for d in distances):
        raise r.bad("distances", "a non-empty list of integers >= 1")
    dmax = max(distances)
    out.update(distance=dmax, ngtdm_distance=dmax, ngldm_distance=dmax)
    if dmax > 1:
        notes.append(f"setting distances {distances}: PyRadiomics' GLCM takes every offset at these Chebyshev "
                     "distances, medfeat IBSI's 13 (2D: 4) directions scaled by the distance "
                     f"(distance = {dmax}): GLCM features differ")
    if sorted(set(distances)) != list(range(1, dmax + 1)):
        notes.append(f"setting distances {distances}: PyRadiomics' NGTDM and GLDM neighbourhoods hold the voxels "
                     f"at these distances only, medfeat's every voxel within {dmax} (ngtdm_distance, ngldm_distance)")
    out["ngldm_alpha"] = r.get("gldm_a", "int", default=0, minimum=0)
    if not r.get("symmetricalGLCM", "bool", default=True):
        notes.append("setting symmetricalGLCM false: medfeat's GLCM is symmetric (IBSI); ignored")
    r.used.add("weightingNorm")
    if setting.get("weightingNorm") not in (None, "no_weighting"):
        notes.append(f"setting weightingNorm {_show(setting['weightingNorm'])}: PyRadiomics then merges the "
                     "directions' matrices weighted by distance; medfeat has no weighting (features averaged "
                     "over directions); ignored")

    # intensities
    if r.get("normalize", "bool", default=False):
        notes.append("setting normalize true: medfeat does not normalise images (z-score x normalizeScale); "
                     "ignored: normalise the images before extraction")
    for key in ("normalizeScale", "removeOutliers"):
        if r.has(key):
            r.get(key, "float", positive=True)
            notes.append(f"setting {key}: only used by PyRadiomics' normalize; ignored")
    shift = r.get("voxelArrayShift", "float", default=0)
    if shift:
        notes.append(f"setting voxelArrayShift {shift:g}: medfeat's Energy and RootMeanSquared (stat_energy, "
                     "stat_rms) have no shift; ignored")

    # what medfeat takes elsewhere or not at all
    label = r.get("label", "int", positive=True)
    if label is not None:
        notes.append(f"setting label {label}: medfeat chooses the mask label per extraction, not in its "
                     f"settings: pass label={label} (CLI --label {label}); medfeat's default is any non-zero "
                     "voxel, PyRadiomics' label 1")
    for key, why in _IGNORED.items():
        if r.has(key):
            r.used.add(key)
            notes.append(f"setting {key}: {why}")
    for key, kind in _FILTER_SETTINGS.items():
        if r.has(key):
            r.used.add(key)
            if kind not in image_types:
                notes.append(f"setting {key}: only used by the {kind} image type, which is not enabled; ignored")
    for key in setting:
        if key not in r.used:
            notes.append(f"setting {key}: not a PyRadiomics {PYRADIOMICS_VERSION} setting; ignored")
    if data.get("voxelSetting"):
        notes.append(f"voxelSetting {', '.join(map(str, data['voxelSetting']))}: voxel-based extraction "
                     "(feature maps) is not available; ignored")

    # feature classes
    classes = data.get("featureClass") if "featureClass" in data else None
    if classes is None:
        classes = {c: None for c in DEFAULT_CLASSES}
    families: set[str] = set()
    for cls, names in classes.items():
        if cls not in _CLASS_FAMILIES:
            raise InputError(source, f"unknown featureClass {cls!r}; PyRadiomics' are {', '.join(_CLASS_FAMILIES)}")
        families.update(_CLASS_FAMILIES[cls])
        if names is not None and (isinstance(names, str) or not isinstance(names, (list, tuple))
                                  or not all(isinstance(n, str) for n in names)):
            raise InputError(source, f"featureClass {cls} must list feature names (or nothing), not {_show(names)}")
        mapped, missing = FEATURE_TAGS[cls], NO_COUNTERPART.get(cls, {})
        known = set(mapped) | set(missing) | set(DEPRECATED.get(cls, ()))
        wanted = list(names) if names else list(mapped) + list(missing)
        if names:
            notes.append(f"featureClass {cls}: {len(names)} feature(s) listed; medfeat computes the whole "
                         f"famil{'ies' if len(_CLASS_FAMILIES[cls]) > 1 else 'y'} {' + '.join(_CLASS_FAMILIES[cls])} "
                         "(select the columns afterwards, e.g. with pyradiomics_column)")
        unknown = [n for n in wanted if n not in known]
        if unknown:
            notes.append(f"featureClass {cls}: {', '.join(unknown)} unknown to PyRadiomics {PYRADIOMICS_VERSION}; ignored")
        lacking = [f"{n} ({missing[n]})" if n in missing else f"{n} (deprecated in PyRadiomics)"
                   for n in wanted if n in known and n not in mapped]
        if lacking:
            notes.append(f"featureClass {cls}: no medfeat counterpart for {', '.join(lacking)}")
        differ: dict[str, list[str]] = {}
        for n in wanted:
            if f"{cls}_{n}" in DIFFERENCES:
                differ.setdefault(DIFFERENCES[f"{cls}_{n}"], []).append(n)
        for why, names_ in differ.items():
            notes.append(f"featureClass {cls}: {', '.join(names_)} defined otherwise in medfeat (IBSI): {why}")
        if cls == "shape2D" and not force2d:
            notes.append("featureClass shape2D: PyRadiomics computes it only with force2D on a single-slice ROI; "
                         "medfeat's morph2d averages over the ROI's slices (the same on one slice)")
    if not classes:
        notes.append("featureClass is empty: PyRadiomics would compute no feature; no family enabled")
    out["families"] = tuple(f for f in FAMILIES if f in families)
    out["morph_autocorrelation"] = False  # Moran's I and Geary's C: PyRadiomics has neither
    out["description"] = ("converted from PyRadiomics parameters" if isinstance(params, dict)
                          else f"converted from PyRadiomics parameter file {source}")
    if filters:
        out["filters"] = tuple(filters)
        out["original"] = "Original" in image_types
    elif "Original" not in image_types:
        notes.append("imageType: no image type enabled; medfeat computes the original image's features")
    return Settings(name=source, **out), notes


def settings_to_toml(settings: Settings, notes: Iterable[str] = ()) -> str:
    """``settings`` as a medfeat TOML settings file (:meth:`Settings.to_toml`), ``notes`` (from
    :func:`settings_from_pyradiomics`) as comments on top; ``Settings.from_file`` reads it back."""
    notes = list(notes)
    head = [f"medfeat settings{' from ' + settings.name if settings.name not in ('custom', '') else ''}"]
    if notes:
        head += ["", "Not exactly as PyRadiomics:"] + [f"- {n}" for n in notes]
    return settings.to_toml(comments=head + [""])
