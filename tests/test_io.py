"""medfeat.io: round trips through real files of every format, every kind of bad file, and the
shared data (IBSI CT phantom as DICOM and NIfTI, ../shared/data/medical)."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import tracemalloc

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (CTImageStorage, EnhancedCTImageStorage, ExplicitVRLittleEndian, MRImageStorage,
                         RLELossless, generate_uid)

from medfeat.errors import InputError
from medfeat.io import detect_format, read_image, write_netpbm
from medfeat.io.dicom import read_dicom_file
from medfeat.io.netpbm import read_netpbm
from medfeat.io.nifti import read_nifti
from medfeat.io.pillow import read_pillow

from conftest import require_shared

rng = np.random.default_rng(20240)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_plain(img, path, array, dtype):
    """A picture without physical size: exact values, dtype, 1 mm, zero origin, sha of the file."""
    assert img.array.dtype == dtype
    np.testing.assert_array_equal(img.array, array)
    assert img.spacing == (1.0, 1.0, 1.0) and img.origin == (0.0, 0.0, 0.0)
    assert img.source == str(path) and img.sha256 == sha(path)


def bad(tmp_path, name, content, reason, reader=read_image):
    """Write ``content`` to ``name``; reading it must raise InputError naming the file and ``reason``."""
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError) as err:
        reader(p)
    assert name in str(err.value) and reason in str(err.value), str(err.value)
    assert err.value.path == str(p)
    return err.value


# --- Netpbm ----------------------------------------------------------------------------------

def ascii_netpbm(arr: np.ndarray, maxval: int) -> bytes:
    magic = b"P3" if arr.ndim == 3 else b"P2"
    h, w = arr.shape[:2]
    rows = "\n".join(" ".join(str(v) for v in row.ravel()) for row in arr)
    return magic + f"\n# written by test_io\n{w} {h}\n# maxval next\n{maxval}\n{rows}\n".encode()


@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
@pytest.mark.parametrize("maxval", [255, 65535, 1000, 7])
def test_netpbm_binary_round_trip(tmp_path, rgb, maxval):
    dtype = np.uint8 if maxval < 256 else np.uint16
    arr = rng.integers(0, maxval, size=(5, 7, 3) if rgb else (5, 7), endpoint=True).astype(dtype)
    p = tmp_path / ("a.ppm" if rgb else "a.pgm")
    write_netpbm(p, arr, maxval=maxval)
    assert p.read_bytes()[:2] == (b"P6" if rgb else b"P5")
    img = read_image(p)
    check_plain(img, p, arr[np.newaxis], dtype)
    assert img.is_rgb == rgb and img.meta["maxval"] == maxval and img.modality == ""


@pytest.mark.parametrize("rgb", [False, True], ids=["P2", "P3"])
@pytest.mark.parametrize("maxval", [255, 65535])
def test_netpbm_ascii_round_trip(tmp_path, rgb, maxval):
    dtype = np.uint8 if maxval < 256 else np.uint16
    arr = rng.integers(0, maxval, size=(4, 6, 3) if rgb else (4, 6), endpoint=True).astype(dtype)
    p = tmp_path / "ascii.pnm"
    p.write_bytes(ascii_netpbm(arr, maxval))
    img = read_image(p)
    check_plain(img, p, arr[np.newaxis], dtype)
    assert img.meta["magic"] == ("P3" if rgb else "P2")


def test_netpbm_header_comments_and_16_bit_byte_order(tmp_path):
    p = tmp_path / "c.pgm"
    # comments touching the fields, after maxval, and a big-endian 16-bit raster
    p.write_bytes(b"P5#c1\n2#c2\n1 #c3\n300#c4\n" + bytes([1, 2, 0, 7]))
    img = read_image(p)
    assert img.array.dtype == np.uint16 and img.array.tolist() == [[[258, 7]]]
    write_netpbm(tmp_path / "w.pgm", img.array)  # a (1, y, x) Image array is accepted
    assert read_image(tmp_path / "w.pgm").array.tolist() == [[[258, 7]]]


def test_write_netpbm_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_netpbm(tmp_path / "a.pgm", np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError, match="integers"):
        write_netpbm(tmp_path / "a.pgm", np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="outside 0..255"):
        write_netpbm(tmp_path / "a.pgm", np.array([[300]]), maxval=255)
    with pytest.raises(ValueError, match="maxval 0"):
        write_netpbm(tmp_path / "a.pgm", np.zeros((2, 2), np.uint8), maxval=0)


def test_netpbm_bad_files(tmp_path):
    bad(tmp_path, "empty.pgm", b"", "empty file")
    bad(tmp_path, "short.ppm", b"P6\n4 4\n255\n" + b"\0" * 10, "truncated P6 data")
    bad(tmp_path, "short16.pgm", b"P5\n4 4\n65535\n" + b"\0" * 31, "truncated P5 data")
    bad(tmp_path, "short.pgm", b"P2\n3 3\n255\n1 2 3 4 5 6 7 8", "truncated P2 data")
    bad(tmp_path, "zero.pgm", b"P5\n4 4\n0\n" + b"\0" * 16, "bad Netpbm maxval 0")
    bad(tmp_path, "big.pgm", b"P5\n4 4\n65536\n" + b"\0" * 32, "bad Netpbm maxval 65536")
    bad(tmp_path, "size.pgm", b"P5\n0 4\n255\n", "bad Netpbm size 0x4")
    bad(tmp_path, "head.pgm", b"P5\n4", "truncated Netpbm header")
    bad(tmp_path, "field.pgm", b"P5\n4 x4\n255\n", "height is")
    bad(tmp_path, "nopix.pgm", b"P5 4 4 255", "header without pixel data")
    bad(tmp_path, "over.pgm", b"P2 2 1 100 50 101", "above maxval 100")
    bad(tmp_path, "text.pgm", b"P2 2 1 100 50 1e3", "bad sample")
    bad(tmp_path, "magic.pgm", b"P7\nWIDTH 4\n", "unrecognised image format")
    # the Netpbm reader itself names a wrong magic
    bad(tmp_path, "magic2.pgm", b"P1\n1 1\n1\n", "not a PGM/PPM file (magic b'P1'", reader=read_netpbm)


@pytest.mark.parametrize("header", [b"P6\n60000 60000\n255\n", b"P5 60000 60000 65535 ", b"P3 60000 60000 255\n"])
def test_huge_netpbm_header_is_refused_fast_without_allocating(tmp_path, header):
    p = tmp_path / "huge.ppm"
    p.write_bytes(header + b"\0" * 1000)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="huge.ppm: truncated P[356] data: header says 60000x60000"):
            read_image(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # refused from the header, before allocating gigabytes


# --- PNG / JPEG / TIFF -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["L", "I;16", "RGB"])
def test_png_round_trip(tmp_path, kind):
    dtype = np.uint16 if kind == "I;16" else np.uint8
    arr = rng.integers(0, np.iinfo(dtype).max, size=(6, 9, 3) if kind == "RGB" else (6, 9),
                       endpoint=True).astype(dtype)
    p = tmp_path / "a.png"
    PILImage.fromarray(arr).save(p)
    img = read_image(p)
    check_plain(img, p, arr[np.newaxis], dtype)
    assert img.meta["format"] == "png"


def test_png_modes(tmp_path):
    grey = rng.integers(0, 255, size=(5, 4), endpoint=True).astype(np.uint8)
    rgba = rng.integers(0, 255, size=(5, 4, 4), endpoint=True).astype(np.uint8)
    cases = {
        "rgba.png": (PILImage.fromarray(rgba, "RGBA"), rgba[..., :3], np.uint8),  # alpha dropped
        "la.png": (PILImage.fromarray(np.dstack([grey, grey[::-1]]), "LA"), grey, np.uint8),
        "bilevel.png": (PILImage.fromarray(grey > 128), (grey > 128).astype(np.uint8), np.uint8),
        "palette_grey.png": (PILImage.fromarray(grey).convert("P"), grey, np.uint8),
    }
    pal = PILImage.fromarray(grey % 4).convert("L").convert("P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * 756)
    lut = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], np.uint8)
    cases["palette_colour.png"] = (pal, lut[grey % 4], np.uint8)
    for name, (pic, expected, dtype) in cases.items():
        pic.save(tmp_path / name)
        img = read_image(tmp_path / name)
        check_plain(img, tmp_path / name, expected[np.newaxis], dtype)


def test_jpeg_matches_pillows_own_decode(tmp_path):
    for mode, shape in (("RGB", (16, 24, 3)), ("L", (16, 24))):
        arr = rng.integers(0, 255, size=shape).astype(np.uint8)
        p = tmp_path / f"a_{mode}.jpg"
        PILImage.fromarray(arr).save(p, quality=85, dpi=(300, 300))
        with PILImage.open(p) as ref:
            expected = np.asarray(ref)
        img = read_image(p)
        check_plain(img, p, expected[np.newaxis], np.uint8)
        assert img.meta["format"] == "jpeg" and img.meta["dpi"] == pytest.approx((300, 300))


def test_multipage_tiff_is_a_z_stack(tmp_path):
    pages = [rng.integers(0, 65535, size=(8, 5)).astype(np.uint16) for _ in range(3)]
    p = tmp_path / "stack.tif"
    first, *rest = [PILImage.fromarray(x) for x in pages]
    first.save(p, save_all=True, append_images=rest)
    img = read_image(p)
    check_plain(img, p, np.stack(pages), np.uint16)
    assert img.meta["pages"] == 3
    # float and 32-bit integer TIFFs keep their type
    f = rng.normal(size=(4, 3)).astype(np.float32)
    PILImage.fromarray(f).save(tmp_path / "f.tif")
    check_plain(read_image(tmp_path / "f.tif"), tmp_path / "f.tif", f[np.newaxis], np.float32)
    i = rng.integers(-2**31, 2**31 - 1, size=(4, 3)).astype(np.int32)
    PILImage.fromarray(i, "I").save(tmp_path / "i.tif")
    check_plain(read_image(tmp_path / "i.tif"), tmp_path / "i.tif", i[np.newaxis], np.int32)
    # pages of different sizes cannot be stacked
    mixed = tmp_path / "mixed.tif"
    first.save(mixed, save_all=True, append_images=[PILImage.fromarray(np.zeros((3, 3), np.uint16))])
    with pytest.raises(InputError, match="mixed.tif: TIFF pages differ in size or mode"):
        read_image(mixed)


def test_pillow_bad_files(tmp_path, monkeypatch):
    png = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, size=(64, 64)).astype(np.uint8)).save(png, format="PNG")
    bad(tmp_path, "cut.png", png.getvalue()[:200], "truncated or corrupt PNG data")
    bad(tmp_path, "header.png", png.getvalue()[:20], "truncated or corrupt PNG data")
    bad(tmp_path, "junk.png", png.getvalue()[:8] + b"garbage!" * 10, "not a readable PNG/JPEG/TIFF image")
    jpg = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, size=(64, 64)).astype(np.uint8)).save(jpg, format="JPEG")
    bad(tmp_path, "cut.jpg", jpg.getvalue()[: len(jpg.getvalue()) // 2], "truncated or corrupt JPEG data")
    # Pillow's decompression-bomb guard, both its warning (1x-2x the limit) and its error (> 2x)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    for side, name in ((40, "warn.png"), (100, "bomb.png")):
        buf = io.BytesIO()
        PILImage.fromarray(np.zeros((side, side), np.uint8)).save(buf, format="PNG")
        bad(tmp_path, name, buf.getvalue(), "image too large to decode safely")


# --- DICOM ------------------------------------------------------------------------------------

def dicom_dataset(pixels: np.ndarray, *, sop_class=CTImageStorage, modality="CT", series_uid=None,
                  photometric="MONOCHROME2", signed=False, **attrs) -> Dataset:
    """A minimal uncompressed image dataset; ``pixels`` is (y, x), (frames, y, x) or (..., 3)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = modality, series_uid or generate_uid(), generate_uid()
    colour = photometric not in ("MONOCHROME1", "MONOCHROME2")
    frames = pixels.shape[0] if pixels.ndim == (4 if colour else 3) else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (3 if colour else 1), photometric
    if colour:
        ds.PlanarConfiguration = 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    return ds


