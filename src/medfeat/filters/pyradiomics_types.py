"""PyRadiomics' image types that are not IBSI chapter-2 filters: Square, SquareRoot, Logarithm,
Exponential, Gradient, LBP2D, and its scale-normalised LoG.

Definitions follow PyRadiomics 3.0.1 (``radiomics/imageoperations.py``, "Image types" in its
documentation); the intensity maps keep the image's range as PyRadiomics does:

- Square: ``(x / sqrt(max|x|))^2``;
- SquareRoot: ``sign(x) sqrt(|x| max|x|)``;
- Logarithm: ``sign(x) log(|x| + 1)``, rescaled so that ``max|.|`` equals the image's ``max|x|``;
- Exponential: ``exp(x log(max|x|) / max|x|)``;
- Gradient: the gradient magnitude with the voxel spacing, central differences, the edge voxel
  repeated at the border (ITK's GradientMagnitudeImageFilter with its zero-flux Neumann boundary);
- LBP2D: uniform, rotation-invariant local binary patterns of each axial slice (scikit-image,
  radius 1 voxel, 8 samples by default, as PyRadiomics' ``lbp2DRadius``/``lbp2DSamples``);
- LoG (PyRadiomics): ``sigma^2 x`` the Laplacian of a Gaussian of ``sigma`` mm, exactly as PyRadiomics
  computes it: ITK's ``LaplacianRecursiveGaussian`` with ``NormalizeAcrossScale`` (Deriche's
  recursive approximation, the edge value repeated beyond the border; see
  :mod:`medfeat.filters.recursive_gaussian`), bit for bit SimpleITK's float32 map. IBSI's LoG
  (sampled kernels) is the ``log`` filter.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from medfeat.filters.boundary import as_float


def _peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def square_image(image) -> np.ndarray:
    """PyRadiomics' Square image type."""
    x = as_float(image)
    m = _peak(x)
    return (x / np.sqrt(m)) ** 2 if m else x.copy()


def square_root_image(image) -> np.ndarray:
    """PyRadiomics' SquareRoot image type."""
    x = as_float(image)
    m = _peak(x)
    return np.sign(x) * np.sqrt(np.abs(x) * m)


def logarithm_image(image) -> np.ndarray:
    """PyRadiomics' Logarithm image type."""
    x = as_float(image)
    m = _peak(x)
    out = np.sign(x) * np.log1p(np.abs(x))
    p = _peak(out)
    return out * (m / p) if p else out


def exponential_image(image) -> np.ndarray:
    """PyRadiomics' Exponential image type."""
    x = as_float(image)
    m = _peak(x)
    coeff = np.log(m) / m if m > 0 else 0.0
    return np.exp(coeff * x)


def gradient_image(image, spacing) -> np.ndarray:
    """PyRadiomics' Gradient image type: gradient magnitude in intensity per mm."""
    x = as_float(image)
    out = np.zeros_like(x)
    for axis, h in enumerate(spacing):
        if x.shape[axis] < 2:
            continue
        d = ndimage.correlate1d(x, np.array([-1.0, 0.0, 1.0]) / (2.0 * float(h)), axis=axis, mode="nearest")
        out += d * d
    return np.sqrt(out)


def lbp2d_image(image, radius: float = 1.0, samples: int = 8) -> np.ndarray:
    """PyRadiomics' LBP2D image type: uniform local binary patterns per axial slice."""
    from skimage.feature import local_binary_pattern

    import warnings

    x = as_float(image)
    with warnings.catch_warnings():  # scikit-image's note on float input: PyRadiomics passes floats too
        warnings.simplefilter("ignore", UserWarning)
        return np.stack([local_binary_pattern(s, samples, radius, method="uniform") for s in x]).astype(np.float64)


def pyradiomics_log_image(image, sigma_mm: float, spacing) -> np.ndarray:
    """PyRadiomics' LoG image type (scale-normalised Laplacian of Gaussian, sigma in mm)."""
    from medfeat.filters.recursive_gaussian import laplacian_recursive_gaussian

    return laplacian_recursive_gaussian(image, sigma_mm, spacing, normalize=True).astype(np.float64)
