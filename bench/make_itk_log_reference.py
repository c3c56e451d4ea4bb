"""Writes ``tests/data/itk_log_reference.npz``: outputs of SimpleITK's recursive Gaussian filters
(the real peer PyRadiomics' LoG image type uses) on small seeded random images, for
``tests/test_recursive_gaussian.py``. Run with PyRadiomics' venv (SimpleITK inside):

    bench/.venvs/pyradiomics/bin/python bench/make_itk_log_reference.py
"""
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "itk_log_reference.npz"


def main() -> None:
    rng = np.random.default_rng(20261207)
    data: dict[str, np.ndarray] = {}
    vol = rng.normal(size=(9, 13, 11)) * 100.0  # (z, y, x)
    vol[3:6, 4:9, 2:7] += 500.0  # an edge to smooth
    spacing_xyz = (0.8, 1.1, 3.0)
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing(spacing_xyz)
    data["volume"], data["spacing_zyx"] = vol, np.array(spacing_xyz[::-1])
    for sigma in (0.5, 1.0, 2.5, 6.0):
        f = sitk.LaplacianRecursiveGaussianImageFilter()
        f.SetNormalizeAcrossScale(True)
        f.SetSigma(sigma)
        data[f"log_{sigma}"] = sitk.GetArrayFromImage(f.Execute(img))
        for order in (0, 2):
            g = sitk.RecursiveGaussianImageFilter()
            g.SetSigma(sigma)
            g.SetOrder(order)
            g.SetDirection(0)  # ITK's x: medfeat's last axis
            data[f"gauss_x_order{order}_{sigma}"] = sitk.GetArrayFromImage(g.Execute(img))
    ct = np.round(vol).astype(np.int16)  # PyRadiomics reads CT as int16: ITK returns float32 then
    ict = sitk.GetImageFromArray(ct)
    ict.SetSpacing(spacing_xyz)
    f = sitk.LaplacianRecursiveGaussianImageFilter()
    f.SetNormalizeAcrossScale(True)
    f.SetSigma(1.0)
    out = f.Execute(ict)
    data["int16_volume"], data["int16_log_1.0"] = ct, sitk.GetArrayFromImage(out)
    data["simpleitk_version"] = np.array(sitk.Version.VersionString())
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({sitk.Version.VersionString()}); int16 output {out.GetPixelIDTypeAsString()}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
