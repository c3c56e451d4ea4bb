"""Mutation fuzzing of medfeat's edges: whatever a user hands it must end in a value or one ``InputError``.

Targets (each deterministic for a ``--seed``):

* ``readers`` -- seed files of every format (built here: NIfTI plain and gzipped, DICOM, PNG, Netpbm
  P5/P6 and 16-bit, NRRD raw/gzip; plus ``../shared/data/medical`` and an STS PET pair when present)
  damaged by byte flips, truncation, inserted or duplicated runs, extreme integers and floats written
  into the first 600 bytes, header bytes set to edge values; a gzipped seed is also damaged inside and
  re-compressed, so the parsers behind the gzip layer are reached. Each case goes through
  ``read_image`` and, when it reads, ``medfeat.extract`` with a small central ROI.
* ``settings`` -- the shipped presets' dicts (and one with every filter kind) with one to three values
  replaced by odd ones (None, NaN, inf, lists, tables, huge integers, strings), through
  ``Settings.from_dict``.
* ``pyradiomics`` -- a PyRadiomics parameter dict with odd values, through ``settings_from_pyradiomics``.
* ``csv`` -- CSV cohorts with odd headers and cells (NUL bytes, long names, globs, URLs, BOM, ``;``),
  through the production planner's ``discover``.
* ``rtstruct`` -- a DICOM series with its RTSTRUCT (STS_002's PET, when ``../shared`` is present): one
  slice or the RTSTRUCT damaged, or a slice removed, through ``medfeat.extract(series, rtstruct)``.
* ``masks`` -- synthetic images (constant, 1e30, 1e-30, integer, boolean) and masks (empty, full, one
  voxel, labels, floats, NaN, negative, wrong shape) with odd voxel sizes, presets and families, through
  ``medfeat.extract``.

A finding is any other exception, a message over one line, or a case over ``--timeout`` seconds; the
damaged input of each kind of finding is kept under ``bench/out/fuzz/``. Memory is capped (``RLIMIT_AS``,
``--memory-gb``) so that an unbounded allocation shows up as a MemoryError finding.

    .venv/bin/python bench/fuzz.py readers --n 2000 --seed 1
    .venv/bin/python bench/fuzz.py all --n 500

Exit status 1 when something was found. Every finding fixed so far is a test (tests/test_io.py,
tests/test_hostile_inputs.py, tests/test_staging_plan.py, tests/test_local_intensity.py, ...), and
``tests/test_fuzz.py`` runs a few hundred of these cases on every test run.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import random
import resource
import signal
import struct
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "fuzz"


class CaseTimeout(Exception):
    pass


def _alarm(*_):
    raise CaseTimeout()


# ----------------------------------------------------------------------------------------- seeds
def seed_files(folder: Path) -> list[Path]:
    """Small valid files of every format medfeat reads, written into ``folder``; shared ones added."""
    import nibabel as nib
    import pydicom
    from PIL import Image as PILImage
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    from medfeat.io import write_netpbm

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    vol = (np.arange(12 * 10 * 6).reshape(12, 10, 6) % 97).astype(np.int16) * 7 - 300
    out = []
    p = folder / "vol.nii"
    nib.save(nib.Nifti1Image(vol, np.diag([0.8, 0.8, 2.0, 1.0])), p)
    out.append(p)
    p = folder / "volf.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.float32) / 3, np.diag([0.8, 0.8, 2.0, 1.0])), p)
    out.append(p)
    p = folder / "mask.nii.gz"
    nib.save(nib.Nifti1Image((vol > 0).astype(np.uint8), np.diag([0.8, 0.8, 2.0, 1.0])), p)
    out.append(p)
    arr = (np.arange(24 * 20).reshape(24, 20) % 251).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID, "MR"
    ds.SeriesInstanceUID, ds.StudyInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 24, 20, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing, ds.SliceThickness = [0.9, 0.8], 3.0
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.PixelData = arr.tobytes()
    p = folder / "mr.dcm"
    pydicom.dcmwrite(p, ds, enforce_file_format=True)
    out.append(p)
    p = folder / "mr.dcm.gz"
    p.write_bytes(gzip.compress((folder / "mr.dcm").read_bytes()))
    out.append(p)
    p = folder / "rgb.png"
    PILImage.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(p)
    out.append(p)
    for name, a in (("rgb.ppm", rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)),
                    ("grey16.pgm", rng.integers(0, 65535, (12, 16), dtype=np.uint16))):
        write_netpbm(folder / name, a)
        out.append(folder / name)
    raw = vol.astype("<i2").tobytes()
    head = "NRRD0004\ntype: short\ndimension: 3\nsizes: 6 10 12\nspacings: 2 0.8 0.8\nendian: little\n"
    (folder / "vol.nrrd").write_bytes((head + "encoding: raw\n\n").encode() + raw)
    (folder / "volgz.nrrd").write_bytes((head + "encoding: gzip\n\n").encode() + gzip.compress(raw))
    out += [folder / "vol.nrrd", folder / "volgz.nrrd"]
    for rel in ("medical/ct/pydicom_CT_small.dcm", "medical/mr/pydicomdata_emri_small.dcm",
                "medical/us/pydicomdata_OBXXXX1A_rle_palette.dcm", "medical/ct/pydicomdata_693_J2KR.dcm",
                "medical/mr/nibabel_siemens_dwi_1000_mosaic.dcm.gz", "sts/nifti/STS_019/PET_image.nii.gz",
                "sts/nifti/STS_019/PET_mask.nii.gz"):
        if (SHARED / rel).is_file():
            out.append(SHARED / rel)
    return out


def suffix(path: Path) -> str:
    name = path.name
    for double in (".nii.gz", ".dcm.gz"):
        if name.endswith(double):
            return double
    return path.suffix


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(9)
    if not b:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:  # truncate
        del b[rng.randrange(len(b)):]
    elif kind == 2:  # an extreme number in the header
        pos = rng.randrange(min(len(b), 600))
        val = rng.choice([0, 1, -1, 2 ** 15 - 1, -2 ** 15, 2 ** 31 - 1, -2 ** 31, 65535, 7, 3, 1_000_000])
        fmt = rng.choice(["<h", "<i", ">h", ">i", "<f", "<d"])
        try:
            b[pos:pos + struct.calcsize(fmt)] = struct.pack(fmt, float(val) if fmt[-1] in "fd" else val)
        except struct.error:  # a value the field cannot hold
            b[pos] ^= 0xFF
    elif kind == 3:  # inserted garbage
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 4:  # a duplicated run
        a = rng.randrange(len(b))
        b[a:a] = b[a:a + rng.randint(1, 256)]
    elif kind == 5:  # a zeroed run
        a = rng.randrange(len(b))
        n = min(rng.randint(1, 512), len(b) - a)
        b[a:a + n] = bytes(n)
    elif kind == 6:  # text where numbers are parsed
        pos = rng.randrange(len(b) + 1)
        t = rng.choice([b"999999", b"-1", b"nan", b"inf", b"0", b"65536"])
        b[pos:pos + len(t)] = t
    else:  # header bytes set to edge values
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(min(len(b), 352))] = rng.choice([0, 1, 2, 3, 4, 7, 8, 16, 64, 127, 128, 255])
    return bytes(b)


# ----------------------------------------------------------------------------------------- targets
def fuzz_readers(n: int, rng: random.Random, work: Path):
    import medfeat
    from medfeat.io import read_image

    seeds = seed_files(work / "seeds")
    for i in range(n):
        seed = rng.choice(seeds)
        data = seed.read_bytes()
        if data[:2] == b"\x1f\x8b" and rng.random() < 0.6:
            case = gzip.compress(mutate(gzip.decompress(data), rng), compresslevel=1)
        else:
            case = mutate(data, rng)
        path = work / f"case{suffix(seed)}"
        path.write_bytes(case)

        def run(path=path):
            img = read_image(path)
            if 0 < img.array.size < 5e7:
                mask = np.zeros(img.shape, dtype=np.uint8)
                z, y, x = (s // 2 for s in img.shape)
                mask[z, max(0, y - 3):y + 3, max(0, x - 3):x + 3] = 1
                volume = img.shape[0] > 1
                medfeat.extract(img, mask, "default-3d" if volume else "default-2d",
                                families=["stat", "ih", "glcm", "morph" if volume else "morph2d"])
        yield f"{seed.name} #{i}", run, case, suffix(seed)


ODD = [None, 0, -1, 1.5, float("nan"), float("inf"), "", "x", [], [None], [0], [-1, -2], {}, {"a": 1}, True,
       10 ** 20, "1e999", [[1]], "3d", "2d", "fbn", [1.0, 1.0, 1.0], [0, 0, 0]]


def fuzz_settings(n: int, rng: random.Random, work: Path):
    from medfeat.settings import Settings

    bases = [Settings.resolve(p).to_dict() for p in ("default-3d", "default-2d", "auto")]
    bases.append({**bases[0], "filters": [
        {"type": "log", "sigma_mm": 1.5}, {"type": "pyradiomics_wavelet", "subband": "LLH"},
        {"type": "gabor", "sigma_mm": 5, "wavelength_mm": 2, "gamma": 0.5, "theta": 0.5},
        {"type": "laws", "kernel": "L5E5S5"}, {"type": "mean", "support": 3}, {"type": "lbp2d"}]})
    for i in range(n):
        d = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            filters = d.get("filters")
            if isinstance(filters, list) and filters and all(isinstance(f, dict) for f in filters) and rng.random() < 0.4:
                f = rng.choice(filters)
                f[rng.choice(list(f) + ["extra", "boundary", "pooling", "dimension"])] = rng.choice(ODD + ["mirror", "max"])
            else:
                d[rng.choice(list(d))] = rng.choice(ODD)
        yield f"settings #{i}", (lambda d=d: Settings.from_dict(d, name="fuzz.toml")), repr(d).encode(), ".txt"


def fuzz_pyradiomics(n: int, rng: random.Random, work: Path):
    from medfeat.pyradiomics import settings_from_pyradiomics

    base = {"setting": {"binWidth": 25, "label": 1, "interpolator": "sitkBSpline", "resampledPixelSpacing": [1, 1, 1],
                        "normalize": False, "force2D": False, "distances": [1], "resegmentRange": [-100, 400],
                        "resegmentMode": "absolute", "preCrop": True},
            "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {"wavelet": "coif1", "level": 1},
                          "Square": {}, "LBP2D": {"lbp2DRadius": 1}, "Gradient": {"gradientUseSpacing": True}},
            "featureClass": {"firstorder": None, "shape": None, "glcm": ["Autocorrelation"], "glrlm": None}}
    paths = [(s, k) for s in base for k in base[s]] + [(s, k, kk) for s in ("imageType",) for k in base[s]
                                                       for kk in (base[s][k] or {"x": 0})]
    for i in range(n):
        p = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            where = rng.choice(paths)
            d = p
            for k in where[:-1]:
                d = d.setdefault(k, {}) if isinstance(d, dict) else {}
            if isinstance(d, dict):
                d[where[-1]] = rng.choice(ODD)
        if rng.random() < 0.1:
            p[rng.choice(list(p))] = rng.choice(ODD)
        yield f"pyradiomics #{i}", (lambda p=p: settings_from_pyradiomics(p)), repr(p).encode(), ".txt"


def fuzz_csv(n: int, rng: random.Random, work: Path):
    from medfeat.production.plan import discover

    data = work / "csv" / "d"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("a.nii.gz", "a_m.nii.gz", "b.nii.gz", "c d.nii.gz", "é.nii.gz"):
        (data / name).write_bytes(b"x")
    cols = ["image", "mask", "label", "roi", "Patient", "ID", "Image", "Mask", "", "site", "a,b", '"q"']
    cells = ["d/a.nii.gz", "d/a_m.nii.gz", "d/b.nii.gz", "", "3", "-1", "0", "1.5", "x", "9" * 20, "nan", "GTV",
             "d/missing.nii.gz", "../d/a.nii.gz", "d/c d.nii.gz", "d/é.nii.gz", "d", "d/*.nii.gz", "\x00", "a\nb",
             "x" * 300, "1e3", "True"]
    for i in range(n):
        head = rng.sample(cols, rng.randint(1, 5))
        lines = [",".join(head)] + [",".join(rng.choice(cells) for _ in range(len(head) + rng.choice([0, 0, 0, -1, 1])))
                                    for _ in range(rng.randint(0, 4))]
        text = ("\ufeff" if rng.random() < 0.1 else "") + "\n".join(lines)
        if rng.random() < 0.05:
            text = text.replace(",", ";")
        path = work / "csv" / "cohort.csv"

        def run(text=text, path=path):
            path.write_text(text, encoding="utf-8")
            discover(str(path), label=rng.choice([None, 1, 2]), roi=rng.choice([None, "GTV"]))
        yield f"csv #{i}", run, text.encode(), ".csv"


def fuzz_masks(n: int, rng: random.Random, work: Path):
    import medfeat

    nrng = np.random.default_rng(rng.randrange(1 << 30))
    fams3 = ["stat", "ih", "ivh", "glcm", "glrlm", "ngtdm", "ngldm", "glszm", "gldzm", "morph", "li"]
    fams2 = ["stat", "ih", "glcm", "glrlm", "glszm", "morph2d"]
    presets = ["default-3d", "default-2d", "auto", "ibsi-config-a", "ibsi-config-b", "ibsi-config-c", "ibsi-config-e"]
    for i in range(n):
        shape = rng.choice([(1, 8, 9), (5, 7, 6), (3, 1, 9), (1, 1, 1), (2, 2, 2), (6, 12, 12), (1, 30, 30)])
        img = nrng.normal(50, 30, shape)
        img = [img, np.full(shape, 7.0), img * 1e30, np.round(img) - 1e9, img * 1e-30][rng.randrange(5)]
        dtype = rng.choice([np.uint8, np.int16, np.float32, np.float64, np.uint16, np.int64, bool])
        with np.errstate(all="ignore"):  # 1e30 cast to integers: whatever numpy makes of it
            img = img > 50 if dtype is bool else img.astype(dtype)
        masks = [np.zeros(shape, np.uint8), np.ones(shape, np.uint8), nrng.integers(0, 5, shape).astype(np.int16),
                 nrng.random(shape).astype(np.float32), -nrng.integers(0, 2, shape),
                 np.ones(tuple(s + 1 for s in shape), np.uint8), nrng.random(shape) > 0.5,
                 nrng.integers(0, 2, shape).astype(np.uint8) * 255]
        mask = rng.choice(masks)
        spacing = rng.choice([(1.0, 1.0, 1.0), (3.0, 0.5, 0.5), (1e-6, 1e3, 1.0), (1e-4, 1e-4, 1e-4)])
        preset = rng.choice(presets)
        fams = rng.sample(fams3 if shape[0] > 1 else fams2, rng.randint(1, 4))
        label = rng.choice([None, None, 1, 2, 255, -1, 0])

        def run(img=img, mask=mask, spacing=spacing, preset=preset, fams=fams, label=label):
            medfeat.extract(medfeat.Image(img, spacing=spacing), mask, preset, families=fams, label=label)
        desc = f"shape {shape} {np.dtype(dtype).name} spacing {spacing} {preset} {fams} label {label}"
        yield f"masks #{i}", run, desc.encode(), ".txt"


def fuzz_rtstruct(n: int, rng: random.Random, work: Path):
    """A DICOM series (the STS_002 PET of ``../shared``) with its RTSTRUCT: one slice or the RTSTRUCT
    damaged, or a slice removed, through ``medfeat.extract(series, rtstruct)``. Nothing without the data."""
    import shutil

    import medfeat

    src = SHARED / "sts" / "dicom" / "STS_002" / "PET"
    if not (src / "image").is_dir():
        return
    for i in range(n):
        case = work / "rt"
        shutil.rmtree(case, ignore_errors=True)
        shutil.copytree(src / "image", case / "image")
        (case / "mask").mkdir()
        shutil.copy(src / "mask" / "RS.dcm", case / "mask" / "RS.dcm")
        slices = sorted((case / "image").iterdir())
        u = rng.random()
        target = case / "mask" / "RS.dcm" if u < 0.5 else rng.choice(slices)
        if 0.5 <= u < 0.6:
            target.unlink()
        else:
            target.chmod(0o644)
            target.write_bytes(mutate(target.read_bytes(), rng))

        def run(case=case):
            medfeat.extract(case / "image", case / "mask" / "RS.dcm", "default-3d", families=["stat", "glcm", "morph"])
        yield f"rtstruct #{i} ({target.name})", run, target.read_bytes() if target.exists() else b"", ".dcm"


TARGETS = {"readers": fuzz_readers, "settings": fuzz_settings, "pyradiomics": fuzz_pyradiomics, "csv": fuzz_csv,
           "masks": fuzz_masks, "rtstruct": fuzz_rtstruct}


def run_target(name: str, n: int, seed: int, work: Path, timeout: float = 30.0, keep: Path | None = None) -> dict:
    """Run ``n`` cases of one target; returns ``{finding kind: {"count", "example", "error"}}``."""
    from medfeat.errors import InputError

    rng = random.Random(seed)
    findings: dict[str, dict] = {}
    use_alarm = hasattr(signal, "SIGALRM")
    old = signal.signal(signal.SIGALRM, _alarm) if use_alarm else None
    try:
        for label, run, case, ext in TARGETS[name](n, rng, work):
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, timeout)
            kind = None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run()
            except InputError as exc:
                if "\n" in str(exc):
                    kind, error = "InputError over several lines", str(exc)
            except CaseTimeout:
                kind, error = f"over {timeout:g} s", label
            except Exception as exc:  # noqa: BLE001 - every other exception is the finding
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                kind, error = f"{type(exc).__name__} in {frame.name}", "".join(traceback.format_exception(exc)[-3:])
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            if kind is not None:
                f = findings.setdefault(kind, {"count": 0, "example": label, "error": error[-800:]})
                f["count"] += 1
                if keep is not None and f["count"] == 1:
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"{name}-{len(findings)}{ext}").write_bytes(case)
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, old)
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=[*TARGETS, "all"])
    parser.add_argument("--n", type=int, default=500, help="cases per target (default 500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per case (default 30)")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address-space cap (default 6 GiB)")
    args = parser.parse_args(argv)
    if hasattr(resource, "RLIMIT_AS"):
        cap = int(args.memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import tempfile

    found = 0
    with tempfile.TemporaryDirectory(prefix="medfeat-fuzz-") as tmp:
        for name in (list(TARGETS) if args.target == "all" else [args.target]):
            findings = run_target(name, args.n, args.seed, Path(tmp), args.timeout, keep=OUT)
            print(f"{name}: {args.n} cases, seed {args.seed}: "
                  + ("nothing found" if not findings else f"{sum(f['count'] for f in findings.values())} findings"))
            for kind, f in findings.items():
                found += f["count"]
                print(f"  {kind}: {f['count']} (first: {f['example']})\n    " + f["error"].replace("\n", "\n    "))
    if found:
        print(f"damaged inputs of each finding kept in {OUT}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
