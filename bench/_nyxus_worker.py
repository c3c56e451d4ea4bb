"""Nyxus side of bench/extract_speed.py; runs under bench/.venvs/nyxus/bin/python.

    python _nyxus_worker.py JOB.json

JOB.json: ``{"image": "image.npy", "mask": "mask.npy", "spacing": [z, y, x], "force2d": bool,
"bin_width": 25.0, "repeats": 3, "nyxus3d_files": bool}``; arrays are ``(z, y, x)``, the image
float64 (integer HU), the mask boolean. The venv: ``python3 -m venv bench/.venvs/nyxus`` then
``bench/.venvs/nyxus/bin/pip install 'nyxus==0.11.*'`` (a binary wheel: nyxus 0.11.0, numpy, pandas).

Feature groups: Nyxus' ``*ALL_INTENSITY*`` (first order) and the texture groups ``*ALL_GLCM*``,
``*ALL_GLRLM*``, ``*ALL_GLSZM*``, ``*ALL_GLDM*``, ``*ALL_NGTDM*`` (3D: ``*3D_ALL_INTENSITY*``,
``*3D_GLCM*``, ``*3D_GLRLM*``, ``*3D_GLSZM*``, ``*3D_GLDM*``, ``*3D_NGTDM*``; 0.11's 2D groups have
no ``*ALL_TEXTURE*``, and the GLRLM group is ``*ALL_GLRLM*``, not the docstring's ``*ALL_GLRM*``). Settings:
``n_feature_calc_threads=1`` (0.11 has no other thread setting; ``OMP_NUM_THREADS`` etc. default to
1 here as in the driver), GLCM distance 1 (metaparameter ``glcm/offset=1``, 3D ``3glcm/offset=1``:
0.11's default offset is 0, a co-occurrence of each pixel with itself, contrast 0), the Nyxus
defaults otherwise (2D GLCM/GLRLM at 0, 45, 90, 135 degrees, averaged in the ``*_AVE`` columns;
3D GLCM averaged over 13 directions; 3D NGTDM radius 1, metaparameter ``3ngtdm/radius=1``).

Discretisation. Nyxus 0.11 cannot bin with a fixed bin width through its API: ``coarse_gray_depth``
must be > 0 (checked in Python, unsigned in the C++ backend) and means "N levels over [0, max]"
(default 64); PyRadiomics-style width-25 binning is a negative grey depth, reachable only as the
GLCM metaparameter ``glcm/greydepth=-1``, which makes every 2D GLCM feature 0 in 0.11 and leaves
the other families alone. So the worker discretises itself, exactly as PyRadiomics (and medfeat in
the benchmark) do: level = floor(x / bin_width) - floor(min_ROI / bin_width) + 1, bin edges at
multiples of ``bin_width`` HU, and hands Nyxus these levels (uint32, 0 outside the ROI) with
``ibsi=True``, under which Nyxus uses the intensities as grey levels with no further binning. The
texture features then see the same grey levels as PyRadiomics/medfeat.

Intensity features need a second Nyxus object on a second image: Nyxus takes unsigned integer
intensities (``featurize`` itself subtracts a negative image minimum, in place for a stack of
slices, and truncates to uint32) and treats intensity 0 as background in texture code, so the worker
passes ``x - min_ROI + 1`` (uint32, >= 1 in the ROI, 0 outside; CT HU are integers, so exact) with
Nyxus' default settings. Location features (MEAN, MEDIAN, MIN, MAX, MODE, P01..P99) are that shift
away from HU (``unshifted`` gives them in HU); ENERGY, ROOT_MEAN_SQUARED, INTEGRATED_INTENSITY,
COV, QCOD, ROBUST_MEAN are of the shifted values, not the HU; ENTROPY and UNIFORMITY use Nyxus' own
intensity histogram, not the width-25 grey levels; percentiles interpolate differently from
PyRadiomics/medfeat.

Checked against medfeat (IBSI, same grey levels) on the two benchmark cases: mean, min, max,
median, variance, skewness, kurtosis agree after the shift; GLCM (averaged), GLRLM (averaged),
GLDM (= IBSI NGLDM, alpha 0, distance 1) agree to ~1e-13, except GLCM joint entropy and IMC1
(~1e-3 relative); 2D NGTDM and 3D GLSZM agree. Not comparable: 2D GLSZM (Nyxus finds 11,893 zones
on the 2D slice where 8-connectivity gives 10,089 and 4-connectivity 12,815) and 3D NGTDM (0.11's
default radius is 0, every value 0; with ``3ngtdm/radius=1`` in ``ibsi`` mode it adds 1 to every
level and counts the ROI bounding box's background voxels as voxels and neighbours).

One timed call = both discretisations (numpy) + ``Nyxus.featurize`` for the intensity image +
``Nyxus.featurize`` for the grey-level image, on in-memory arrays (the 2D in-memory API); once as a
warm-up (``first_ms``), then ``repeats`` times (``times_ms``); ``split_ms`` is the best of each
part. ``intensity_names``/``label_names`` are always passed: 0.11's defaults are mutable lists shared
by every call (filled by the first), so a later call with a different number of slices fails.

3D: 0.11's ``Nyxus3D`` has no in-memory ``featurize``, only ``featurize_files`` /
``featurize_directory`` (NIfTI, DICOM, OME-TIFF files), so a 3D job prints ``{"skipped": reason}``.
With ``"nyxus3d_files": true`` it instead writes the two images and the mask as uncompressed NIfTI-1
files (uint16, or uint32 when needed) into a temporary folder and times
``Nyxus3D.featurize_files`` on them; that call includes writing and decoding the files, so it is not
an in-memory time (``note`` says so).

Prints one JSON object on stdout: the timings (ms), the settings and the last call's feature values
(intensity and texture columns of the single ROI's row).

Kept free of medfeat imports: that venv has only Nyxus and its dependencies.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

GROUPS_2D = ("*ALL_INTENSITY*", "*ALL_GLCM*", "*ALL_GLRLM*", "*ALL_GLSZM*", "*ALL_GLDM*", "*ALL_NGTDM*")
GROUPS_3D = ("*3D_ALL_INTENSITY*", "*3D_GLCM*", "*3D_GLRLM*", "*3D_GLSZM*", "*3D_GLDM*", "*3D_NGTDM*")
THREADS = 1
GLCM_OFFSET = 1
NGTDM_RADIUS = 1  # 3D only: 0.11's 3D default radius is 0, every 3D NGTDM feature 0
NON_FEATURES = ("intensity_image", "mask_image", "ROI_label", "t_index")
LOCATION = ("MEAN", "MEDIAN", "MIN", "MAX", "MODE", "P01", "P10", "P25", "P75", "P90", "P99")


def discretise(image: np.ndarray, mask: np.ndarray, bin_width: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The intensity image, the grey-level image (both uint32, 0 outside the ROI) and the shift.

    Intensities: ``x - min_ROI + 1``. Grey levels: PyRadiomics' fixed bin width,
    ``floor(x / w) - floor(min_ROI / w) + 1``.
    """
    lo = float(image[mask].min())
    shift = 1.0 - lo
    intensity = np.where(mask, image + shift, 0.0).astype(np.uint32)
    levels = np.where(mask, np.floor(image / bin_width) - np.floor(lo / bin_width) + 1, 0.0).astype(np.uint32)
    return intensity, levels, shift