def write_ct_slice(path, pixels, z, series_uid, slope=2.0, intercept=-1024.0,
                   iop=(1, 0, 0, 0, 1, 0), origin_xy=(-10.0, -20.0)):
    ipp = [origin_xy[0], origin_xy[1], float(z)] if iop[:3] == (1, 0, 0) else [float(z), *origin_xy]
    ds = dicom_dataset(pixels.astype(np.uint16), series_uid=series_uid, PixelSpacing=[0.5, 0.75],
                       ImageOrientationPatient=list(iop), ImagePositionPatient=ipp, SliceThickness=1.25,
                       RescaleSlope=slope, RescaleIntercept=intercept, InstanceNumber=int(1000 - z * 4))
    ds.save_as(path, enforce_file_format=True)


def test_dicom_series_sorted_by_position_with_hu_and_z_spacing(tmp_path):
    uid = generate_uid()
    zs = [5.0, -2.5, 0.0, 2.5, 7.5]  # scrambled positions under scrambled names
    slices = {z: rng.integers(0, 4000, size=(4, 6)) for z in zs}
    names = [f"IM_{(7 * i) % 5}.dcm" for i in range(len(zs))]
    for name, z in zip(names, zs):
        write_ct_slice(tmp_path / name, slices[z], z, uid)
    (tmp_path / "README.txt").write_text("not DICOM")
    rt = dicom_dataset(np.zeros((2, 2), np.uint16), modality="RTSTRUCT", series_uid=generate_uid())
    del rt.PixelData
    rt.save_as(tmp_path / "RS.dcm", enforce_file_format=True)
    img = read_image(tmp_path)
    assert img.shape == (5, 4, 6) and img.array.dtype == np.float32 and img.modality == "CT"
    assert img.spacing == pytest.approx((2.5, 0.5, 0.75)) and img.origin == pytest.approx((-2.5, -20.0, -10.0))
    for k, z in enumerate(sorted(zs)):
        np.testing.assert_array_equal(img.array[k], slices[z] * 2.0 - 1024.0)
    # sha256 over the image files only, in sorted file name order (not slice order)
    h = hashlib.sha256()
    for name in sorted(names):
        h.update((tmp_path / name).read_bytes())
    assert img.sha256 == h.hexdigest() and img.source == str(tmp_path)
    assert img.meta["series_uid"] == uid and img.meta["slices"] == 5
    assert img.meta["rescale_slope"] == 2.0 and img.meta["rescale_intercept"] == -1024.0
    assert img.meta["files"][0] == names[zs.index(-2.5)] and img.meta["transfer_syntax"] == ExplicitVRLittleEndian


