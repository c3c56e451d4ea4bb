"""Peer side of bench/filters.py: PyRadiomics 3.0.1 (its venv) and MIRP (its venv), no medfeat imports.

    bench/.venvs/pyradiomics/bin/python _filters_peer_worker.py images JOB.json
    bench/.venvs/pyradiomics/bin/python _filters_peer_worker.py features JOB.json
    bench/.venvs/pyradiomics/bin/python _filters_peer_worker.py pyradiomics-serve PARAMS.yaml
    bench/.venvs/mirp/bin/python        _filters_peer_worker.py mirp-serve SETTINGS.json

``images``: JOB ``{"image", "mask", "out", "sigma": [...], "extra_site": path or null}``. Reads the
NIfTI files with SimpleITK (as PyRadiomics' extractor does), runs every image-type generator of
``radiomics.imageoperations`` (``getLoGImage`` with the sigmas, ``getWaveletImage`` with its defaults:
coif1, level 1, ``getSquareImage``, ``getSquareRootImage``, ``getLogarithmImage``,
``getExponentialImage``, ``getGradientImage``, ``getLBP2DImage``) on the whole image and saves, in
``out``: ``original.npy`` (the whole image as SimpleITK gives it, ``(z, y, x)``, float64),
``<image type name>.npy`` (the response inside the ROI's bounding box, float64) and ``images.json``
(spacing ``(z, y, x)``, the bounding box, the seconds each generator took, types that yielded
nothing and why). ``extra_site`` (appended to ``sys.path``, after the venv's own packages) holds
scikit-image, which PyRadiomics' LBP2D needs and its venv lacks.

``features``: JOB ``{"image", "mask", "params", "extra_site"}``: ``RadiomicsFeatureExtractor(params)
.execute(image, mask)``; prints the feature values (diagnostics left out) as JSON.

``pyradiomics-serve`` / ``mirp-serve``: one warm process; reads JSON jobs ``{"image", "mask"}`` on
stdin, answers one JSON line per job with the wall and CPU seconds of one extraction from the files
(PyRadiomics: ``execute(image_path, mask_path)``; MIRP: ``mirp.extract_features(image=..., mask=...,
**settings)``) and the number of feature values. The first line it writes says it is ready.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings


def _extra_site(path) -> None:
    if path and os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)  # after the venv's site-packages: its numpy wins


def images(job: dict) -> None:
    import numpy as np
    import radiomics
    import SimpleITK as sitk
    from radiomics import imageoperations as io

    _extra_site(job.get("extra_site"))
    radiomics.setVerbosity(logging.ERROR)
    out = job["out"]
    os.makedirs(out, exist_ok=True)
    image = sitk.ReadImage(job["image"])
    mask = sitk.ReadImage(job["mask"])
    arr = sitk.GetArrayFromImage(image)
    roi = sitk.GetArrayFromImage(mask) == int(job.get("label", 1))
    idx = np.nonzero(roi)
    bbox = [[int(i.min()), int(i.max()) + 1] for i in idx]
    crop = tuple(slice(a, b) for a, b in bbox)
    np.save(os.path.join(out, "original.npy"), arr.astype(np.float64))
    kwargs = {"sigma": list(job["sigma"])}
    generators = ["LoG", "Wavelet", "Square", "SquareRoot", "Logarithm", "Exponential", "Gradient", "LBP2D"]
    seconds, missing = {}, {}
    for kind in generators:
        t0 = time.perf_counter()
        produced = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for img, name, _ in getattr(io, f"get{kind}Image")(image, mask, **kwargs):
                resp = sitk.GetArrayFromImage(img)
                seconds[name] = time.perf_counter() - t0
                np.save(os.path.join(out, f"{name}.npy"), resp[crop].astype(np.float64))
                produced += 1
                t0 = time.perf_counter()
        if not produced:
            reason = "yielded no image"
            if kind == "LBP2D":
                try:
                    import skimage  # noqa: F401
                except ImportError:
                    reason = "scikit-image is not importable in PyRadiomics' venv (its LBP2D needs it)"
            missing[kind] = reason
    spacing = [float(s) for s in reversed(image.GetSpacing())]
    meta = {"spacing": spacing, "bbox": bbox, "shape": list(arr.shape), "pixel_type": image.GetPixelIDTypeAsString(),
            "seconds": seconds, "missing": missing, "pyradiomics": radiomics.__version__,
            "simpleitk": sitk.Version.VersionString(), "numpy": np.__version__}
    with open(os.path.join(out, "images.json"), "w") as fh:
        json.dump(meta, fh)


def features(job: dict) -> None:
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    _extra_site(job.get("extra_site"))
    radiomics.setVerbosity(logging.ERROR)
    ex = RadiomicsFeatureExtractor(job["params"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ex.execute(job["image"], job["mask"])
    json.dump({k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}, sys.stdout)


def _serve(extract) -> None:
    for line in sys.stdin:
        job = json.loads(line)
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            n = extract(job["image"], job["mask"])
            answer = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "values": n}
        except Exception as exc:  # reported, the bench goes on
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


def pyradiomics_serve(params: str) -> None:
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    ex = RadiomicsFeatureExtractor(params)
    print(json.dumps({"ready": True, "pyradiomics": radiomics.__version__,
                      "image_types": sorted(ex.enabledImagetypes), "classes": sorted(ex.enabledFeatures)}), flush=True)

    def extract(image, mask):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = ex.execute(image, mask)
        return sum(not k.startswith("diagnostics_") for k in result)

    _serve(extract)


def mirp_serve(settings_path: str) -> None:
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    from importlib.metadata import version

    from mirp import extract_features

    with open(settings_path) as fh:
        settings = json.load(fh)
    print(json.dumps({"ready": True, "mirp": version("mirp")}), flush=True)

    def extract(image, mask):
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # MIRP prints its warnings
            tables = extract_features(image=image, mask=mask, **settings)
        return int(tables[0].shape[1])

    _serve(extract)


def main(argv: list[str]) -> None:
    mode, arg = argv[1], argv[2]
    if mode in ("images", "features"):
        with open(arg) as fh:
            job = json.load(fh)
        (images if mode == "images" else features)(job)
    elif mode == "pyradiomics-serve":
        pyradiomics_serve(arg)
    elif mode == "mirp-serve":
        mirp_serve(arg)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