def features_of(df) -> dict:
    """The single ROI's row as ``{column: float}``."""
    if len(df) != 1:
        raise RuntimeError(f"expected one ROI row, Nyxus returned {len(df)}")
    row = df.iloc[0]
    return {k: float(row[k]) for k in df.columns if k not in NON_FEATURES}


def nyxus_2d(groups: tuple[str, ...], ibsi: bool):
    """A 2D ``nyxus.Nyxus`` for ``groups``, one thread, GLCM distance 1."""
    import nyxus

    nyx = nyxus.Nyxus(list(groups), n_feature_calc_threads=THREADS, ibsi=ibsi)
    if any("GLCM" in g for g in groups):
        nyx.set_metaparam(f"glcm/offset={GLCM_OFFSET}")
    return nyx


def nyxus_3d(groups: tuple[str, ...], ibsi: bool):
    """A ``nyxus.Nyxus3D`` for ``groups``, one thread, GLCM distance 1."""
    import nyxus

    nyx = nyxus.Nyxus3D(list(groups), n_feature_calc_threads=THREADS, ibsi=ibsi)
    if any("GLCM" in g for g in groups):
        nyx.set_metaparam(f"3glcm/offset={GLCM_OFFSET}")
    if any("NGTDM" in g for g in groups):
        nyx.set_metaparam(f"3ngtdm/radius={NGTDM_RADIUS}")
    return nyx


