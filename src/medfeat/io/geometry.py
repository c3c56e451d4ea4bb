"""Where patient coordinates (DICOM's LPS, mm) fall on an image's voxel grid: shared by the masks
drawn in patient space (RTSTRUCT contours, DICOM SEG frames).

- DICOM images: ImagePositionPatient of the first slice (medfeat's ``origin``, reversed),
  ImageOrientationPatient (``meta["orientation"]``), PixelSpacing and the slice positions (irregular
  slice gaps from ``meta["irregular_slice_spacing"]``);
- images with an affine (NIfTI, NRRD: ``meta["affine"]``, RAS+ over (x, y, z) indices, turned into LPS);
- anything else: axes along the patient x, y, z axes from ``origin`` with ``spacing``.
"""
from __future__ import annotations

import numpy as np

from medfeat.errors import InputError
from medfeat.image import Image

__all__ = ["slice_positions", "patient_to_index"]


def slice_positions(image: Image) -> np.ndarray:
    """Slice positions along the normal, relative to the first slice (mm)."""
    gaps = image.meta.get("irregular_slice_spacing")
    if gaps is not None and len(gaps) == image.shape[0] - 1:
        return np.concatenate([[0.0], np.cumsum(np.asarray(gaps, dtype=np.float64))])
    return np.arange(image.shape[0], dtype=np.float64) * image.spacing[0]


def patient_to_index(image: Image):
    """A function mapping patient (LPS) points ``(n, 3)`` to fractional ``(x, y)`` voxel indices and
    a position along the slice normal in mm (relative to the first slice); and the slice positions."""
    meta = image.meta or {}
    dz, dy, dx = image.spacing
    if meta.get("format") == "dicom":
        iop = meta.get("orientation")
        if iop is None:
            raise InputError(image.source, "DICOM image without ImageOrientationPatient: cannot place patient coordinates on it")
        row, col = np.asarray(iop[:3], dtype=np.float64), np.asarray(iop[3:], dtype=np.float64)
        normal = np.cross(row, col)
        first = np.asarray(image.origin[::-1], dtype=np.float64)  # ImagePositionPatient of slice 0

        def to_index(points):
            d = points - first
            return d @ row / dx, d @ col / dy, d @ normal

        return to_index, slice_positions(image)
    affine = meta.get("affine")
    if affine is not None:  # NIfTI: (i, j, k) = (x, y, z) index -> RAS mm; LPS flips the first two axes
        a = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)
        inv = np.linalg.inv(a)

        def to_index(points):
            ijk = points @ inv[:3, :3].T + inv[:3, 3]
            return ijk[:, 0], ijk[:, 1], ijk[:, 2] * dz

        return to_index, np.arange(image.shape[0], dtype=np.float64) * dz
    first = np.asarray(image.origin[::-1], dtype=np.float64)

    def to_index(points):
        d = points - first
        return d[:, 0] / dx, d[:, 1] / dy, d[:, 2]

    return to_index, np.arange(image.shape[0], dtype=np.float64) * dz