def test_dicom_series_sagittal_sorted_along_the_normal(tmp_path):
    # rows along +y, columns along -z: the normal is -x, so slices go from high x to low x
    iop = (0, 1, 0, 0, 0, -1)
    xs = [10.0, 13.0, 7.0, 16.0]
    uid = generate_uid()
    for i, x in enumerate(xs):
        write_ct_slice(tmp_path / f"s{i}.dcm", np.full((3, 3), i), x, uid, slope=1.0, intercept=0.0, iop=iop)
    img = read_image(tmp_path)
    assert img.array.dtype == np.uint16  # no rescaling: the stored integers stay
    assert [int(v) for v in img.array[:, 0, 0]] == [3, 1, 0, 2]
    assert img.spacing[0] == pytest.approx(3.0) and img.origin == pytest.approx((-20.0, -10.0, 16.0))


def test_dicom_series_refusals(tmp_path):
    two = tmp_path / "two"
    two.mkdir()
    uids = [generate_uid(), generate_uid()]
    for i, uid in enumerate(uids):
        write_ct_slice(two / f"{i}.dcm", np.ones((4, 4)), i, uid)
    with pytest.raises(InputError) as err:
        read_image(two)
    assert "two" in str(err.value) and "2 DICOM image series" in str(err.value)
    assert all(uid in str(err.value) for uid in uids)
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    uid = generate_uid()
    write_ct_slice(shapes / "a.dcm", np.ones((4, 4)), 0, uid)
    write_ct_slice(shapes / "b.dcm", np.ones((4, 5)), 1, uid)
    with pytest.raises(InputError, match=r"b.dcm: slice shape \(1, 4, 5\)|b.dcm: slice shape \(4, 5\)"):
        read_image(shapes)
    dup = tmp_path / "dup"
    dup.mkdir()
    write_ct_slice(dup / "a.dcm", np.ones((4, 4)), 3, uid)
    write_ct_slice(dup / "b.dcm", np.ones((4, 4)), 3, uid)
    with pytest.raises(InputError, match="dup: slices a.dcm and b.dcm share a position"):
        read_image(dup)
    empty = tmp_path / "no_dicom"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="no_dicom: folder holds no DICOM image files"):
        read_image(empty)