def write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, float, float]) -> None:
    """A ``(z, y, x)`` unsigned array as an uncompressed NIfTI-1 file (x fastest, diagonal affine)."""
    codes = {np.dtype(np.uint8): (2, 8), np.dtype(np.uint16): (512, 16), np.dtype(np.uint32): (768, 32)}
    datatype, bitpix = codes[array.dtype]
    nz, ny, nx = array.shape
    sz, sy, sx = (float(s) for s in spacing)
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, datatype, bitpix)
    struct.pack_into("<8f", hdr, 76, 1.0, sx, sy, sz, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<f", hdr, 108, 352.0)       # vox_offset
    struct.pack_into("<f", hdr, 112, 1.0)         # scl_slope
    struct.pack_into("<b", hdr, 123, 2)           # xyzt_units: mm
    struct.pack_into("<hh", hdr, 252, 0, 1)       # qform_code 0, sform_code 1
    struct.pack_into("<4f", hdr, 280, sx, 0.0, 0.0, 0.0)
    struct.pack_into("<4f", hdr, 296, 0.0, sy, 0.0, 0.0)
    struct.pack_into("<4f", hdr, 312, 0.0, 0.0, sz, 0.0)
    hdr[344:348] = b"n+1\0"
    with open(path, "wb") as fh:
        fh.write(bytes(hdr) + b"\0\0\0\0")
        fh.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())


def smallest_uint(array: np.ndarray) -> np.ndarray:
    return array.astype(np.uint16) if array.max() <= np.iinfo(np.uint16).max else array


def run_2d(job: dict, image: np.ndarray, mask: np.ndarray) -> dict:
    """Warm-up and timed calls of the 2D in-memory API on the single slice."""
    intensity_nyx = nyxus_2d(GROUPS_2D[:1], ibsi=False)
    texture_nyx = nyxus_2d(GROUPS_2D[1:], ibsi=True)
    labels = mask[0].astype(np.uint32)
    bin_width = float(job["bin_width"])

    def call() -> tuple[list[float], dict, float]:
        t0 = time.perf_counter()
        intensity, levels, shift = discretise(image[0], mask[0], bin_width)
        t1 = time.perf_counter()
        a = intensity_nyx.featurize(intensity, labels, intensity_names=["intensity"], label_names=["mask"])
        t2 = time.perf_counter()
        b = texture_nyx.featurize(levels, labels, intensity_names=["levels"], label_names=["mask"])
        t3 = time.perf_counter()
        return [t3 - t0, t1 - t0, t2 - t1, t3 - t2], {**features_of(a), **features_of(b)}, shift

    return timed(call, int(job["repeats"]), "2D in-memory API: Nyxus.featurize on numpy arrays")


