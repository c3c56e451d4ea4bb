"""Readers: round trips through real files, and every kind of bad file."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medfeat import InputError, read_image
from medfeat.io.netpbm import write_netpbm

from conftest import require_shared

rng = np.random.default_rng(11)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_netpbm_binary_round_trip(tmp_path, rgb, dtype):
    top = np.iinfo(dtype).max
    arr = rng.integers(0, top, size=(5, 7, 3) if rgb else (5, 7), endpoint=True).astype(dtype)
    p = tmp_path / ("a.ppm" if rgb else "a.pgm")
    write_netpbm(p, arr)
    img = read_image(p)
    assert img.array.dtype == dtype and img.array[0].tolist() == arr.tolist()
    assert img.is_rgb == rgb and img.spacing == (1.0, 1.0, 1.0) and img.sha256 == _sha(p)


def test_netpbm_ascii_with_comments(tmp_path):
    p = tmp_path / "a.pgm"
    p.write_bytes(b"P2\n# a comment\n3 2\n# another\n1000\n0 1 2\n999 1000 7\n")
    img = read_image(p)
    assert img.array.dtype == np.uint16 and img.array[0].tolist() == [[0, 1, 2], [999, 1000, 7]]
    p3 = tmp_path / "a.ppm"
    p3.write_bytes(b"P3 2 1 255 255 0 0  0 0 255")
    assert read_image(p3).array[0].tolist() == [[[255, 0, 0], [0, 0, 255]]]


@pytest.mark.parametrize("mode,shape,dtype", [("L", (6, 9), np.uint8), ("RGB", (6, 9, 3), np.uint8),
                                              ("I;16", (6, 9), np.uint16)])
def test_png_round_trip(tmp_path, mode, shape, dtype):
    arr = rng.integers(0, np.iinfo(dtype).max, size=shape).astype(dtype)
    p = tmp_path / "a.png"
    PILImage.fromarray(arr).save(p)
    img = read_image(p)
    assert img.array[0].tolist() == arr.tolist() and img.sha256 == _sha(p)


def test_jpeg_and_multipage_tiff(tmp_path):
    arr = rng.integers(0, 255, size=(16, 16, 3)).astype(np.uint8)
    p = tmp_path / "a.jpg"
    PILImage.fromarray(arr).save(p, quality=90)
    with PILImage.open(p) as ref:
        assert read_image(p).array[0].tolist() == np.asarray(ref).tolist()
    pages = [rng.integers(0, 255, size=(8, 5)).astype(np.uint8) for _ in range(3)]
    t = tmp_path / "stack.tif"
    PILImage.fromarray(pages[0]).save(t, save_all=True, append_images=[PILImage.fromarray(x) for x in pages[1:]])
    img = read_image(t)
    assert img.array.shape == (3, 8, 5) and img.array.tolist() == [x.tolist() for x in pages]


def _ct_slice(path, z, pixels, uid, slope=2.0, intercept=-1024.0):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "CT", uid
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelSpacing = [0.5, 0.75]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-10.0, -20.0, float(z)]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_series_sorted_by_position_and_rescaled(tmp_path):
    uid = generate_uid()
    zs = [5.0, -2.5, 0.0, 2.5]  # written in scrambled order under scrambled names
    vols = {z: rng.integers(0, 4000, size=(4, 6)) for z in zs}
    for i, z in enumerate(zs):
        _ct_slice(tmp_path / f"IM{(7 * i) % 5}.dcm", z, vols[z], uid)
    (tmp_path / "README.txt").write_text("not DICOM")
    img = read_image(tmp_path)
    assert img.shape == (4, 4, 6) and img.modality == "CT"
    assert img.spacing == pytest.approx((2.5, 0.5, 0.75)) and img.origin == pytest.approx((-2.5, -20.0, -10.0))
    for k, z in enumerate(sorted(zs)):
        assert img.array[k].tolist() == (vols[z] * 2.0 - 1024.0).tolist()
    single = read_image(tmp_path / "IM0.dcm")
    assert single.array.shape == (1, 4, 6) and single.sha256 == _sha(tmp_path / "IM0.dcm")


def test_nifti_spacing_origin_and_axes(tmp_path):
    arr = rng.integers(-100, 100, size=(5, 4, 3)).astype(np.int16)  # x, y, z
    aff = np.diag([0.8, 0.9, 2.5, 1.0])
    aff[:3, 3] = [10, 20, 30]
    p = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(arr, aff), p)
    img = read_image(p)
    assert img.shape == (3, 4, 5) and img.array.dtype == np.int16
    assert img.array.tolist() == arr.transpose(2, 1, 0).tolist()
    assert img.spacing == pytest.approx((2.5, 0.9, 0.8)) and img.origin == pytest.approx((30, 20, 10))


def test_nifti_gzip_members_scaling_and_damage(tmp_path):
    """Plain and gzipped NIfTI read alike: one gzip member or several, scl_slope applied; a cut or
    corrupted gzip stream is a clear error."""
    arr = rng.integers(-1000, 1000, size=(6, 5, 4)).astype(np.int16)
    img = nib.Nifti1Image(arr, np.eye(4))
    plain = img.to_bytes()
    (tmp_path / "a.nii").write_bytes(plain)
    (tmp_path / "one.nii.gz").write_bytes(gzip.compress(plain))
    (tmp_path / "two.nii.gz").write_bytes(gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]))
    want = arr.transpose(2, 1, 0).tolist()
    for name in ("a.nii", "one.nii.gz", "two.nii.gz"):
        got = read_image(tmp_path / name)
        assert got.array.tolist() == want and got.array.flags.writeable, name
    img.header.set_slope_inter(0.5, -10.0)
    (tmp_path / "scaled.nii.gz").write_bytes(gzip.compress(img.to_bytes()))
    assert read_image(tmp_path / "scaled.nii.gz").array.tolist() == (arr * 0.5 - 10.0).transpose(2, 1, 0).tolist()
    packed = gzip.compress(plain)
    _bad(tmp_path, "cut.nii.gz", packed[: len(packed) // 2], "truncated or corrupt gzip data")
    broken = bytearray(packed)
    broken[40:60] = b"\xff" * 20
    _bad(tmp_path, "broken.nii.gz", bytes(broken), "corrupt")


# --- bad input -------------------------------------------------------------------------------

def _bad(tmp_path, name, content, reason):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_image(p)
    assert name in str(e.value) and reason in str(e.value)
    return e.value


def test_empty_truncated_and_unknown_files(tmp_path):
    _bad(tmp_path, "empty.pgm", b"", "empty file")
    _bad(tmp_path, "short.ppm", b"P6\n4 4\n255\n" + b"\0" * 10, "truncated P6 data")
    _bad(tmp_path, "zero.pgm", b"P5\n4 4\n0\n" + b"\0" * 16, "bad Netpbm maxval 0")
    _bad(tmp_path, "head.pgm", b"P5\n4", "truncated Netpbm header")
    _bad(tmp_path, "what.bin", b"\x00\x01garbage" * 20, "unrecognised image format")
    _bad(tmp_path, "p7.pam", b"P7\nWIDTH 4\n", "unrecognised image format")
    png = io.BytesIO()
    PILImage.fromarray(np.zeros((64, 64), np.uint8) + 7).save(png, format="PNG")
    _bad(tmp_path, "cut.png", png.getvalue()[:60], "truncated or corrupt")
    _bad(tmp_path, "x.nii.gz", gzip.compress(b"not a nifti header" * 30), "gzip file that is not a NIfTI")
    with pytest.raises(InputError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")


def test_dicom_without_pixels_and_folders_without_images(tmp_path):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientName = "Nobody"
    ds.save_as(tmp_path / "nopix.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="nopix.dcm: DICOM file has no pixel data"):
        read_image(tmp_path / "nopix.dcm")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="empty_dir: folder holds no DICOM image files"):
        read_image(empty)
    cut = tmp_path / "cut"
    cut.mkdir()
    _ct_slice(cut / "a.dcm", 0, np.ones((8, 8)), generate_uid())
    data = (cut / "a.dcm").read_bytes()
    (cut / "a.dcm").write_bytes(data[:-40])
    with pytest.raises(InputError, match="a.dcm"):
        read_image(cut / "a.dcm")


def test_two_series_in_one_folder_are_refused(tmp_path):
    for i in range(2):
        _ct_slice(tmp_path / f"{i}.dcm", i, np.ones((4, 4)), generate_uid())
    with pytest.raises(InputError, match="2 DICOM image series"):
        read_image(tmp_path)


def test_4d_nifti_is_refused(tmp_path):
    p = tmp_path / "four.nii"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), p)
    with pytest.raises(InputError, match="four.nii: 4D NIfTI"):
        read_image(p)


# --- real data in ../shared ------------------------------------------------------------------

def test_ct_phantom_dicom_series_equals_its_nifti():
    dcm = read_image(require_shared("data", "ibsi", "ct_phantom", "dicom", "image"))
    nii = read_image(require_shared("data", "ibsi", "ct_phantom", "nifti", "image", "phantom.nii.gz"))
    assert dcm.shape == nii.shape == (60, 201, 204) and dcm.modality == "CT"
    assert dcm.spacing == pytest.approx((3.0, 0.977, 0.977), abs=1e-4)
    assert np.array_equal(dcm.array, np.round(nii.array))


def test_every_shared_medical_image_reads_or_fails_cleanly():
    folder = require_shared("data", "medical")
    read = 0
    with open(folder / "MANIFEST.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            path = folder / row["file"]
            if path.suffix in (".npy", ".gz") and not path.name.endswith(".nii.gz"):
                continue  # raw numpy arrays and gzipped DICOM are not image formats medfeat reads
            try:
                img = read_image(path)
            except InputError as exc:
                assert path.name in str(exc)
                continue
            read += 1
            dims = [int(d) for d in row["shape"].split("x")]
            spatial = sorted(d for d in img.shape if d != 1)
            listed = sorted(d for d in dims if d != 1)
            # colour images: the manifest lists the 3 channels for RGB files but not for palette ones
            assert listed in (spatial, sorted(spatial + [3])) if img.is_rgb else listed == spatial, \
                (row["file"], img.array.shape, row["shape"])
    assert read >= 15
