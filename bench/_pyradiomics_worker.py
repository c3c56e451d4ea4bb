"""PyRadiomics side of bench/extract_speed.py; runs under bench/.venvs/pyradiomics/bin/python.

    python _pyradiomics_worker.py JOB.json

JOB.json: ``{"image": "image.npy", "mask": "mask.npy", "spacing": [z, y, x], "force2d": bool,
"bin_width": 25.0, "repeats": 3, "classes": [...], "context": bool}``; arrays are ``(z, y, x)``, the
mask boolean. Builds in-memory SimpleITK images and runs ``RadiomicsFeatureExtractor.execute`` on
the Original image (fixed bin width, no resampling, no normalisation):

* matched: the feature ``classes`` (default: all seven, ``firstorder``, ``shape``, ``glcm``,
  ``glrlm``, ``glszm``, ``gldm``, ``ngtdm``; with ``force2d`` the class ``shape`` means
  ``shape2D``, PyRadiomics' shape of a slice), without diagnostics (``additionalInfo`` off); once
  as a warm-up, then ``repeats`` timed times. Its features are returned.
* with ``context``: PyRadiomics' default ``execute`` (diagnostics on, the classes it enables by
  default: 3D ``shape`` even with ``force2d``), once.

Prints one JSON object on stdout: the timings (ms) and the matched run's feature values.

Kept free of medfeat imports: that venv has only PyRadiomics and its dependencies.
"""
from __future__ import annotations

import json
import logging
import sys
import time

import numpy as np
import SimpleITK as sitk


def sitk_images(job: dict) -> tuple[sitk.Image, sitk.Image]:
    """The job's arrays as SimpleITK images (SimpleITK takes ``(z, y, x)`` arrays, (x, y, z) spacing)."""
    image = sitk.GetImageFromArray(np.load(job["image"]))
    mask = sitk.GetImageFromArray(np.load(job["mask"]).astype(np.uint8))
    spacing = tuple(float(s) for s in reversed(job["spacing"]))
    image.SetSpacing(spacing)
    mask.SetSpacing(spacing)
    return image, mask


MATCHED = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def extractor(job: dict, classes: tuple[str, ...] | None = MATCHED, diagnostics: bool = False):
    """An extractor for ``classes`` (None: PyRadiomics' default feature classes)."""
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    ex = RadiomicsFeatureExtractor(
        binWidth=float(job["bin_width"]), force2D=bool(job["force2d"]), force2Ddimension=0,
        normalize=False, resampledPixelSpacing=None, voxelArrayShift=0, label=1,
        additionalInfo=diagnostics)  # diagnostics: image/mask hashes, checks, statistics (not features)
    ex.disableAllImageTypes()
    ex.enableImageTypeByName("Original")
    if classes is not None:
        if job["force2d"]:
            classes = tuple("shape2D" if c == "shape" else c for c in classes)
        ex.disableAllFeatures()
        ex.enableFeaturesByName(**{c: [] for c in classes})
    return ex


def timed(ex, image, mask, repeats: int) -> tuple[list[float], dict]:
    """Times (ms) of ``repeats`` calls of ``ex.execute`` and the last result."""
    times, result = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = ex.execute(image, mask)
        times.append((time.perf_counter() - t0) * 1e3)
    return times, result


def main(path: str) -> None:
    import radiomics

    with open(path) as fh:
        job = json.load(fh)
    image, mask = sitk_images(job)
    repeats = int(job["repeats"])
    ex = extractor(job, tuple(job.get("classes") or MATCHED))
    (first_ms,), result = timed(ex, image, mask, 1)  # warm-up
    times, _ = timed(ex, image, mask, repeats)
    out = {"first_ms": first_ms, "times_ms": times, "classes": sorted(ex.enabledFeatures),
           "features": {k[len("original_"):]: float(v) for k, v in result.items() if k.startswith("original_")},
           "pyradiomics": radiomics.__version__, "simpleitk": sitk.Version.VersionString(),
           "numpy": np.__version__, "python": sys.version.split()[0]}
    if job.get("context"):
        ex = extractor(job, classes=None, diagnostics=True)
        out["all_classes"] = sorted(ex.enabledFeatures)
        (out["all_classes_ms"],), _ = timed(ex, image, mask, 1)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