def test_dicom_single_file(tmp_path):
    arr = rng.integers(-500, 500, size=(5, 3)).astype(np.int16)
    ds = dicom_dataset(arr, sop_class=MRImageStorage, modality="MR", signed=True, PixelSpacing=[0.9, 0.8],
                       SliceThickness=4.0, ImagePositionPatient=[1.5, 2.5, 3.5],
                       ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    p = tmp_path / "mr.dcm"
    ds.save_as(p, enforce_file_format=True)
    img = read_image(p)
    assert img.array.dtype == np.int16 and img.shape == (1, 5, 3) and img.modality == "MR"
    np.testing.assert_array_equal(img.array[0], arr)
    assert img.spacing == pytest.approx((4.0, 0.9, 0.8)) and img.origin == pytest.approx((3.5, 2.5, 1.5))
    assert img.sha256 == sha(p) and img.meta["photometric"] == "MONOCHROME2"
    # gzipped, the same image (and the sha256 of the gzip file)
    gz = tmp_path / "mr.dcm.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    img_gz = read_image(gz)
    np.testing.assert_array_equal(img_gz.array, img.array)
    assert img_gz.sha256 == sha(gz) and img_gz.meta["compression"] == "gzip"
    # a series folder of one file is that file
    one = tmp_path / "one"
    one.mkdir()
    (one / "x.dcm").write_bytes(p.read_bytes())
    assert read_image(one).array.tolist() == img.array.tolist()


def test_dicom_enhanced_multiframe_uses_functional_groups(tmp_path):
    frames = rng.integers(0, 3000, size=(3, 4, 5)).astype(np.uint16)
    zs = [20.0, 10.0, 15.0]
    per_frame = Sequence()
    for k, z in enumerate(zs):
        pos, trans, item = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, z]
        trans.RescaleSlope, trans.RescaleIntercept = 1.0, -1000.0 + k  # per-frame rescale
        item.PlanePositionSequence, item.PixelValueTransformationSequence = Sequence([pos]), Sequence([trans])
        per_frame.append(item)
    orient, measures, shared = Dataset(), Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing, measures.SliceThickness = [0.4, 0.6], 5.0
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = Sequence([orient]), Sequence([measures])
    ds = dicom_dataset(frames, sop_class=EnhancedCTImageStorage, PerFrameFunctionalGroupsSequence=per_frame,
                       SharedFunctionalGroupsSequence=Sequence([shared]))
    p = tmp_path / "enhanced.dcm"
    ds.save_as(p, enforce_file_format=True)
    img = read_image(p)
    assert img.shape == (3, 4, 5) and img.array.dtype == np.float32
    order = np.argsort(zs)  # frames sorted along the normal: 10, 15, 20
    for k, f in enumerate(order):
        np.testing.assert_array_equal(img.array[k], frames[f] - 1000.0 + f)
    assert img.spacing == pytest.approx((5.0, 0.4, 0.6)) and img.origin == pytest.approx((10.0, 0.0, 0.0))


