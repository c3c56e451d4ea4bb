"""PyRadiomics side of bench/pyradiomics_params.py; runs under bench/.venvs/pyradiomics/bin/python.

    python _pyradiomics_params_worker.py JOB.json

JOB.json: ``{"params": "PARAMS.yaml", "cases": [{"id": "STS_001", "image": "...nii.gz",
"mask": "...nii.gz"}, ...]}``. Builds one ``RadiomicsFeatureExtractor(params)`` from the parameter
file, exactly as a PyRadiomics user would, and runs ``execute(image, mask)`` on every case (file
paths: PyRadiomics reads them with SimpleITK). Prints one JSON object on stdout: per case its
``original_*`` feature values (or the error), and the versions.

Kept free of medfeat imports: that venv has only PyRadiomics and its dependencies.
"""
from __future__ import annotations

import json
import logging
import sys


def main(path: str) -> None:
    import numpy as np
    import radiomics
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    radiomics.setVerbosity(logging.ERROR)
    with open(path) as fh:
        job = json.load(fh)
    ex = RadiomicsFeatureExtractor(job["params"])
    cases = {}
    for case in job["cases"]:
        try:
            result = ex.execute(case["image"], case["mask"])
            cases[case["id"]] = {"features": {k: float(v) for k, v in result.items() if k.startswith("original_")}}
        except Exception as exc:  # reported per case, as the bench compares the others
            cases[case["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump({"cases": cases, "pyradiomics": radiomics.__version__, "simpleitk": sitk.Version.VersionString(),
               "numpy": np.__version__, "python": sys.version.split()[0]}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
