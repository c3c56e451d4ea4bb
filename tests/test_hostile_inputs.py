"""Hostile inputs (issue 12): every one ends in a one-line InputError naming the file, fast, in bounded memory.

Each hostile file is built here, in tmp_path. Reads that could hang or allocate gigabytes run in a
child process with a timeout, so a regression fails instead of blocking the suite or the machine;
the child reports its peak RSS.
"""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medfeat.errors import InputError
from medfeat.io import read_image
from medfeat.io.netpbm import write_netpbm

MAX_RSS_MB = 500
TIMEOUT = 30

_CHILD = r"""
import resource, sys
from medfeat.errors import InputError
from medfeat.io import read_image
try:
    img = read_image(sys.argv[1])
    print("OK", img.array.shape)
except InputError as exc:
    print("ERR", exc)
# VmHWM is this process's own peak (ru_maxrss survives exec: it would report the parent's peak)
try:
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except OSError:
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RSS_MB", hwm // 1024)
"""


def read_in_child(path, timeout=TIMEOUT):
    """read_image(path) in a fresh process: (outcome line, peak RSS in MB, stderr)."""
    r = subprocess.run([sys.executable, "-c", _CHILD, os.fsencode(path)], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout  # one outcome line: never a message split by a newline
    return lines[0], int(lines[1].split()[1]), r.stderr


def run_cli(*args, timeout=TIMEOUT):
    return subprocess.run([sys.executable, "-m", "medfeat", *map(os.fsencode, map(str, args))],
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(r, name):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("medfeat: error: ") and name in lines[0], lines[0]
    return lines[0]


# --- 1. Hangs: FIFOs and devices ------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "image.nii"
    os.mkfifo(fifo)
    outcome, rss, stderr = read_in_child(fifo)
    assert outcome.startswith(f"ERR {fifo}: is a FIFO"), outcome
    assert stderr == ""
    with pytest.raises(InputError, match="FIFO"):  # in this process too: it cannot hang any more
        read_image(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_character_device_is_refused_without_reading(device, tmp_path):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    outcome, rss, _ = read_in_child(device)
    assert outcome == f"ERR {device}: is a character device, not a regular file: refused"
    assert rss < MAX_RSS_MB
    link = tmp_path / "scan.dcm"  # a symlink to a device is the device
    link.symlink_to(device)
    with pytest.raises(InputError, match="character device"):
        read_image(link)


def test_dicom_series_folder_skips_a_fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")
    _dicom(tmp_path / "a.dcm")
    os.mkfifo(tmp_path / "b.dcm")
    r = subprocess.run([sys.executable, "-c", "import sys; from medfeat.io import read_image; "
                        "print(read_image(sys.argv[1]).array.shape)", str(tmp_path)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout.strip() == "(1, 4, 4)", r.stderr


def test_cli_fifo_and_device_exit_2_with_one_line(tmp_path):
    """A FIFO or a device given to ``medfeat extract``: one line, exit 2, no hang (neither the reader
    nor the hash of the bad file's row opens it for reading)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    r = run_cli("extract", fifo, "-f", "stat", timeout=30)
    assert_one_line_error(r, str(fifo))
    r = run_cli("extract", "/dev/zero", "-f", "stat", timeout=30)
    assert_one_line_error(r, "/dev/zero")


# --- 2. Unbounded memory --------------------------------------------------------------------

def _nifti_bytes(shape=(4, 5, 6), dtype=np.int16) -> bytes:
    return nib.Nifti1Image(np.arange(np.prod(shape), dtype=dtype).reshape(shape), np.eye(4)).to_bytes()


def _with_dims(raw: bytes, dims) -> bytes:
    raw = bytearray(raw)
    raw[40:56] = struct.pack("<8h", len(dims), *dims, *([1] * (7 - len(dims))))
    return bytes(raw)


def test_nii_gz_with_forged_gzip_trailer_costs_only_what_the_header_says(tmp_path):
    p = tmp_path / "forged.nii.gz"
    gz = bytearray(gzip.compress(_nifti_bytes()))
    gz[-4:] = struct.pack("<I", 0xFFFFFFFF)  # ISIZE: "4.3 GB"
    p.write_bytes(bytes(gz))
    assert len(gz) < 2000
    outcome, rss, _ = read_in_child(p)
    # the buffer follows the header (240 voxel bytes), never the trailer's claim; a small file is
    # inflated whole by the header read, whose trailer check may then call the stream corrupt
    assert outcome == "OK (6, 5, 4)" or outcome.startswith(f"ERR {p}: truncated or corrupt gzip data"), outcome
    assert rss < MAX_RSS_MB


def test_truncated_nii_gz_claiming_gigabytes_is_refused_in_bounded_memory(tmp_path):
    # 1000 x 1000 x 350 int32: 1.4 GB claimed (under the image size limit), a few hundred bytes held
    raw = _with_dims(_nifti_bytes(dtype=np.int32), (1000, 1000, 350))
    p = tmp_path / "claim.nii.gz"
    p.write_bytes(gzip.compress(raw)[:-20])
    assert p.stat().st_size < 1000
    outcome, rss, _ = read_in_child(p)
    assert outcome.startswith(f"ERR {p}: truncated"), outcome
    assert rss < MAX_RSS_MB


def test_nii_gz_whose_stream_ends_early_is_refused(tmp_path):
    # the stream is complete and valid, but holds fewer voxels than the header needs
    raw = _with_dims(_nifti_bytes(), (4, 5, 7))
    p = tmp_path / "short.nii.gz"
    p.write_bytes(gzip.compress(raw))
    with pytest.raises(InputError, match="short.nii.gz: truncated gzip data: the header needs"):
        read_image(p)


def test_nii_gz_trailing_garbage_is_not_decompressed(tmp_path):
    p = tmp_path / "trail.nii.gz"
    p.write_bytes(gzip.compress(_nifti_bytes()) + gzip.compress(b"\0" * (50 << 20)) + b"garbage" * 100)
    outcome, rss, _ = read_in_child(p)
    assert outcome == "OK (6, 5, 4)" and rss < MAX_RSS_MB


@pytest.mark.parametrize("dims", [(4, -5, 6), (4, 0, 6), (0, 5, 6)])
@pytest.mark.parametrize("gz", [False, True])
def test_nifti_negative_or_zero_dimensions(tmp_path, dims, gz):
    raw = _with_dims(_nifti_bytes(), dims)
    p = tmp_path / ("dims.nii.gz" if gz else "dims.nii")
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(InputError, match=r"dims.nii(.gz)?: bad NIfTI dimensions"):
        read_image(p)


def test_nifti_huge_claim_is_refused_by_the_limit(tmp_path):
    raw = _with_dims(_nifti_bytes(dtype=np.float64), (30000, 30000, 30000))
    for name, content in (("huge.nii", raw), ("huge.nii.gz", gzip.compress(raw))):
        p = tmp_path / name
        p.write_bytes(content)
        outcome, rss, _ = read_in_child(p)
        assert outcome.startswith(f"ERR {p}: image too large: header says 30000x30000x30000 float64"), outcome
        assert "MAX_IMAGE_BYTES" in outcome and rss < MAX_RSS_MB


def _tiff(pages: int, width: int, height: int) -> bytes:
    """A little-endian TIFF of ``pages`` uncompressed 8-bit grey pages, each claiming width x height
    pixels but sharing 16 bytes of strip data."""
    n, ifd_size = 9, 2 + 9 * 12 + 4
    data_at = 8 + pages * ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for i in range(pages):
        nxt = 8 + (i + 1) * ifd_size if i + 1 < pages else 0
        entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
                   (273, 4, data_at), (277, 3, 1), (278, 4, height), (279, 4, width * height)]
        out += struct.pack("<H", n)
        for tag, typ, value in entries:
            out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", value, 0) if typ == 3
                                                       else struct.pack("<I", value))
        out += struct.pack("<I", nxt)
    return bytes(out + b"\0" * 16)


def test_small_multipage_tiff_expanding_to_gigabytes_is_refused_before_decoding(tmp_path):
    p = tmp_path / "pages.tif"
    p.write_bytes(_tiff(40, 8000, 8000))  # each page under Pillow's limit; 40 x 64 MB decoded
    assert p.stat().st_size < 6000
    outcome, rss, stderr = read_in_child(p)
    assert outcome.startswith(f"ERR {p}: image too large: header says 40 page(s) of 8000x8000 L"), outcome
    assert rss < MAX_RSS_MB and stderr == ""


def test_truncated_picture_claiming_a_large_size_is_refused_in_bounded_memory(tmp_path):
    # 9000 x 9000 RGBA: under Pillow's per-image limit (the bomb warning starts at ~89 M pixels)
    p = tmp_path / "claim.png"
    PILImage.new("RGBA", (9000, 9000)).save(p)
    p.write_bytes(p.read_bytes()[:2000])
    outcome, rss, stderr = read_in_child(p)
    assert outcome.startswith(f"ERR {p}: truncated or corrupt PNG data"), outcome
    assert rss < MAX_RSS_MB and stderr == ""


def _dicom(path, rows=4, cols=4, frames=None, pixel=None, **extra):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "CT", "1.2.3"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.PixelData = pixel if pixel is not None else np.arange(rows * cols, dtype=np.uint16).tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the odd values given on purpose warn as they are set
        for key, value in extra.items():
            setattr(ds, key, value)
        ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_size_claim_is_refused_before_decoding(tmp_path):
    p = _dicom(tmp_path / "claim.dcm", rows=65535, cols=65535, frames=1000, pixel=b"\0" * 64)
    outcome, rss, stderr = read_in_child(p)
    assert outcome.startswith(f"ERR {p}: image too large: header says 65535x65535, 1000 frame(s)"), outcome
    assert rss < MAX_RSS_MB and stderr == ""


def test_dicom_unknown_transfer_syntax_is_an_input_error(tmp_path):
    p = _dicom(tmp_path / "ts.dcm")
    raw = p.read_bytes()
    assert raw.count(b"1.2.840.10008.1.2.1\0") == 1
    p.write_bytes(raw.replace(b"1.2.840.10008.1.2.1\0", b"1.2.3.4.5.6.7.8.9.10"))
    with pytest.raises(InputError, match=r"ts.dcm: .*transfer syntax"):
        read_image(p)
    r = run_cli("extract", p, "-f", "stat")
    line = assert_one_line_error(r, str(p))
    assert "internal error" not in line


def test_gzipped_dicom_bomb_is_bounded_by_its_header(tmp_path):
    import tracemalloc

    # a 4x4 DICOM followed by 300 MB of zeros (300 kB compressed): decompressed no further than
    # the header's pixel data (+1 MiB), refused, in a few MB
    p = tmp_path / "bomb.dcm.gz"
    dcm = _dicom(tmp_path / "a.dcm").read_bytes()
    p.write_bytes(gzip.compress(dcm + b"\0" * (300 << 20), compresslevel=1))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="bomb.dcm.gz: gzip data decompresses to more than"):
            read_image(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB"
    # the file without the zeros reads
    p.write_bytes(gzip.compress(dcm))
    assert read_image(p).shape == (1, 4, 4)


def test_gzipped_netpbm_bomb_costs_only_its_raster(tmp_path):
    import tracemalloc

    p = tmp_path / "bomb.pgm.gz"
    p.write_bytes(gzip.compress(b"P5\n8 8\n255\n" + bytes(range(64)) + b"\0" * (300 << 20), compresslevel=1))
    tracemalloc.start()
    try:
        img = read_image(p)  # the raster the header declares; what follows is never inflated
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert img.shape == (1, 8, 8) and img.array.ravel().tolist() == list(range(64))
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB"
    # a header claiming more than the image limit is refused before anything is inflated
    p.write_bytes(gzip.compress(b"P5\n200000 200000\n255\n" + b"\0" * 1000))
    with pytest.raises(InputError, match="image too large"):
        read_image(p)


# --- 3. Library warnings do not leak ----------------------------------------------------------

def test_library_warnings_do_not_reach_stderr(tmp_path):
    dcm = _dicom(tmp_path / "odd.dcm", rows=8, cols=8, StudyInstanceUID="not-a-uid-" + "f" * 70,
                 SliceThickness="1.00000000000000000001")
    nii = tmp_path / "odd.nii"
    raw = bytearray(_nifti_bytes((8, 8, 8)))
    raw[108:112] = struct.pack("<f", 0.0)  # vox_offset 0 in an n+1 file: nibabel warns and repairs
    nii.write_bytes(bytes(raw[:348] + b"\0" * 4 + raw[352:]))
    for path in (dcm, nii):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning escaping the reader fails here
            try:
                read_image(path)
            except InputError:
                pass
        r = run_cli("extract", path, "-f", "stat")
        assert "Warning" not in r.stderr and "warn" not in r.stderr.lower(), r.stderr


def test_pillow_decompression_bomb_warning_is_an_error_not_stderr(tmp_path, monkeypatch):
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)
    p = tmp_path / "bomb.png"
    PILImage.new("L", (40, 40)).save(p)  # 1600 pixels: between 1x and 2x the limit -> the warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="bomb.png: image too large to decode safely"):
            read_image(p)


# --- 4. One-line messages ---------------------------------------------------------------------

def test_control_characters_in_names_are_escaped():
    err = InputError("a\nb\rc\x1b[31m\u2028d.nii", "line one\nline two")
    text = str(err)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert text == '"a\\nb\\rc\\x1b[31m\\u2028d.nii": line one\\nline two'
    assert err.path == "a\nb\rc\x1b[31m\u2028d.nii"  # the raw name stays available
    assert str(InputError("/data/ct scan ü.nii", "bad")) == "/data/ct scan ü.nii: bad"  # plain names as before


def test_cli_newline_in_file_name_gives_one_line(tmp_path):
    p = tmp_path / "evil\nname.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    r = run_cli("extract", p, "-f", "stat")
    line = assert_one_line_error(r, "evil\\nname.png")
    assert '"' + str(tmp_path) + '/evil\\nname.png"' in line


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses non-UTF-8 file names")
def test_cli_undecodable_file_name_gives_one_line(tmp_path):
    p = os.path.join(os.fsencode(tmp_path), b"bad\xffname.pgm")
    with open(p, "wb") as fh:
        fh.write(b"P5 2 2 255\n\0")
    r = run_cli("extract", os.fsdecode(p), "-f", "stat")
    assert_one_line_error(r, "bad\\xffname.pgm")


# --- 5. NaN labels ----------------------------------------------------------------------------

def test_nan_mask_value_is_not_roi(tmp_path):
    import medfeat

    img = tmp_path / "img.pgm"
    write_netpbm(img, np.arange(64, dtype=np.uint8).reshape(8, 8))
    mask = np.full((1, 8, 8), np.nan, dtype=np.float32)
    with pytest.raises(InputError, match="mask is empty"):
        medfeat.extract(str(img), mask=mask, families=["stat"])


def test_a_signalling_nan_is_cast_without_a_warning():
    """A float32 signalling NaN (random bytes in a NIfTI made one) set numpy's invalid flag when cast
    to float64: a stray RuntimeWarning line before the file's one-line NaN error. The cast is quiet and
    the NaN stays NaN for the checks that refuse it."""
    import warnings

    from medfeat.image import Image

    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    a.view(np.uint32)[1] = 0x7F800001  # exponent all ones, quiet bit clear: signalling
    for arr in (a.reshape(1, 1, 3), np.stack([a] * 3, axis=-1).reshape(1, 1, 3, 3)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = Image(arr, spacing=(1.0, 1.0, 1.0)).intensity()
        assert out.dtype == np.float64 and np.isnan(out[0, 0, 1]) and out[0, 0, 2] == pytest.approx(3.0)