def test_dicom_colour_is_rgb(tmp_path):
    rgb = rng.integers(0, 255, size=(2, 3, 4, 3), endpoint=True).astype(np.uint8)
    dicom_dataset(rgb, modality="US", photometric="RGB").save_as(tmp_path / "rgb.dcm", enforce_file_format=True)
    img = read_image(tmp_path / "rgb.dcm")
    assert img.is_rgb and img.array.dtype == np.uint8 and img.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(img.array, rgb)
    from pydicom.pixels import convert_color_space

    ybr = convert_color_space(rgb[0], "RGB", "YBR_FULL")
    dicom_dataset(ybr, modality="US", photometric="YBR_FULL").save_as(tmp_path / "ybr.dcm", enforce_file_format=True)
    img = read_image(tmp_path / "ybr.dcm")
    np.testing.assert_array_equal(img.array[0], convert_color_space(ybr, "YBR_FULL", "RGB"))


def test_dicom_bad_files(tmp_path, monkeypatch):
    nopix = dicom_dataset(np.zeros((2, 2), np.uint16))
    del nopix.PixelData
    nopix.save_as(tmp_path / "nopix.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="nopix.dcm: DICOM file has no pixel data"):
        read_image(tmp_path / "nopix.dcm")
    good = tmp_path / "good.dcm"
    dicom_dataset(np.ones((8, 8), np.uint16)).save_as(good, enforce_file_format=True)
    bad(tmp_path, "cut.dcm", good.read_bytes()[:-40], "corrupt or truncated DICOM pixel data")
    bad(tmp_path, "cuthead.dcm", good.read_bytes()[:200], "cut")
    # a transfer syntax pydicom has no decoder for
    mpeg = dicom_dataset(np.zeros((2, 2), np.uint8))
    mpeg.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML
    mpeg.PixelData = pydicom.encaps.encapsulate([b"\0" * 16])
    mpeg["PixelData"].VR = "OB"
    mpeg.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match="mpeg.dcm: cannot decode transfer syntax MPEG2 .*pydicom has no decoder"):
        read_image(tmp_path / "mpeg.dcm")
    # a compressed file whose decoder plugins are all missing (simulated for RLE)
    from pydicom.pixels import get_decoder

    rle = dicom_dataset(rng.integers(0, 100, size=(6, 6)).astype(np.uint16))
    rle.compress(RLELossless)
    rle.save_as(tmp_path / "rle.dcm", enforce_file_format=True)
    assert read_image(tmp_path / "rle.dcm").shape == (1, 6, 6)
    monkeypatch.setattr(get_decoder(RLELossless), "_available", {})
    with pytest.raises(InputError, match="rle.dcm: cannot decode transfer syntax RLE Lossless.*pylibjpeg-rle"):
        read_image(tmp_path / "rle.dcm")


# --- NIfTI ------------------------------------------------------------------------------------

def test_nifti_spacing_origin_and_axes(tmp_path):
    arr = rng.integers(-100, 100, size=(5, 4, 3)).astype(np.int16)  # stored as x, y, z
    aff = np.diag([0.8, 0.9, 2.5, 1.0])
    aff[:3, 3] = [10, -20, 30]
    for name in ("a.nii.gz", "a.nii"):
        p = tmp_path / name
        nib.save(nib.Nifti1Image(arr, aff), p)
        img = read_image(p)
        assert img.shape == (3, 4, 5) and img.array.dtype == np.int16 and img.modality == ""
        np.testing.assert_array_equal(img.array, arr.transpose(2, 1, 0))
        assert img.spacing == pytest.approx((2.5, 0.9, 0.8)) and img.origin == pytest.approx((30, -20, 10))
        assert img.sha256 == sha(p) and img.source == str(p)
    # scl_slope/scl_inter are applied (float result); a singleton 4th axis is dropped; NIfTI-2 reads too
    img4 = nib.Nifti2Image(arr[..., np.newaxis], aff)
    img4.header.set_slope_inter(0.5, 3.0)
    nib.save(img4, tmp_path / "scaled.nii")
    img = read_image(tmp_path / "scaled.nii")
    assert img.shape == (3, 4, 5) and img.array.dtype.kind == "f"
    np.testing.assert_allclose(img.array, arr.transpose(2, 1, 0) * 0.5 + 3.0)
    assert img.meta["scl_slope"] == 0.5 and img.meta["version"] == 2
    # a big-endian file gives native-order values
    big = nib.Nifti1Image(arr, aff, header=nib.Nifti1Header(endianness=">"))
    big.set_data_dtype(np.int16)
    nib.save(big, tmp_path / "big.nii")
    assert (tmp_path / "big.nii").read_bytes()[:4] == (348).to_bytes(4, "big")
    img = read_image(tmp_path / "big.nii")
    assert img.array.dtype == np.int16 and img.array.dtype.isnative
    np.testing.assert_array_equal(img.array, arr.transpose(2, 1, 0))


