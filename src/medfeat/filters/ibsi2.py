"""The IBSI chapter-2 test configurations as medfeat settings (presets ``ibsi2-<id>``).

Phase 1 (``ibsi2-1.a.1`` ... ``ibsi2-10.b.1``): one filter on a digital phantom, for
``medfeat filter PHANTOM -o RESPONSE.nii.gz --settings ibsi2-<id>``. Phase 2 (``ibsi2-1.A`` ...
``ibsi2-9.B``): filter and processing of the lung CT phantom for ``medfeat extract``: the 18
intensity statistics of the filtered image inside the ROI re-segmented to [-1000, 400] HU on the
original intensities; config A filters slice by slice without interpolation, config B filters in
3D after interpolation to 1 mm (tricubic spline, rounded; mask trilinear, threshold 0.5).

The parameters are those of ``../shared/data/ibsi2/configs.md`` (assembled from the IBSI's
reference implementation and the teams' submissions; where the shared reference maps decided a
convention -- rotation counts, Simoncelli's frequency grid -- the filters follow the maps).
"""
from __future__ import annotations

import math

_PI = math.pi

# phase 1: test id -> filter table
PHASE1: dict[str, dict] = {
    "1.a.1": {"type": "mean", "support": 15, "dimension": "3d", "boundary": "zero"},
    "1.a.2": {"type": "mean", "support": 15, "dimension": "3d", "boundary": "nearest"},
    "1.a.3": {"type": "mean", "support": 15, "dimension": "3d", "boundary": "periodic"},
    "1.a.4": {"type": "mean", "support": 15, "dimension": "3d", "boundary": "mirror"},
    "1.b.1": {"type": "mean", "support": 15, "dimension": "2d", "boundary": "zero"},
    "2.a": {"type": "log", "sigma_mm": 3.0, "dimension": "3d", "boundary": "zero"},
    "2.b": {"type": "log", "sigma_mm": 5.0, "dimension": "3d", "boundary": "mirror"},
    "2.c": {"type": "log", "sigma_mm": 5.0, "dimension": "2d", "boundary": "mirror"},
    "3.a.1": {"type": "laws", "kernel": "E5L5S5", "dimension": "3d", "boundary": "zero"},
    "3.a.2": {"type": "laws", "kernel": "E5L5S5", "dimension": "3d", "boundary": "zero", "rotation_invariant": True},
    "3.a.3": {"type": "laws", "kernel": "E5L5S5", "dimension": "3d", "boundary": "zero", "rotation_invariant": True,
              "energy_delta": 7},
    "3.b.1": {"type": "laws", "kernel": "E3W5R5", "dimension": "3d", "boundary": "mirror"},
    "3.b.2": {"type": "laws", "kernel": "E3W5R5", "dimension": "3d", "boundary": "mirror", "rotation_invariant": True},
    "3.b.3": {"type": "laws", "kernel": "E3W5R5", "dimension": "3d", "boundary": "mirror", "rotation_invariant": True,
              "energy_delta": 7},
    "3.c.1": {"type": "laws", "kernel": "L5S5", "dimension": "2d", "boundary": "mirror"},
    "3.c.2": {"type": "laws", "kernel": "L5S5", "dimension": "2d", "boundary": "mirror", "rotation_invariant": True},
    "3.c.3": {"type": "laws", "kernel": "L5S5", "dimension": "2d", "boundary": "mirror", "rotation_invariant": True,
              "energy_delta": 7},
    "4.a.1": {"type": "gabor", "sigma_mm": 10.0, "wavelength_mm": 4.0, "gamma": 0.5, "theta": _PI / 3,
              "boundary": "zero"},
    "4.a.2": {"type": "gabor", "sigma_mm": 10.0, "wavelength_mm": 4.0, "gamma": 0.5, "theta_step": _PI / 4,
              "boundary": "zero", "planes": "orthogonal"},
    "4.b.1": {"type": "gabor", "sigma_mm": 20.0, "wavelength_mm": 8.0, "gamma": 2.5, "theta": 5 * _PI / 4,
              "boundary": "mirror"},
    "4.b.2": {"type": "gabor", "sigma_mm": 20.0, "wavelength_mm": 8.0, "gamma": 2.5, "theta_step": _PI / 8,
              "boundary": "mirror", "planes": "orthogonal"},
    "5.a.1": {"type": "wavelet", "wavelet": "db2", "subband": "LHL", "level": 1, "boundary": "zero"},
    "5.a.2": {"type": "wavelet", "wavelet": "db2", "subband": "LHL", "level": 1, "boundary": "zero",
              "rotation_invariant": True},
    "6.a.1": {"type": "wavelet", "wavelet": "coif1", "subband": "HHL", "level": 1, "boundary": "periodic"},
    "6.a.2": {"type": "wavelet", "wavelet": "coif1", "subband": "HHL", "level": 1, "boundary": "periodic",
              "rotation_invariant": True},
    "7.a.1": {"type": "wavelet", "wavelet": "haar", "subband": "LLL", "level": 2, "boundary": "mirror",
              "rotation_invariant": True},
    "7.a.2": {"type": "wavelet", "wavelet": "haar", "subband": "HHH", "level": 2, "boundary": "mirror",
              "rotation_invariant": True},
    "8.a.1": {"type": "simoncelli", "level": 1, "boundary": "periodic"},
    "8.a.2": {"type": "simoncelli", "level": 2, "boundary": "periodic"},
    "8.a.3": {"type": "simoncelli", "level": 3, "boundary": "periodic"},
    "9.a": {"type": "riesz_log", "sigma_mm": 3.0, "order": [1, 0, 0], "boundary": "zero"},
    "9.b.1": {"type": "riesz_log", "sigma_mm": 3.0, "order": [0, 2, 0], "boundary": "zero"},
    "10.b.1": {"type": "riesz_simoncelli", "level": 1, "order": [0, 2, 0], "boundary": "nearest"},
}

