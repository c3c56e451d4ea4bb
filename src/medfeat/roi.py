"""The region of interest of one image, processed per :class:`~medfeat.settings.Settings` (cropped,
rounded, re-segmented, discretised) and ready for the feature families (:mod:`medfeat.families`)."""
from __future__ import annotations

from functools import cached_property
from typing import Iterable

import numpy as np

from medfeat import processing
from medfeat.errors import InputError
from medfeat.image import Image
from medfeat.settings import Settings


class ROI:
    """An image's region of interest, processed per :class:`Settings` and ready for the families.

    Everything is computed lazily, once: a family that does not need grey levels never pays for
    discretisation.
    """

    def __init__(self, intensities: np.ndarray, morph_mask: np.ndarray, settings: Settings,
                 spacing: tuple[float, float, float], source: str, pixels: Image | None = None,
                 intensity_mask: np.ndarray | None = None, pack_gift: bool = False):
        self.settings = settings
        self.spacing = spacing
        self.source = source
        self.pixels = pixels  # the image's ROI box as read (colour kept), for the gift family
        self.pack_gift = pack_gift  # the gift family's codes as one value (see medfeat.pipeline.extract)
        box = processing.bounding_box(morph_mask)
        self._around, self._box = intensities, box  # what the ROI box was cut from (local intensity)
        self.image = intensities[box]  # float64, or the image's own integer type
        if settings.round_intensities and self.image.dtype.kind == "f":
            self.image = np.round(self.image)
        self.morph_mask = morph_mask[box]
        mask = self.morph_mask
        if intensity_mask is not None:  # a filtered image: re-segmented on the original intensities
            self.mask = intensity_mask[box] & mask
            return
        if settings.resegment_min is not None or settings.resegment_max is not None:
            mask = processing.resegment_range(self.image, mask, settings.resegment_min, settings.resegment_max)
        if settings.outlier_sigma is not None:
            mask = processing.resegment_outliers(self.image, mask, settings.outlier_sigma)
        self.mask = mask

    @property
    def box(self) -> tuple[slice, ...]:
        """Where the ROI's arrays (:attr:`image`, :attr:`mask`, :attr:`levels`) lie in the
        intensities it was made from: the bounding box of its morphological mask."""
        return self._box

    @cached_property
    def surroundings(self) -> tuple[np.ndarray, tuple[slice, ...]]:
        """The intensities this ROI was cut from, rounded like :attr:`image`, and where
        :attr:`image` lies in them: the ROI box and the image around it as far as the caller
        gave it (:func:`medfeat.extract` widens it for the ``li`` family, whose spheres reach outside
        the ROI, IBSI 3.2)."""
        around = self._around
        return (np.round(around) if self.settings.round_intensities and around.dtype.kind == "f" else around), self._box

    @cached_property
    def values(self) -> np.ndarray:
        """Intensities of the voxels in the intensity mask (1-D, float64)."""
        return self.image[self.mask].astype(np.float64, copy=False)

    def _discretise(self, method: str, n: int, width: float) -> tuple[np.ndarray, int]:
        x = self.values
        s = self.settings
        if method == "fbn":
            return processing.discretise_fixed_bin_number(x, n), n
        if method == "fbs":
            levels = processing.discretise_fixed_bin_size(x, width, s.resegment_min)
            return levels, int(levels.max())
        if not np.all(x == np.round(x)):
            raise InputError(self.source, "discretisation 'none' needs integer intensities; use 'fbn' or 'fbs'")
        lo = s.resegment_min if s.resegment_min is not None else x.min()
        levels = (x - np.floor(lo)).astype(np.int32) + 1
        return levels, int(levels.max())

    @cached_property
    def level_values(self) -> tuple[np.ndarray, int]:
        """Discretised grey levels of the intensity-mask voxels (1-D) and the number of levels."""
        s = self.settings
        return self._discretise(s.discretisation, s.bin_number, s.bin_width)

    @cached_property
    def n_levels(self) -> int:
        """The number of grey levels of the discretisation (``N_g``)."""
        return self.level_values[1]

    # the large arrays a ROI caches, and what each is derived from (see :meth:`release`)
    _DERIVED = {"values": (), "level_values": ("values",), "levels": ("level_values",),
                "n_levels": ("level_values",)}

    def release(self, still_needed: Iterable[str]) -> None:
        """Drop the cached arrays that neither ``still_needed`` (names of cached properties, such
        as :attr:`medfeat.families.Family.uses` of the families still to compute) nor what they
        derive from need: on a large ROI each is hundreds of MB (float64 values of a 34 M-voxel ROI:
        272 MB)."""
        need = set(still_needed)
        pending = [k for k in need if k in self._DERIVED]
        while pending:
            key = pending.pop()
            if key not in self.__dict__:  # not computed yet: keep its sources
                for src in self._DERIVED[key]:
                    if src not in need:
                        need.add(src)
                        pending.append(src)
        for key in ("values", "level_values", "levels"):
            if key not in need:
                self.__dict__.pop(key, None)

    @cached_property
    def levels(self) -> np.ndarray:
        """Discretised grey levels as an array over the ROI box, 0 outside the intensity mask."""
        out = np.zeros(self.image.shape, dtype=np.int32)
        out[self.mask] = self.level_values[0]
        return out

    def ivh_representation(self) -> tuple[np.ndarray, np.ndarray]:
        """ROI intensities as the IVH sees them, and the IVH's intensity set ``G``."""
        s = self.settings
        x = self.values
        if s.ivh_discretisation == "fbn":
            levels = processing.discretise_fixed_bin_number(x, s.ivh_bin_number)
            return levels, np.arange(1, s.ivh_bin_number + 1, dtype=np.float64)
        if s.ivh_discretisation == "fbs":
            w = s.ivh_bin_width
            lo = s.resegment_min if s.resegment_min is not None else x.min()
            levels = processing.discretise_fixed_bin_size(x, w, lo)
            top = levels.max()
            if s.resegment_max is not None:
                top = max(top, int(processing.discretise_fixed_bin_size(np.array([s.resegment_max]), w, lo)[0]))
            centres = lo + (np.arange(1, top + 1) - 0.5) * w
            return lo + (levels - 0.5) * w, centres
        lo = s.resegment_min if s.resegment_min is not None else x.min()
        hi = s.resegment_max if s.resegment_max is not None else x.max()
        if np.all(x == np.round(x)):
            grid = np.arange(np.ceil(lo), np.floor(hi) + 1, dtype=np.float64)
            x = x.astype(np.int64)  # integer intensities take the IVH's counting path
        else:  # continuous intensities: the values present are all the IVH can resolve
            grid = np.unique(x)
        return x, grid