def test_nifti_2d_rgb_and_units(tmp_path):
    flat = rng.integers(0, 255, size=(6, 4)).astype(np.uint8)
    nib.save(nib.Nifti1Image(flat, np.eye(4)), tmp_path / "flat.nii")
    img = read_nifti(tmp_path / "flat.nii")
    np.testing.assert_array_equal(img.array, flat.T[np.newaxis])
    rgb = rng.integers(0, 255, size=(3, 2, 2, 3)).astype(np.uint8)  # x, y, z, channel
    rgb24 = np.zeros((3, 2, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb24["R"], rgb24["G"], rgb24["B"] = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    nib.save(nib.Nifti1Image(rgb24, np.eye(4)), tmp_path / "rgb.nii.gz")
    img = read_image(tmp_path / "rgb.nii.gz")
    assert img.is_rgb and img.array.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(img.array, rgb.transpose(2, 1, 0, 3))
    metres = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.diag([0.001, 0.002, 0.003, 1.0]))
    metres.header.set_xyzt_units("meter")
    nib.save(metres, tmp_path / "m.nii")
    assert read_image(tmp_path / "m.nii").spacing == pytest.approx((3.0, 2.0, 1.0))
    # a unit code the standard lacks (xyzt_units byte 7; nibabel's lookup raises KeyError): unknown, mm
    data = bytearray((tmp_path / "m.nii").read_bytes())
    data[123] = 7  # xyzt_units
    (tmp_path / "odd-units.nii").write_bytes(bytes(data))
    odd = read_image(tmp_path / "odd-units.nii")
    assert odd.meta["xyz_units"] == "unknown" and odd.spacing == pytest.approx((0.003, 0.002, 0.001))
    # a NaN voxel size under a qform (its affine then holds NaN; nibabel's orientation SVD raised): refused
    data = bytearray((tmp_path / "m.nii").read_bytes())
    data[80:84] = np.float32(np.nan).tobytes()  # pixdim[1]
    data[252:254] = np.int16(1).tobytes()  # qform_code
    data[254:256] = np.int16(0).tobytes()  # sform_code
    (tmp_path / "nan-qform.nii").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"nan-qform.nii: bad NIfTI header: non-finite values in its qform"):
        read_image(tmp_path / "nan-qform.nii")


def test_nifti_bad_files(tmp_path):
    p = tmp_path / "four.nii"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), p)
    with pytest.raises(InputError, match="four.nii: 4D NIfTI .*not supported yet"):
        read_image(p)
    good = nib.Nifti1Image(rng.integers(0, 9999, size=(20, 20, 20)).astype(np.int16), np.eye(4)).to_bytes()
    bad(tmp_path, "cut.nii", good[:5000], "truncated NIfTI data")
    bad(tmp_path, "cut.nii.gz", gzip.compress(good)[:300], "truncated or corrupt gzip data")
    bad(tmp_path, "x.nii.gz", gzip.compress(b"not a nifti header" * 30), "gzip file that is not a NIfTI")
    bad(tmp_path, "plain.nii", b"\0" * 400, "unrecognised image format")
    bad(tmp_path, "plain2.nii", b"\0" * 400, "not a NIfTI file", reader=read_nifti)


# --- dispatch ---------------------------------------------------------------------------------

def test_dispatch_is_by_content_not_name(tmp_path):
    arr = rng.integers(0, 255, size=(3, 4)).astype(np.uint8)
    p = tmp_path / "really_a_pgm.png"
    write_netpbm(p, arr)
    assert read_image(p).meta["format"] == "netpbm"
    q = tmp_path / "really_a_png.dcm"
    PILImage.fromarray(arr).save(q, format="PNG")
    assert read_image(q).meta["format"] == "png"
    assert detect_format(b"P2 text that is not an image"[:2] + b"x") is None
    assert detect_format(b"\0" * 128 + b"DICM") == "dicom"