# phase 2: filter id -> (config A filter, config B filter); None: the unfiltered image
_P2 = {
    "1": (None, None),
    "2": ({"type": "mean", "support": 5, "dimension": "2d"}, {"type": "mean", "support": 5, "dimension": "3d"}),
    "3": ({"type": "log", "sigma_mm": 1.5, "dimension": "2d"}, {"type": "log", "sigma_mm": 1.5, "dimension": "3d"}),
    "4": ({"type": "laws", "kernel": "L5E5", "dimension": "2d", "rotation_invariant": True, "energy_delta": 7},
          {"type": "laws", "kernel": "L5E5E5", "dimension": "3d", "rotation_invariant": True, "energy_delta": 7}),
    "5": ({"type": "gabor", "sigma_mm": 5.0, "wavelength_mm": 2.0, "gamma": 1.5, "theta_step": _PI / 8},
          {"type": "gabor", "sigma_mm": 5.0, "wavelength_mm": 2.0, "gamma": 1.5, "theta_step": _PI / 8,
           "planes": "orthogonal"}),
    "6": ({"type": "wavelet", "wavelet": "db3", "subband": "LH", "level": 1, "dimension": "2d",
           "rotation_invariant": True},
          {"type": "wavelet", "wavelet": "db3", "subband": "LLH", "level": 1, "dimension": "3d",
           "rotation_invariant": True}),
    "7": ({"type": "wavelet", "wavelet": "db3", "subband": "HH", "level": 2, "dimension": "2d",
           "rotation_invariant": True},
          {"type": "wavelet", "wavelet": "db3", "subband": "HHH", "level": 2, "dimension": "3d",
           "rotation_invariant": True}),
    "8": ({"type": "simoncelli", "level": 1, "dimension": "2d", "boundary": "mirror"},
          {"type": "simoncelli", "level": 1, "dimension": "3d", "boundary": "mirror"}),
    "9": ({"type": "simoncelli", "level": 2, "dimension": "2d", "boundary": "mirror"},
          {"type": "simoncelli", "level": 2, "dimension": "3d", "boundary": "mirror"}),
}

_BASE = {"families": ["stat"], "resegment_min": -1000.0, "resegment_max": 400.0, "discretisation": "fbs",
         "bin_width": 25.0, "ivh_discretisation": "fbs"}
_CONFIG_B = {"interpolation": "cubic", "interpolation_spacing": [1.0, 1.0, 1.0], "round_intensities": True,
             "roi_interpolation": "linear", "roi_partial_volume": 0.5}


def phase2(config_id: str) -> dict:
    """Settings (as a table) of phase-2 configuration ``config_id`` (``"3.B"``)."""
    number, _, letter = config_id.partition(".")
    a, b = _P2[number]
    spec = a if letter == "A" else b
    out = dict(_BASE, dimension="2d" if letter == "A" else "3d")
    if letter == "B":
        out.update(_CONFIG_B)
    if spec is not None:
        out["filters"] = [dict({"boundary": "mirror"}, **spec)]
        out["original"] = False
    out["description"] = f"IBSI 2 phase 2 configuration {config_id}"
    return out


def phase1(test_id: str) -> dict:
    """Settings (as a table) of phase-1 test ``test_id`` (``"2.a"``): its one filter."""
    return {"families": ["stat"], "filters": [dict(PHASE1[test_id])], "original": False,
            "description": f"IBSI 2 phase 1 test {test_id}"}


PRESETS = tuple(f"ibsi2-{t}" for t in PHASE1) + tuple(f"ibsi2-{n}.{c}" for n in _P2 for c in "AB")


def preset(name: str) -> dict:
    """The settings table of an ``ibsi2-`` preset."""
    ident = name[len("ibsi2-"):]
    return phase1(ident) if ident in PHASE1 else phase2(ident)
