"""DICOM Segmentation objects (SEG): one segment's frames -> a voxel mask on an image's grid.

A SEG (Segmentation Storage, Modality ``SEG``) holds, per segment (SegmentSequence: number and
label), frames of ``Rows x Columns`` pixels: 1-bit ``BINARY`` frames, or 8-bit ``FRACTIONAL`` ones
(probability or occupancy up to MaximumFractionalValue; a pixel is in the ROI when its fraction is
at least one half, IBSI's partial-volume rule). Each frame says which segment it belongs to
(SegmentIdentificationSequence) and where it lies in patient coordinates (PlanePositionSequence,
with the PlaneOrientationSequence and PixelMeasuresSequence of the shared or per-frame functional
groups). :func:`seg_mask` places every foreground pixel of the chosen segment on the image's voxel
grid with :func:`medfeat.io.geometry.patient_to_index` (so a SEG drawn on a DICOM series applies to
that series, or to a NIfTI or NRRD conversion of it) and refuses frames that are not on the grid.

pydicom reads the file and unpacks its frames (1-bit packing included); what is read is bounded
first by the sizes the header declares.

References
----------
DICOM PS3.3, A.51 "Segmentation IOD", C.8.20 "Segmentation" modules, and C.7.6.16 "Multi-frame
Functional Groups".

Examples
--------
>>> from medfeat.io import read_image
>>> from medfeat.io.seg import read_seg, seg_mask
>>> image = read_image("ct_series/")                 # doctest: +SKIP
>>> read_seg("seg.dcm").labels                       # doctest: +SKIP
['GTV']
>>> mask = seg_mask("seg.dcm", image, "GTV")         # doctest: +SKIP
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfeat.errors import InputError
from medfeat.image import Image
from medfeat.io._files import check_image_size, read_file
from medfeat.io.geometry import patient_to_index

__all__ = ["Segment", "Segmentation", "find_seg", "read_seg", "seg_mask"]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_ON_GRID = 0.1       # a frame pixel must fall within this many voxels of a voxel centre, in-plane
_ON_SLICE = 0.5      # and within this many slice steps of a slice


@dataclass
class Segment:
    """One segment: SegmentNumber and SegmentLabel."""

    number: int
    label: str


@dataclass
class Segmentation:
    """A SEG file as read: its segments and its frames (not yet placed on any image).

    Attributes
    ----------
    source : str
        The file.
    segments : list of Segment
    frames : ndarray of uint8, ``(n, rows, columns)``
        Foreground (1) or not (0), fractional frames already thresholded at one half.
    frame_segments : ndarray of int
        The segment number of each frame.
    positions : ndarray, ``(n, 3)``
        ImagePositionPatient of each frame (mm, LPS).
    orientation : ndarray, ``(n, 6)``
        ImageOrientationPatient of each frame.
    pixel_spacing : ndarray, ``(n, 2)``
        PixelSpacing (row spacing, column spacing) of each frame (mm).
    frame_of_reference_uid, series_uids :
        What the SEG was drawn on (FrameOfReferenceUID; ReferencedSeriesSequence).
    """

    source: str
    segments: list
    frames: np.ndarray
    frame_segments: np.ndarray
    positions: np.ndarray
    orientation: np.ndarray
    pixel_spacing: np.ndarray
    frame_of_reference_uid: str = ""
    series_uids: tuple = ()

    @property
    def labels(self) -> list[str]:
        """Segment labels, in file order."""
        return [s.label for s in self.segments]

    def segment(self, name: str | None = None, number: int | None = None) -> Segment:
        """The segment labelled ``name`` or numbered ``number``; neither picks the only one."""
        available = ", ".join(f"{s.number}: {s.label!r}" for s in self.segments) or "none"
        if number is not None:
            found = [s for s in self.segments if s.number == number]
            if not found:
                raise InputError(self.source, f"SEG has no segment number {number}; available: {available}")
            if name is not None and found[0].label != name:
                raise InputError(self.source, f"SEG segment {number} is {found[0].label!r}, not {name!r}")
            return found[0]
        if name is None:
            if len(self.segments) == 1:
                return self.segments[0]
            raise InputError(self.source, f"SEG holds {len(self.segments)} segments; choose one with roi=LABEL "
                                          f"(--roi LABEL) or label=NUMBER: {available}")
        found = [s for s in self.segments if s.label == name]
        if not found:
            close = [s.label for s in self.segments if s.label.strip().lower() == name.strip().lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(self.source, f"SEG has no segment labelled {name!r}{hint}; available: {available}")
        if len(found) > 1:
            raise InputError(self.source, f"SEG has {len(found)} segments labelled {name!r} (numbers "
                                          f"{', '.join(str(s.number) for s in found)}): choose one with label=NUMBER")
        return found[0]


def find_seg(path: str | os.PathLike) -> Path | None:
    """The SEG file at ``path``: the file itself, or the only DICOM file of a folder that holds one
    SEG and no images. None when ``path`` is something else."""
    from medfeat.io.dicom import find_dicom_object

    return find_dicom_object(path, "SEG", SEG_SOP_CLASS)


def _group(fg, name: str):
    """The first item of functional group ``name`` in a functional groups item, or None."""
    seq = fg.get(name) if fg is not None else None
    return seq[0] if seq else None


def _floats(values, n: int, what: str, source: str, frame: int) -> np.ndarray:
    try:
        out = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise InputError(source, f"frame {frame + 1}: {what} must be {n} finite numbers")
    return out


def read_seg(path: str | os.PathLike) -> Segmentation:
    """Read a DICOM SEG file: its segments, and its frames with their segment and place.

    Raises
    ------
    InputError
        Not DICOM, not a SEG, truncated or corrupt, sizes beyond medfeat's image limit, frames
        without a segment number or a position, a segmentation type other than BINARY/FRACTIONAL.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    source = os.fspath(path)
    data = read_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # off-standard values are checked below where they matter
            ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise InputError(source, f"not a valid DICOM file ({exc})") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(source, f"truncated or corrupt DICOM file ({type(exc).__name__}: {exc})") from None
    if str(ds.get("Modality", "")) != "SEG" and str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise InputError(source, f"not a DICOM SEG (Modality {str(ds.get('Modality', '')) or 'missing'})")
    kind = str(ds.get("SegmentationType", "")).upper()
    if kind not in ("BINARY", "FRACTIONAL"):
        raise InputError(source, f"SegmentationType {kind or 'missing'} is not supported (BINARY or FRACTIONAL)")
    segments = []
    for item in ds.get("SegmentSequence") or []:
        number = item.get("SegmentNumber")
        if number is None:
            raise InputError(source, "a segment has no SegmentNumber")
        segments.append(Segment(int(number), str(item.get("SegmentLabel", "")).strip()))
    if not segments:
        raise InputError(source, "SEG has no segment (empty SegmentSequence)")
    try:
        n, rows, cols = int(ds.get("NumberOfFrames", 1) or 1), int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise InputError(source, "SEG without valid Rows, Columns and NumberOfFrames") from None
    if n < 1 or rows < 1 or cols < 1:
        raise InputError(source, f"SEG declares {n} frame(s) of {rows} x {cols} pixels")
    check_image_size(source, n * rows * cols, f"{n} frames of {rows}x{cols} pixels")  # unpacked to one byte per pixel
    if "PixelData" not in ds:
        raise InputError(source, "SEG has no pixel data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = np.asarray(ds.pixel_array)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(source, f"cannot decode the SEG frames ({type(exc).__name__}: {exc})") from None
    frames = frames.reshape(n, rows, cols)
    if kind == "FRACTIONAL":
        top = int(ds.get("MaximumFractionalValue", 255) or 255)
        frames = (frames.astype(np.float32) >= 0.5 * top).astype(np.uint8)
    else:
        frames = (frames != 0).astype(np.uint8)
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != n:
        raise InputError(source, f"SEG has {len(per_frame)} per-frame functional group items for {n} frames")
    seg_numbers = np.zeros(n, dtype=np.int64)
    positions, orientation, spacing = np.zeros((n, 3)), np.zeros((n, 6)), np.zeros((n, 2))
    for i, fg in enumerate(per_frame):
        ident = _group(fg, "SegmentIdentificationSequence") or _group(shared, "SegmentIdentificationSequence")
        if ident is None or ident.get("ReferencedSegmentNumber") is None:
            raise InputError(source, f"frame {i + 1} names no segment (SegmentIdentificationSequence)")
        seg_numbers[i] = int(ident.ReferencedSegmentNumber)
        pos = _group(fg, "PlanePositionSequence") or _group(shared, "PlanePositionSequence")
        ori = _group(fg, "PlaneOrientationSequence") or _group(shared, "PlaneOrientationSequence")
        meas = _group(fg, "PixelMeasuresSequence") or _group(shared, "PixelMeasuresSequence")
        if pos is None or ori is None or meas is None:
            raise InputError(source, f"frame {i + 1} has no plane position, orientation or pixel spacing")
        positions[i] = _floats(pos.get("ImagePositionPatient") or (), 3, "ImagePositionPatient", source, i)
        orientation[i] = _floats(ori.get("ImageOrientationPatient") or (), 6, "ImageOrientationPatient", source, i)
        spacing[i] = _floats(meas.get("PixelSpacing") or (), 2, "PixelSpacing", source, i)
        if np.any(spacing[i] <= 0):
            raise InputError(source, f"frame {i + 1}: PixelSpacing must be positive")
    series = []
    for ref in ds.get("ReferencedSeriesSequence") or []:
        if ref.get("SeriesInstanceUID"):
            series.append(str(ref.SeriesInstanceUID))
    return Segmentation(source, segments, frames, seg_numbers, positions, orientation, spacing,
                        str(ds.get("FrameOfReferenceUID", "")), tuple(dict.fromkeys(series)))


def _check_reference(seg: Segmentation, image: Image) -> None:
    meta = image.meta or {}
    if meta.get("format") != "dicom":
        return
    series = meta.get("series_uid", "")
    if seg.series_uids and series and series not in seg.series_uids:
        raise InputError(seg.source, f"SEG was drawn on series {', '.join(seg.series_uids)}, not on this image's "
                                     f"series {series} ({image.source}): give the image series it references")
    frame = meta.get("frame_of_reference_uid", "")
    if frame and seg.frame_of_reference_uid and frame != seg.frame_of_reference_uid:
        raise InputError(seg.source, f"SEG is in frame of reference {seg.frame_of_reference_uid}, the image "
                                     f"({image.source}) in {frame}: they do not share coordinates")


def seg_mask(seg: Segmentation | str | os.PathLike, image: Image, roi: str | None = None,
             number: int | None = None) -> np.ndarray:
    """The voxel mask of one SEG segment on ``image``'s grid.

    Parameters
    ----------
    seg : Segmentation, or path of the SEG file (or of a folder holding it alone)
    image : Image
        The image the segmentation was made on (a DICOM series, or a NIfTI/NRRD file of it).
    roi : str, optional
        SegmentLabel.
    number : int, optional
        SegmentNumber (``label`` in :func:`medfeat.extract`). With neither, the only segment.

    Returns
    -------
    ndarray of bool
        ``image.shape``; the voxels under the segment's foreground pixels.

    Raises
    ------
    InputError
        Unknown segment (the message lists them), a SEG referencing another series or frame of
        reference, frames whose pixels do not fall on the image's voxel centres (another grid:
        resample the image or the SEG first), an empty segment, or one entirely outside the image.
    """
    seg = seg if isinstance(seg, Segmentation) else read_seg(find_seg(seg) or seg)
    segment = seg.segment(roi, number)
    _check_reference(seg, image)
    nz, ny, nx = image.shape
    to_index, positions = patient_to_index(image)
    step = float(np.median(np.diff(positions))) if nz > 1 else float(image.spacing[0])
    mask = np.zeros((nz, ny, nx), dtype=bool)
    mine = np.flatnonzero(seg.frame_segments == segment.number)
    outside = 0
    for i in mine:
        r, c = np.nonzero(seg.frames[i])
        if not r.size:
            continue
        iop = seg.orientation[i]
        row_dir, col_dir = iop[:3], iop[3:]  # direction of increasing column index, of increasing row index
        dr, dc = seg.pixel_spacing[i]
        # one pixel step along a row and along a column must be one voxel step on the image
        x, y, s = to_index(np.array([seg.positions[i], seg.positions[i] + row_dir * dc,
                                     seg.positions[i] + col_dir * dr]))
        steps = np.array([[x[1] - x[0], y[1] - y[0]], [x[2] - x[0], y[2] - y[0]]])
        if (np.abs(np.abs(steps).max(axis=1) - 1) > _ON_GRID).any() or np.abs(steps).min(axis=1).max() > _ON_GRID \
                or max(abs(s[1] - s[0]), abs(s[2] - s[0])) > _ON_GRID * step:
            raise InputError(seg.source, f"segment {segment.label!r}: frame {i + 1} is not in the image's planes or "
                                         f"has another pixel spacing ({dr:g} x {dc:g} mm) than "
                                         f"{image.source or 'the image'}: resample one onto the other first")
        points = seg.positions[i] + np.outer(c * dc, row_dir) + np.outer(r * dr, col_dir)
        x, y, s = to_index(points)
        xi, yi = np.rint(x), np.rint(y)
        off = max(float(np.max(np.abs(x - xi))), float(np.max(np.abs(y - yi))))
        if off > _ON_GRID:
            raise InputError(seg.source, f"segment {segment.label!r}: frame {i + 1}'s pixels are {off:.2f} voxel "
                                         f"off the voxel centres of {image.source or 'the image'}: the SEG is on "
                                         "another grid (resample one onto the other first)")
        k = np.rint(np.interp(s, positions, np.arange(nz))) if nz > 1 else np.zeros_like(s)
        k = k.astype(np.int64)
        near = np.abs(positions[k] - s) <= _ON_SLICE * step
        inside = near & (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
        outside += int(np.count_nonzero(~inside))
        mask[k[inside], yi[inside].astype(np.int64), xi[inside].astype(np.int64)] = True
    if not mask.any():
        if outside:
            raise InputError(seg.source, f"segment {segment.label!r}: all its {outside} pixels lie outside "
                                         f"{image.source or 'the image'}")
        raise InputError(seg.source, f"segment {segment.label!r} is empty (no foreground pixel)")
    return mask