def test_unknown_missing_and_folder_inputs(tmp_path):
    bad(tmp_path, "what.bin", b"\x00\x01garbage" * 20, "unrecognised image format")
    bad(tmp_path, "empty.png", b"", "empty file")
    with pytest.raises(InputError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")
    folder = tmp_path / "nothing_here"
    folder.mkdir()
    with pytest.raises(InputError, match="nothing_here: folder holds no DICOM image files"):
        read_image(folder)
    for reader in (read_netpbm, read_pillow, read_dicom_file, read_nifti):
        with pytest.raises(InputError, match="gone: file not found"):
            reader(tmp_path / "gone")


# --- shared data ------------------------------------------------------------------------------

def test_ibsi_ct_phantom_dicom_series_equals_its_nifti():
    folder = require_shared("data", "ibsi", "ct_phantom", "dicom", "image")
    dcm = read_image(folder)
    nii = read_image(require_shared("data", "ibsi", "ct_phantom", "nifti", "image", "phantom.nii.gz"))
    assert dcm.shape == nii.shape == (60, 201, 204)
    assert dcm.modality == "CT" and dcm.meta["slices"] == 60 and dcm.array.dtype == np.float32
    for img in (dcm, nii):
        assert img.spacing == pytest.approx((3.0, 0.977, 0.977), abs=1e-4)
    # same voxels up to an axis flip: in fact no flip, both store the slices inferior to superior
    rounded = np.round(nii.array)
    flips = [axes for n in range(4) for axes in itertools.combinations(range(3), n)
             if np.array_equal(np.flip(dcm.array, axes), rounded)]
    assert flips == [()]
    # the same first voxel: DICOM patient coordinates are LPS, NIfTI's RAS (x and y negated)
    assert dcm.origin == pytest.approx((nii.origin[0], -nii.origin[1], -nii.origin[2]), abs=1e-4)
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.read_bytes())
    assert dcm.sha256 == h.hexdigest()
    # the mask folder holds only an RTSTRUCT: no image
    mask = require_shared("data", "ibsi", "ct_phantom", "dicom", "mask")
    with pytest.raises(InputError, match="mask: folder holds no DICOM image files"):
        read_image(mask)
    with pytest.raises(InputError, match=r"DCM_RS_00060.dcm: DICOM file has no pixel data \(Modality RTSTRUCT\)"):
        read_image(mask / "DCM_RS_00060.dcm")


def expected_shape(row: dict) -> tuple[int, ...]:
    """The manifest's shape in medfeat's layout: NIfTI lists x, y, z[, t]; the others
    [frames x] rows x columns [x 3]; palette-colour files become RGB."""
    dims = [int(d) for d in row["shape"].split("x")]
    if ".nii" in row["file"]:
        while len(dims) > 3 and dims[-1] == 1:
            dims.pop()
        return tuple(reversed(dims[:3])) + tuple(dims[3:])
    if len(dims) == 2 or (len(dims) == 3 and dims[-1] == 3):
        dims = [1, *dims]
    if "PALETTE" in row["modality"] or "palette" in row["notes"]:
        dims.append(3)
    return tuple(dims)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # non-conformant UIDs in two files
def test_every_shared_medical_file():
    folder = require_shared("data", "medical")
    with open(folder / "MANIFEST.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    outcomes = {}
    for row in rows:
        path = folder / row["file"]
        needs_decoder = any(k in row["modality"] for k in ("J2K", "JPEG lossless"))
        try:
            img = read_image(path)
        except InputError as exc:
            assert path.name in str(exc)
            outcomes[row["file"]] = str(exc)
            if path.suffix == ".npy":
                assert "unrecognised image format" in str(exc)
            elif "x2" in row["shape"][-2:] and ".nii" in path.name:
                assert "4D NIfTI" in str(exc)
            else:
                assert needs_decoder and "decoder" in str(exc), str(exc)
            continue
        outcomes[row["file"]] = img
        assert img.array.shape == expected_shape(row), (row["file"], img.array.shape, row["shape"])
        assert img.sha256.startswith(row["sha256"]) and path.stat().st_size == int(row["bytes"])
        assert all(s > 0 for s in img.spacing)
    # everything but the raw .npy array, the 4D series and (maybe) the files that need a decoder
    assert sum(not isinstance(o, str) for o in outcomes.values()) >= 14
    # spot checks against pydicom: HU, and palette colour expanded to RGB
    ct = outcomes["ct/pydicom_CT_small.dcm"]
    ref = pydicom.dcmread(folder / "ct" / "pydicom_CT_small.dcm")
    np.testing.assert_array_equal(ct.array[0], ref.pixel_array * float(ref.RescaleSlope) + float(ref.RescaleIntercept))
    assert ct.modality == "CT" and ct.spacing == pytest.approx((5.0, 0.661468, 0.661468))
    assert outcomes["us/pydicomdata_OBXXXX1A_rle_palette.dcm"].is_rgb
    enhanced = outcomes["ct/pydicomdata_eCT_Supplemental.dcm"]
    assert enhanced.spacing == pytest.approx((10.0, 0.388672, 0.388672)) and enhanced.array.min() == -1024


def test_shared_compressed_files_without_decoders_fail_cleanly(monkeypatch):
    """As on a machine without pylibjpeg-openjpeg / pylibjpeg-libjpeg (and Pillow's JPEG 2000)."""
    from pydicom.pixels import get_decoder

    folder = require_shared("data", "medical")
    for ts in (pydicom.uid.JPEG2000Lossless, pydicom.uid.JPEGLosslessSV1):
        monkeypatch.setattr(get_decoder(ts), "_available", {})
    cases = {"ct/pydicomdata_693_J2KR.dcm": "JPEG 2000 Image Compression (Lossless Only)",
             "xray/pydicomdata_RG1_J2KR_chest.dcm": "pylibjpeg-openjpeg",
             "nm/pydicomdata_JPEG-LL_NM_wholebody.dcm": "pylibjpeg-libjpeg",
             "us/pydicomdata_US_768x1024_jpegll.dcm": "JPEG Lossless, Non-Hierarchical"}
    for name, reason in cases.items():
        with pytest.raises(InputError) as err:
            read_image(folder / name)
        assert name.split("/")[1] in str(err.value) and reason in str(err.value) and "decoder" in str(err.value)


def test_nifti_header_fixes_print_no_stray_line(tmp_path):
    """nibabel prints the fixes it makes to an odd header ("sform_code -32768 not valid; setting to 0")
    through its global logger to stderr, a line without the file's name: not while medfeat reads one;
    nibabel's own calls still report them."""
    import logging

    p = tmp_path / "odd.nii"
    nib.save(nib.Nifti1Image(np.arange(120, dtype=np.int16).reshape(4, 5, 6), np.eye(4)), p)
    data = bytearray(p.read_bytes())
    data[254:256] = np.int16(-32768).tobytes()  # sform_code, little-endian as nibabel wrote it
    p.write_bytes(bytes(data))
    said: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    logger = logging.getLogger("nibabel.global")
    handler = Collect()
    logger.addHandler(handler)
    try:
        img = read_image(p)
        assert img.shape == (6, 5, 4) and int(img.array[0, 0, 1]) == 30  # x fastest in the file, last here
        assert said == []
        nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(data[:352])), check=True)
        assert any("sform_code -32768 not valid" in m for m in said)
    finally:
        logger.removeHandler(handler)