def run_3d_files(job: dict, image: np.ndarray, mask: np.ndarray) -> dict:
    """Warm-up and timed calls of ``Nyxus3D.featurize_files`` on NIfTI files written per call."""
    intensity_nyx = nyxus_3d(GROUPS_3D[:1], ibsi=False)
    texture_nyx = nyxus_3d(GROUPS_3D[1:], ibsi=True)
    spacing = tuple(job["spacing"])
    bin_width = float(job["bin_width"])
    with tempfile.TemporaryDirectory(prefix="nyxus-worker-") as tmp:
        paths = {k: str(Path(tmp) / f"{k}.nii") for k in ("intensity", "levels", "mask")}

        def call() -> tuple[list[float], dict, float]:
            t0 = time.perf_counter()
            intensity, levels, shift = discretise(image, mask, bin_width)
            write_nifti(Path(paths["intensity"]), smallest_uint(intensity), spacing)
            write_nifti(Path(paths["levels"]), smallest_uint(levels), spacing)
            write_nifti(Path(paths["mask"]), mask.astype(np.uint8), spacing)
            t1 = time.perf_counter()
            a = intensity_nyx.featurize_files([paths["intensity"]], [paths["mask"]], False)
            t2 = time.perf_counter()
            b = texture_nyx.featurize_files([paths["levels"]], [paths["mask"]], False)
            t3 = time.perf_counter()
            return [t3 - t0, t1 - t0, t2 - t1, t3 - t2], {**features_of(a), **features_of(b)}, shift

        return timed(call, int(job["repeats"]),
                     "3D via files: Nyxus3D (0.11) has no in-memory featurize; each call writes three "
                     "uncompressed NIfTI files and runs Nyxus3D.featurize_files on them (file write + "
                     "decode included, not an in-memory time)")


def timed(call, repeats: int, api: str) -> dict:
    """First call, then ``repeats`` timed calls; times in ms, the last call's features."""
    (first, *_), features, shift = call()
    times, split = [], []
    for _ in range(repeats):
        parts, features, shift = call()
        times.append(parts[0] * 1e3)
        split.append([p * 1e3 for p in parts[1:]])
    best = np.min(np.array(split), axis=0) if split else [float("nan")] * 3
    prefix = "3" if api.startswith("3D") else ""
    unshifted = {f"{prefix}{k}": features[f"{prefix}{k}"] - shift for k in LOCATION if f"{prefix}{k}" in features}
    return {"first_ms": first * 1e3, "times_ms": times,
            "split_ms": {"discretise": float(best[0]), "intensity_featurize": float(best[1]),
                         "texture_featurize": float(best[2])},
            "features": features, "unshifted": unshifted, "intensity_offset": shift, "api": api}


def main(path: str) -> None:
    import nyxus

    with open(path) as fh:
        job = json.load(fh)
    image = np.load(job["image"]).astype(np.float64)
    mask = np.load(job["mask"]).astype(bool)
    if image.ndim != 3 or image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be the same (z, y, x) shape")
    if job["force2d"]:
        if image.shape[0] != 1:
            json.dump({"skipped": f"force2d with {image.shape[0]} slices: this worker runs Nyxus' 2D API on a "
                                  "single slice only"}, sys.stdout)
            return
        groups, result = GROUPS_2D, run_2d(job, image, mask)
    else:
        if not job.get("nyxus3d_files"):
            json.dump({"skipped": f"Nyxus {nyxus.__version__}: Nyxus3D has no in-memory featurize (only "
                                  "featurize_files / featurize_directory on NIfTI, DICOM or OME-TIFF files); "
                                  "set nyxus3d_files for a file-based timing"}, sys.stdout)
            return
        groups, result = GROUPS_3D, run_3d_files(job, image, mask)
    features = result.pop("features")
    shift = result.pop("intensity_offset")
    out = {"first_ms": result.pop("first_ms"), "times_ms": result.pop("times_ms"), "nyxus": nyxus.__version__,
           "groups": list(groups),
           "settings": {"n_feature_calc_threads": THREADS, "glcm_offset": GLCM_OFFSET,
                        **({} if job["force2d"] else {"ngtdm_radius": NGTDM_RADIUS}),
                        "texture": {"ibsi": True, "input": "grey levels floor(x/w) - floor(min/w) + 1",
                                    "bin_width": float(job["bin_width"])},
                        "intensity": {"ibsi": False, "input": "x + intensity_offset (uint32)",
                                      "intensity_offset": shift},
                        "coarse_gray_depth": "64 (default; unused: ibsi=True takes the levels as they are)"},
           "features": features, **result,
           "numpy": np.__version__, "python": sys.version.split()[0],
           "note": "texture on the worker's fixed-bin-width grey levels (Nyxus 0.11 has no working fixed bin "
                   "width); intensity features on HU + intensity_offset (location features in HU under "
                   "'unshifted'; ENERGY/RMS/ENTROPY/UNIFORMITY differ by definition); " + result["api"]}
    out.pop("api")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
