"""Filters by name, as settings name them: ``filters = [{type = "log", sigma_mm = 1.5}, ...]``.

Each entry of :data:`FILTERS` knows its parameters (with defaults and checks), how to label its
response in column names (``log-s1.5mm``), and how to compute the response of a whole image
``(z, y, x)`` with its voxel spacing. Types: the IBSI chapter-2 filters ``mean``, ``log``,
``laws``, ``gabor``, ``wavelet``, ``simoncelli``, ``riesz_log``, ``riesz_simoncelli``, and
PyRadiomics' image types ``pyradiomics_log``, ``pyradiomics_wavelet`` (one sub-band of its
level-1 decomposition, named as PyRadiomics names it), ``square``, ``squareroot``, ``logarithm``,
``exponential``, ``gradient`` and ``lbp2d``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from medfeat.errors import InputError

_REQUIRED = object()


@dataclass(frozen=True)
class FilterType:
    """A filter: its parameters (name -> default, ``_REQUIRED`` when none), its label, its response,
    and its reach: how many voxels per axis ``(z, y, x)`` a response value depends on around its
    voxel (None: the whole image -- FFT filters, periodic boundaries, PyRadiomics' intensity maps
    scaled by the image's maximum)."""

    params: dict
    label: Callable[[dict], str]
    apply: Callable[[np.ndarray, tuple, dict], np.ndarray]
    reach: Callable[[dict, tuple], tuple[int, int, int] | None] = lambda p, spacing: None
    wraps: bool = False  # periodic: the reach holds inside the image, not where a box meets its edge


def _axes(p: dict, r: int, planes: bool = False) -> tuple[int, int, int]:
    """``r`` voxels in-plane, and along z too unless the filter works slice by slice."""
    flat = p.get("dimension") == "2d" and not (planes and p.get("planes") == "orthogonal")
    return (0 if flat else r, r, r)


def _reach_log(p, spacing):
    return tuple(int(math.floor(p["truncate"] * p["sigma_mm"] / h + 0.5)) if (a or p["dimension"] != "2d") else 0
                 for a, h in enumerate(spacing))


def _reach_recursive_log(p, spacing):
    # An IIR filter reaches everywhere, but its response decays as exp(-1.37 r / sigma): at 14
    # sigma it is below 1e-8 of an edge's step, under the float32 rounding of PyRadiomics' maps.
    return tuple(int(math.ceil(14.0 * p["sigma_mm"] / h)) + 4 for h in spacing)


def _reach_pyradiomics_wavelet(p, spacing):
    # PyRadiomics applies level 1 again to each approximation (no dilation): the supports add up
    import pywt

    r = (pywt.Wavelet(p["wavelet"].lower()).dec_len - 1) * p["level"] + 1
    return (r, r, r)


def _reach_laws(p, spacing):
    longest = max(int(part[1:]) for part in _laws_parts(p["kernel"]))
    return _axes(p, longest // 2 + (p["energy_delta"] or 0))


def _laws_parts(kernel: str) -> list[str]:
    return [kernel[i:i + 2] for i in range(0, len(kernel), 2)]


def _reach_gabor(p, spacing):
    reach_mm = p.get("truncate", 4.0) * max(p["sigma_mm"], p["sigma_mm"] / p["gamma"])
    r = max(int(math.ceil(reach_mm / h)) for h in spacing) + 1
    return _axes(p, r, planes=True)


def _reach_wavelet(p, spacing):
    if p["boundary"] == "periodic":
        return None
    import pywt

    m = pywt.Wavelet(p["wavelet"]).dec_len
    return _axes(p, m * (2 ** p["level"]))


def _finite(r):
    return lambda p, spacing: None if p.get("boundary") == "periodic" else r(p, spacing)


def _num(v: float) -> str:
    return f"{v:g}"


def _mm(spacing) -> str:
    """A voxel size for a message: ``(0.0001, 1, 1) mm``."""
    return "(" + ", ".join(_num(float(s)) for s in spacing) + ") mm"


def _mean(img, spacing, p):
    from medfeat.filters.mean import mean_filter

    return mean_filter(img, p["support"], p["dimension"], p["boundary"])


def _log(img, spacing, p):
    from medfeat.filters.log import log_filter

    return log_filter(img, p["sigma_mm"], spacing, p["truncate"], p["dimension"], p["boundary"])


def _laws(img, spacing, p):
    from medfeat.filters.laws import laws_filter

    return laws_filter(img, p["kernel"], p["dimension"], p["boundary"], p["rotation_invariant"], p["pooling"],
                       p["energy_delta"])


def _gabor(img, spacing, p):
    from medfeat.filters.gabor import gabor_filter

    theta = p["theta"]
    if p["theta_step"] is not None:  # every angle in [0, 2 pi) at this step
        n = int(round(2 * math.pi / p["theta_step"]))
        theta = [k * p["theta_step"] for k in range(n)]
    return gabor_filter(img, p["sigma_mm"], p["wavelength_mm"], p["gamma"], theta, spacing, p["dimension"],
                        p["boundary"], p["planes"], p["pooling"])


def _wavelet(img, spacing, p):
    from medfeat.filters.wavelet import wavelet_filter

    return wavelet_filter(img, p["wavelet"], p["subband"], p["level"], p["dimension"], p["boundary"],
                          p["rotation_invariant"], p["pooling"])


def _simoncelli(img, spacing, p):
    from medfeat.filters.simoncelli import simoncelli_filter

    return simoncelli_filter(img, p["level"], p["dimension"], p["boundary"])


def _riesz_log(img, spacing, p):
    from medfeat.filters.riesz import riesz_log

    return riesz_log(img, p["sigma_mm"], spacing, tuple(p["order"]), p["truncate"], p["dimension"], p["boundary"])


def _riesz_simoncelli(img, spacing, p):
    from medfeat.filters.riesz import riesz_simoncelli

    return riesz_simoncelli(img, p["level"], tuple(p["order"]), p["dimension"], p["boundary"])


def _pr(name):
    def apply(img, spacing, p):
        from medfeat.filters import pyradiomics_types as t

        if name == "gradient":
            return t.gradient_image(img, spacing)
        if name == "lbp2d":
            return t.lbp2d_image(img, p["radius"], p["samples"])
        if name == "pyradiomics_log":
            try:
                return t.pyradiomics_log_image(img, p["sigma_mm"], spacing)
            except ValueError as exc:  # a sigma the recursion cannot take at this voxel size
                raise InputError("filters", f"filter pyradiomics_log sigma_mm {p['sigma_mm']} on {_mm(spacing)} voxels: "
                                            f"{exc}") from None
        return {"square": t.square_image, "squareroot": t.square_root_image, "logarithm": t.logarithm_image,
                "exponential": t.exponential_image}[name](img)
    return apply


def _pyradiomics_wavelet(img, spacing, p, cache=None):
    from medfeat.filters.wavelet import pyradiomics_wavelet

    key = ("pyradiomics_wavelet", id(img), p["wavelet"], p["level"])
    bands = cache.get(key) if cache is not None else None
    if bands is None:  # one decomposition gives all eight sub-bands: done once per image
        bands = pyradiomics_wavelet(img, p["wavelet"], p["level"])
        if cache is not None:
            cache[key] = bands
    key = next((k for k in bands if k.endswith(p["subband"])), None)
    if key is None:
        raise InputError("filters", f"pyradiomics_wavelet has no sub-band {p['subband']!r} (has {sorted(bands)})")
    return bands[key]


def _ri(p) -> str:
    return f"-r{p['pooling']}" if p.get("rotation_invariant") else ""


FILTERS: dict[str, FilterType] = {
    "mean": FilterType({"support": _REQUIRED, "dimension": "3d", "boundary": "mirror"},
                       lambda p: f"mean-{p['support']}-{p['dimension']}", _mean,
                       _finite(lambda p, sp: _axes(p, p["support"] // 2))),
    "log": FilterType({"sigma_mm": _REQUIRED, "truncate": 4.0, "dimension": "3d", "boundary": "mirror"},
                      lambda p: f"log-s{_num(p['sigma_mm'])}mm-{p['dimension']}", _log, _finite(_reach_log)),
    "laws": FilterType({"kernel": _REQUIRED, "dimension": "3d", "boundary": "mirror", "rotation_invariant": False,
                        "pooling": "max", "energy_delta": None},
                       lambda p: f"laws-{p['kernel']}{_ri(p)}" + (f"-e{p['energy_delta']}" if p["energy_delta"] else ""),
                       _laws, _finite(_reach_laws)),
    "gabor": FilterType({"sigma_mm": _REQUIRED, "wavelength_mm": _REQUIRED, "gamma": 1.0, "theta": 0.0,
                         "theta_step": None, "dimension": "2d", "boundary": "mirror", "planes": "axial",
                         "pooling": "mean"},
                        lambda p: f"gabor-s{_num(p['sigma_mm'])}mm-l{_num(p['wavelength_mm'])}mm-g{_num(p['gamma'])}"
                                  + (f"-t{_num(p['theta'])}" if p["theta_step"] is None else
                                     f"-dt{_num(p['theta_step'])}") + ("-3planes" if p["planes"] != "axial" else ""),
                        _gabor, _finite(_reach_gabor)),
    "wavelet": FilterType({"wavelet": _REQUIRED, "subband": _REQUIRED, "level": 1, "dimension": "3d",
                           "boundary": "mirror", "rotation_invariant": False, "pooling": "mean"},
                          lambda p: f"wavelet-{p['wavelet']}-{p['subband']}-l{p['level']}{_ri(p)}", _wavelet,
                          _reach_wavelet),
    "simoncelli": FilterType({"level": 1, "dimension": "3d", "boundary": "periodic"},
                             lambda p: f"simoncelli-l{p['level']}-{p['dimension']}", _simoncelli),
    "riesz_log": FilterType({"sigma_mm": _REQUIRED, "order": (1, 0, 0), "truncate": 4.0, "dimension": "3d",
                             "boundary": "zero"},
                            lambda p: f"rieszlog-s{_num(p['sigma_mm'])}mm-o{''.join(map(str, p['order']))}", _riesz_log),
    "riesz_simoncelli": FilterType({"level": 1, "order": (1, 0, 0), "dimension": "3d", "boundary": "periodic"},
                                   lambda p: f"rieszsimoncelli-l{p['level']}-o{''.join(map(str, p['order']))}",
                                   _riesz_simoncelli),
    "pyradiomics_log": FilterType({"sigma_mm": _REQUIRED},
                                  lambda p: f"log-sigma-{str(p['sigma_mm']).replace('.', '-')}-mm-3D",
                                  _pr("pyradiomics_log"),
                                  _reach_recursive_log),
    "pyradiomics_wavelet": FilterType({"subband": _REQUIRED, "wavelet": "coif1", "level": 1},
                                      lambda p: f"wavelet-{p['subband']}", _pyradiomics_wavelet,
                                      _reach_pyradiomics_wavelet, wraps=True),
    "square": FilterType({}, lambda p: "square", _pr("square")),
    "squareroot": FilterType({}, lambda p: "squareroot", _pr("squareroot")),
    "logarithm": FilterType({}, lambda p: "logarithm", _pr("logarithm")),
    "exponential": FilterType({}, lambda p: "exponential", _pr("exponential")),
    "gradient": FilterType({}, lambda p: "gradient", _pr("gradient"), lambda p, sp: (1, 1, 1)),
    "lbp2d": FilterType({"radius": 1.0, "samples": 8}, lambda p: "lbp-2D", _pr("lbp2d"),
                        lambda p, sp: (0, int(math.ceil(p["radius"])) + 1, int(math.ceil(p["radius"])) + 1)),
}


def normalize(spec: Any) -> dict:
    """A filter table checked (known type, known parameters, required ones given) and completed
    with the defaults; one-line :class:`InputError` otherwise."""
    if not isinstance(spec, dict):
        raise InputError("filters", f"a filter is a table with a 'type', not {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in FILTERS:  # a list or table there is unhashable
        raise InputError("filters", f"unknown filter type {kind!r}; known: {', '.join(FILTERS)}")
    ft = FILTERS[kind]
    unknown = sorted(set(spec) - set(ft.params) - {"type"})
    if unknown:
        raise InputError("filters", f"{kind}: unknown parameter(s) {unknown}; known: {sorted(ft.params)}")
    out: dict = {"type": kind}
    for name, default in ft.params.items():
        value = spec.get(name, default)
        if value is _REQUIRED:
            raise InputError("filters", f"{kind}: needs {name}")
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def label(spec: dict) -> str:
    """The filter's label in column names."""
    return FILTERS[spec["type"]].label(spec)


#: Most voxels a filter's sampled kernel may hold (2^27: 1 GiB of float64). A kernel is sized in mm: on
#: tiny voxels (a header in the wrong unit, 1e-4 mm) a 3 mm Gabor asked for a 4.7 TiB array.
MAX_KERNEL_VOXELS = 1 << 27

# half-widths (voxels per axis) of the kernels the filters sample, by their settings and the voxel size
_KERNEL_HALF = {"log": _reach_log, "riesz_log": _reach_log, "gabor": _reach_gabor, "laws": _reach_laws,
                "mean": lambda p, spacing: _axes(p, p["support"] // 2)}


def check_kernel(spec: dict, spacing) -> None:
    """Refuse, in one line, a filter whose sampled kernel at this voxel size would exceed
    :data:`MAX_KERNEL_VOXELS` (before anything is allocated)."""
    half = _KERNEL_HALF.get(spec["type"])
    if half is None:
        return
    h = half(spec, tuple(float(s) for s in spacing))
    voxels = math.prod(2 * x + 1 for x in h)
    if voxels > MAX_KERNEL_VOXELS:
        raise InputError("filters", f"filter {label(spec)} on {_mm(spacing)} voxels needs a kernel of "
                                    f"{' x '.join(str(2 * x + 1) for x in h)} voxels, above the {MAX_KERNEL_VOXELS} "
                                    "a filter samples (medfeat.filters.registry.MAX_KERNEL_VOXELS)")


def apply(spec: dict, image: np.ndarray, spacing, cache: dict | None = None) -> np.ndarray:
    """The response of ``image`` (``(z, y, x)``, spacing in mm) to the filter ``spec``. ``cache``
    (a dict kept while one image is filtered) lets filters share work, e.g. one wavelet
    decomposition for all of PyRadiomics' sub-bands."""
    spacing = tuple(float(s) for s in spacing)
    check_kernel(spec, spacing)
    if spec["type"] == "pyradiomics_wavelet":
        return np.asarray(_pyradiomics_wavelet(image, spacing, spec, cache), dtype=np.float64)
    return np.asarray(FILTERS[spec["type"]].apply(image, spacing, spec), dtype=np.float64)


def wraps(spec: dict) -> bool:
    """Whether the filter's boundary is periodic: a box around the ROI gives the whole image's
    response only if the box plus the reach stays inside the image."""
    return FILTERS[spec["type"]].wraps


def reach(spec: dict, spacing) -> tuple[int, int, int] | None:
    """Voxels per axis ``(z, y, x)`` around a voxel that its response depends on; None when it
    depends on the whole image. Filtering a box that holds the ROI and this much around it (or up
    to the image's edge) gives the ROI's voxels the values of filtering the whole image."""
    return FILTERS[spec["type"]].reach(spec, tuple(float(s) for s in spacing))