def test_gzipped_dicom_with_a_corrupt_deflate_stream_is_one_line(tmp_path):
    """A gzipped DICOM whose deflate stream breaks after its first KiB: zlib.error (not an OSError) used
    to escape while the header was looked for (found by fuzzing); now one line naming the file."""
    import zlib

    arr = (np.arange(128 * 128).reshape(128, 128) % 251).astype(np.int16)
    ds = dicom_dataset(arr, sop_class=MRImageStorage, modality="MR", signed=True, PixelSpacing=[0.9, 0.8])
    p = tmp_path / "mr.dcm"
    ds.save_as(p, enforce_file_format=True)
    good = gzip.compress(p.read_bytes())

    def broken_past_the_head():  # the first bit flip whose stream inflates its first KiB, then zlib.error
        for k in range(10, len(good) - 8):  # the deflate data (after the 10-byte gzip header)
            for bit in (0x01, 0x10, 0x80, 0xFF):
                bad = bytearray(good)
                bad[k] ^= bit
                try:
                    gzip.GzipFile(fileobj=io.BytesIO(bytes(bad))).read(1024)
                except (OSError, EOFError, zlib.error):
                    continue
                try:
                    gzip.GzipFile(fileobj=io.BytesIO(bytes(bad))).read()
                except zlib.error:
                    return bytes(bad)
                except (OSError, EOFError):
                    pass
        pytest.fail("no bit flip gave zlib.error past the head")

    (tmp_path / "bad.dcm.gz").write_bytes(broken_past_the_head())
    with pytest.raises(InputError, match=r"bad.dcm.gz: truncated or corrupt gzip data"):
        read_image(tmp_path / "bad.dcm.gz")


def test_a_library_error_on_a_damaged_file_is_one_line(tmp_path):
    """pydicom raises NotImplementedError for an unknown value representation when the element is
    first read (BitsAllocated with VR 'U,' here; found by fuzzing): a traceback before, one line now."""
    arr = rng.integers(0, 500, size=(6, 5)).astype(np.int16)
    ds = dicom_dataset(arr, sop_class=MRImageStorage, modality="MR", signed=True, PixelSpacing=[0.9, 0.8])
    p = tmp_path / "mr.dcm"
    ds.save_as(p, enforce_file_format=True)
    data = p.read_bytes()
    at = data.index(b"\x28\x00\x00\x01US")  # (0028,0100) BitsAllocated, explicit VR little endian
    (tmp_path / "bad-vr.dcm").write_bytes(data[:at + 4] + b"U," + data[at + 6:])
    with pytest.raises(InputError, match=r"bad-vr.dcm: unreadable dicom file \(NotImplementedError: Unknown Value") as exc:
        read_image(tmp_path / "bad-vr.dcm")
    assert "\n" not in str(exc.value)
    series = tmp_path / "series"
    series.mkdir()
    (series / "a.dcm").write_bytes(data[:at + 4] + b"U," + data[at + 6:])
    with pytest.raises(InputError, match="series") as exc:  # the same slice in a folder
        read_image(series)
    assert "\n" not in str(exc.value)
