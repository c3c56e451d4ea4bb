"""DICOM RT Structure Sets (RTSTRUCT): a named ROI's contours -> a voxel mask on an image's grid.

An RTSTRUCT holds, per ROI (StructureSetROISequence: number and name), closed planar polygons
(ROIContourSequence -> ContourSequence, ``ContourGeometricType`` ``CLOSED_PLANAR``) whose vertices
(ContourData) are in DICOM patient coordinates (LPS, mm). :func:`rtstruct_mask` maps them to the
image's voxel index space with the image's geometry:

- DICOM images: ImagePositionPatient of the first slice (medfeat's ``origin``, reversed),
  ImageOrientationPatient (``meta["orientation"]``), PixelSpacing and the slice spacing (irregular
  slice gaps from ``meta["irregular_slice_spacing"]``);
- NIfTI images: the affine (``meta["affine"]``, RAS+, turned into LPS);
- anything else: axes along the patient x, y, z axes from ``origin`` with ``spacing``.

Each contour is matched to the slice nearest to its plane (its position along the slice normal);
it is rasterised on that slice by the even-odd (crossing number) rule at voxel centres, and all the
contours of a slice are combined by the same rule, so a contour inside another is a hole. A voxel
centre is inside when a ray from it along +x crosses the polygon an odd number of times; edges count
for the rows ``y`` with ``min(y0, y1) <= y < max(y0, y1)`` and crossings at ``x`` itself do not count
(so of two polygons sharing an edge, exactly one holds the voxel centres on it).

References
----------
DICOM PS3.3, C.8.8.5 "Structure Set Module", C.8.8.6 "ROI Contour Module" and C.7.6.2.1.1
"Image Position and Image Orientation".
Shimrat M., "Algorithm 112: Position of point relative to polygon", Communications of the ACM 5
(1962) 434 (the crossing number test).

Examples
--------
>>> from medfeat.io import read_image
>>> from medfeat.io.rtstruct import read_rtstruct, rtstruct_mask
>>> image = read_image("ct_series/")                                  # doctest: +SKIP
>>> read_rtstruct("ct_series_rs/RS.dcm").names                        # doctest: +SKIP
['GTV-1']
>>> mask = rtstruct_mask("ct_series_rs/RS.dcm", image, "GTV-1")       # doctest: +SKIP
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medfeat.errors import InputError
from medfeat.image import Image
from medfeat.io.geometry import patient_to_index

__all__ = ["Structure", "RTStruct", "find_rtstruct", "read_rtstruct", "rtstruct_mask", "contours_to_mask"]

_PLANE_TOLERANCE = 0.5  # a contour's vertices may spread this many slices along the normal


@dataclass
class Structure:
    """One ROI of a structure set.

    Attributes
    ----------
    number : int
        ROINumber.
    name : str
        ROIName.
    frame_of_reference_uid : str
        ReferencedFrameOfReferenceUID ("" when absent).
    contours : list of ndarray
        The CLOSED_PLANAR contours, each ``(n, 3)`` vertices in patient coordinates (mm).
    skipped : int
        Contours of other geometric types (POINT, OPEN_PLANAR ...), left out.
    """

    number: int
    name: str
    frame_of_reference_uid: str = ""
    contours: list = field(default_factory=list)
    skipped: int = 0


@dataclass
class RTStruct:
    """A structure set: its ROIs and the image series it was drawn on.

    Attributes
    ----------
    source : str
        The file.
    structures : list of Structure
        In StructureSetROISequence order.
    series_uids : tuple of str
        SeriesInstanceUIDs of the referenced image series (may be empty).
    frame_of_reference_uids : tuple of str
        Referenced frames of reference.
    """

    source: str
    structures: list
    series_uids: tuple = ()
    frame_of_reference_uids: tuple = ()

    @property
    def names(self) -> list[str]:
        """ROI names, in file order."""
        return [s.name for s in self.structures]

    def structure(self, name: str | None) -> Structure:
        """The ROI called ``name``; None picks the only one.

        Raises
        ------
        InputError
            No such ROI (the message lists the names there are), several ROIs of that name, or
            ``name`` None with several ROIs.
        """
        available = ", ".join(repr(n) for n in self.names) or "none"
        if name is None:
            if len(self.structures) == 1:
                return self.structures[0]
            raise InputError(self.source, f"RTSTRUCT holds {len(self.structures)} ROIs; choose one with roi=NAME "
                                          f"(--roi NAME): {available}")
        found = [s for s in self.structures if s.name == name]
        if not found:
            close = [s.name for s in self.structures if s.name.strip().lower() == name.strip().lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(self.source, f"RTSTRUCT has no ROI named {name!r}{hint}; available: {available}")
        if len(found) > 1:
            raise InputError(self.source, f"RTSTRUCT has {len(found)} ROIs named {name!r} (ROI numbers "
                                          f"{', '.join(str(s.number) for s in found)})")
        return found[0]


def _dataset(path: str | os.PathLike):
    import pydicom
    from pydicom.errors import InvalidDicomError

    from medfeat.io._files import read_file

    data = read_file(path)
    try:
        with warnings.catch_warnings():
            # pydicom's warnings are about values off the standard's VR rules; the contours that
            # matter are checked in read_rtstruct, so they are dropped rather than leaked to stderr
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise InputError(path, f"not a valid DICOM file ({exc})") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(path, f"truncated or corrupt DICOM file ({type(exc).__name__}: {exc})") from None


def find_rtstruct(path: str | os.PathLike) -> Path | None:
    """The RTSTRUCT file at ``path``: the file itself, or the only DICOM file of a folder that holds
    one RTSTRUCT and no images. None when ``path`` is something else (an image, a mask image)."""
    from medfeat.io.dicom import find_dicom_object

    return find_dicom_object(path, "RTSTRUCT", "1.2.840.10008.5.1.4.1.1.481.3")


def _floats(values) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def read_rtstruct(path: str | os.PathLike) -> RTStruct:
    """Read an RTSTRUCT file's ROIs and contours.

    Parameters
    ----------
    path : str or path-like
        The RTSTRUCT file, or a folder holding it alone (see :func:`find_rtstruct`).

    Returns
    -------
    RTStruct

    Raises
    ------
    InputError
        Unreadable file, not an RTSTRUCT, malformed ContourData.
    """
    with warnings.catch_warnings():
        # pydicom warns while converting values off the VR rules (a DS with too many digits ...);
        # malformed contours are refused by the checks below, the rest is not worth a stderr line
        warnings.simplefilter("ignore")
        return _read_rtstruct(path)


def _read_rtstruct(path: str | os.PathLike) -> RTStruct:
    p = Path(path)
    if p.is_dir():
        found = find_rtstruct(p)
        if found is None:
            raise InputError(path, "folder holds no RTSTRUCT file (or more than one DICOM file)")
        p = found
    ds = _dataset(p)
    source = str(path)
    if str(ds.get("Modality", "")) != "RTSTRUCT" and "StructureSetROISequence" not in ds:
        raise InputError(source, f"not an RTSTRUCT (Modality {ds.get('Modality', '?')})")
    structures: dict[int, Structure] = {}
    for item in ds.get("StructureSetROISequence", []):
        number = int(item.get("ROINumber", -1))
        structures[number] = Structure(number, str(item.get("ROIName", "")),
                                       str(item.get("ReferencedFrameOfReferenceUID", "")))
    for item in ds.get("ROIContourSequence", []):
        number = int(item.get("ReferencedROINumber", -1))
        s = structures.setdefault(number, Structure(number, f"ROI {number}"))
        for contour in item.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                s.skipped += 1
                continue
            pts = _floats(contour.get("ContourData", []))
            if pts is None or pts.size % 3 or not np.all(np.isfinite(pts)):
                raise InputError(source, f"ROI {s.name!r}: malformed ContourData")
            if pts.size >= 9:  # fewer than 3 vertices enclose nothing
                s.contours.append(pts.reshape(-1, 3))
    series, frames = [], []
    for ref in ds.get("ReferencedFrameOfReferenceSequence", []):
        if ref.get("FrameOfReferenceUID"):
            frames.append(str(ref.FrameOfReferenceUID))
        for study in ref.get("RTReferencedStudySequence", []):
            for ser in study.get("RTReferencedSeriesSequence", []):
                if ser.get("SeriesInstanceUID"):
                    series.append(str(ser.SeriesInstanceUID))
    return RTStruct(source, list(structures.values()), tuple(dict.fromkeys(series)), tuple(dict.fromkeys(frames)))


def _crossings(xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices ``row * (nx + 1) + k`` of one polygon's crossings with the voxel-centre rows, where
    ``k`` is the number of voxel centres of that row strictly left of the crossing."""
    ny, nx = shape
    x0, y0 = xs, ys
    x1, y1 = np.roll(xs, -1), np.roll(ys, -1)
    keep = y0 != y1
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    lo = np.maximum(np.ceil(np.minimum(y0, y1)), 0).astype(np.int64)
    hi = np.minimum(np.ceil(np.maximum(y0, y1)) - 1, ny - 1).astype(np.int64)  # rows lo..hi (half-open rule)
    n = np.maximum(hi - lo + 1, 0)
    if not n.sum():
        return np.empty(0, dtype=np.int64)
    edge = np.repeat(np.arange(len(n)), n)
    rows = lo[edge] + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    xc = x0[edge] + (rows - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    k = np.clip(np.ceil(xc), 0, nx).astype(np.int64)
    return rows * (nx + 1) + k


def contours_to_mask(polygons, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise polygons on one slice by the even-odd rule at voxel centres.

    Parameters
    ----------
    polygons : iterable of (xs, ys)
        Vertex coordinates in voxel index units (column ``x``, row ``y``; voxel centres at integers).
    shape : (int, int)
        ``(rows, columns)`` of the slice.

    Returns
    -------
    ndarray of bool
        Voxels whose centre lies inside an odd number of the polygons.

    Examples
    --------
    >>> m = contours_to_mask([(np.array([0.5, 3.5, 3.5, 0.5]), np.array([0.5, 0.5, 2.5, 2.5]))], (4, 5))
    >>> m.astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    ny, nx = shape
    flat = [_crossings(np.asarray(xs, np.float64), np.asarray(ys, np.float64), shape) for xs, ys in polygons]
    flat = np.concatenate(flat) if flat else np.empty(0, dtype=np.int64)
    counts = np.bincount(flat, minlength=ny * (nx + 1)).reshape(ny, nx + 1)
    # voxel x is inside when the crossings right of it (k > x) are odd in number
    right = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    return (right[:, 1:] & 1).astype(bool)


def _check_reference(rs: RTStruct, structure: Structure, image: Image) -> None:
    meta = image.meta or {}
    if meta.get("format") != "dicom":
        return
    series = meta.get("series_uid", "")
    if rs.series_uids and series and series not in rs.series_uids:
        raise InputError(rs.source, f"RTSTRUCT was drawn on series {', '.join(rs.series_uids)}, not on this image's "
                                    f"series {series} ({image.source}): give the image series it references")
    frame = meta.get("frame_of_reference_uid", "")
    ref = structure.frame_of_reference_uid
    if frame and ref and frame != ref:
        raise InputError(rs.source, f"ROI {structure.name!r} is in frame of reference {ref}, the image "
                                    f"({image.source}) in {frame}: they do not share coordinates")


def rtstruct_mask(rtstruct: RTStruct | str | os.PathLike, image: Image, roi: str | None = None) -> np.ndarray:
    """The voxel mask of one RTSTRUCT ROI on ``image``'s grid.

    Parameters
    ----------
    rtstruct : RTStruct, or path of the RTSTRUCT file (or of a folder holding it alone)
    image : Image
        The image the contours were drawn on (a DICOM series, or a NIfTI file of it).
    roi : str, optional
        ROIName; may be omitted when the structure set holds one ROI.

    Returns
    -------
    ndarray of bool
        ``image.shape``; voxels whose centre lies inside the ROI's contours on their slice.

    Raises
    ------
    InputError
        Unknown ROI name (the message lists the names), an RTSTRUCT referencing another series or
        frame of reference, an ROI without closed contours, contours not in the image's slice
        planes, or contours all outside the image.
    """
    rs = rtstruct if isinstance(rtstruct, RTStruct) else read_rtstruct(rtstruct)
    structure = rs.structure(roi)
    _check_reference(rs, structure, image)
    if not structure.contours:
        extra = f" ({structure.skipped} contours of other types)" if structure.skipped else ""
        raise InputError(rs.source, f"ROI {structure.name!r} has no CLOSED_PLANAR contour{extra}")
    nz, ny, nx = image.shape
    to_index, positions = patient_to_index(image)
    step = float(np.median(np.diff(positions))) if nz > 1 else float(image.spacing[0])
    per_slice: dict[int, list] = {}
    outside = 0
    for pts in structure.contours:
        x, y, s = to_index(pts)
        if np.ptp(s) > _PLANE_TOLERANCE * step:
            raise InputError(rs.source, f"ROI {structure.name!r}: a contour spans {np.ptp(s):.2f} mm across the "
                                        f"image's slices; contours must lie in the image's planes")
        z = float(np.mean(s))
        k = int(np.argmin(np.abs(positions - z)))
        if abs(positions[k] - z) > _PLANE_TOLERANCE * step:
            outside += 1
            continue
        per_slice.setdefault(k, []).append((x, y))
    if not per_slice:
        raise InputError(rs.source, f"ROI {structure.name!r}: none of its {len(structure.contours)} contours lies on a "
                                    f"slice of {image.source or 'the image'}")
    mask = np.zeros((nz, ny, nx), dtype=bool)
    for k, polygons in per_slice.items():
        mask[k] = contours_to_mask(polygons, (ny, nx))
    if not mask.any():
        raise InputError(rs.source, f"ROI {structure.name!r} covers no voxel centre of {image.source or 'the image'}")
    return mask
