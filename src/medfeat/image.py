"""The in-memory image every reader returns and every feature family consumes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ITU-R BT.601 luma weights: the conventional RGB -> intensity conversion
# (also what Pillow's "L" mode uses), so a greyscale copy of a colour image
# gives the same radiomics features as the colour image itself.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass
class Image:
    """A medical image in medfeat's canonical layout.

    Attributes
    ----------
    array : ndarray
        Voxel values, shape ``(z, y, x)`` for intensity images or ``(z, y, x, 3)``
        for RGB colour images. A 2D picture has ``z == 1``.
    spacing : tuple of float
        Voxel size in mm, ``(z, y, x)``. Pictures without a physical size get 1 mm.
    origin : tuple of float
        Position of the first voxel centre in mm, ``(z, y, x)``.
    modality : str
        DICOM-style modality (``"CT"``, ``"MR"``, ``"PT"``, ``"OT"`` ...) or ``""``.
    source : str
        Where the image was read from (path or URL).
    sha256 : str
        Hex digest of the source file's bytes (of all files, in sorted order,
        for a DICOM series), ``""`` for images built in memory.
    meta : dict
        Format-specific extras (bit depth, rescale parameters, ...).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    modality: str = ""
    source: str = ""
    sha256: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3):
            raise ValueError(f"Image array must be (z, y, x) or (z, y, x, 3), got shape {arr.shape}")
        self.array = arr
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)

    @property
    def is_rgb(self) -> bool:
        return self.array.ndim == 4

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(z, y, x)``."""
        return tuple(self.array.shape[:3])

    def intensity(self) -> np.ndarray:
        """Intensity array ``(z, y, x)`` as float64; RGB is converted to BT.601 luma. NaN stay NaN:
        whoever needs finite values checks them (a signalling NaN of a float32 file would otherwise make
        the cast print numpy's "invalid value encountered in cast" warning)."""
        with np.errstate(invalid="ignore"):
            if self.is_rgb:
                return self.array.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)
            return self.array.astype(np.float64, copy=False)
