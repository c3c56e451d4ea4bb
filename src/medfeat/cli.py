"""The ``medfeat`` command line."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from medfeat.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Fast, IBSI-validated feature extraction from medical images.")


def _version(value: bool) -> None:
    if value:
        from medfeat import __version__

        typer.echo(f"medfeat {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print medfeat's version and exit.")) -> None:
    """Fast, IBSI-validated feature extraction from medical images."""
    from medfeat.production.tuning import freeze_at_exit

    freeze_at_exit()  # the command's exit skips a final collection (~0.4 s); see medfeat.production.tuning


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"medfeat: error: {message}", err=True)
    raise typer.Exit(code)


def _file_sha256(path: str) -> str:
    from medfeat.io._files import file_sha256  # never blocks on a FIFO nor reads a device forever

    return file_sha256(path)


def _families(value: Optional[str]):
    if not value:
        return None
    return tuple(f.strip() for f in value.split(",") if f.strip())


@app.command()
def extract(
    images: List[str] = typer.Argument(..., help="Image files or DICOM series folders."),
    mask: Optional[List[str]] = typer.Option(None, "--mask", "-m",
                                             help="Mask file (label image, or DICOM RTSTRUCT); once for all "
                                                  "images or once per image."),
    label: Optional[int] = typer.Option(None, "--label", help="Mask label to use (default: any non-zero)."),
    roi: Optional[str] = typer.Option(None, "--roi", help="ROI name of an RTSTRUCT mask (optional when it "
                                                            "holds one ROI)."),
    settings: Optional[str] = typer.Option(None, "--settings", "-s",
                                           help="Preset name or settings file (TOML, YAML, JSON). Default: auto "
                                                "(default-3d for volumes, default-2d for single-slice images; "
                                                "the row's note says which ran)."),
    families: Optional[str] = typer.Option(None, "--families", "-f",
                                           help="Comma-separated families (stat,ih,ivh,glcm,glrlm,glszm,gldzm,"
                                                "...; see `medfeat families`)."),
    layout: str = typer.Option("wide", "--layout", help="wide: one row per image; long: one row per value."),
    resample_mask: bool = typer.Option(False, "--resample-mask", help="Resample a mask on another grid (shifted, "
                                                                      "flipped) onto the image's instead of refusing it."),
    names: str = typer.Option("medfeat", "--names", help="Column names: medfeat (IBSI tags) or pyradiomics "
                                                         "(original_glcm_JointEnergy, for the features both define)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="OUT.parquet, .csv or .json (default: CSV on stdout)."),
) -> None:
    """Extract features from IMAGES into one table. A bad image gets an error in its row; the others
    still run, and the exit status is then 2."""
    from medfeat.columns import feature_columns
    from medfeat.pipeline import extract as extract_one
    from medfeat.settings import Settings
    from medfeat.tables import ImageResult, long_table, wide_table, write_table

    if layout not in ("wide", "long"):
        _fail(f"--layout must be 'wide' or 'long', not {layout!r}")
    if names not in ("medfeat", "pyradiomics"):
        _fail(f"--names must be 'medfeat' or 'pyradiomics', not {names!r}")
    if output is not None and output.suffix.lower() not in (".parquet", ".csv", ".json"):
        _fail(f"{output}: unknown output format {output.suffix!r}; use .parquet, .csv or .json")
    masks = list(mask or [])
    if len(masks) not in (0, 1, len(images)):
        _fail(f"{len(masks)} masks for {len(images)} images: give one mask for all, or one per image")
    try:
        s = Settings.resolve(settings)
        if resample_mask:
            s = s.replace(resample_mask=True)
        columns = feature_columns(s, _families(families))
    except InputError as exc:
        _fail(str(exc))
    fams = tuple(dict.fromkeys(c.family for c in columns))
    # a wide Parquet table stores the gift codes packed (as a production's features.parquet does):
    # the rows are extracted so, ~0.4 ms per image cheaper; CSV, JSON and the long layout stay wide
    packed = layout == "wide" and output is not None and output.suffix.lower() == ".parquet"

    results = []
    worst = 0
    for i, path in enumerate(images):
        m = masks[0] if len(masks) == 1 else (masks[i] if masks else None)
        try:
            from medfeat.io import read_image

            img = read_image(path)
            notes: list[str] = []
            feats = extract_one(img, m, s, families=fams, label=label, roi=roi, notes=notes, pack_gift=packed)
            results.append(ImageResult(path, img.sha256, feats, note="; ".join(notes)))
        except InputError as exc:
            results.append(ImageResult(path, _file_sha256(path), error=str(exc)))
            typer.echo(f"medfeat: error: {exc}", err=True)
            worst = max(worst, 2)
        except Exception as exc:  # a bug must not cost the other images their rows
            msg = f"{path}: internal error: {type(exc).__name__}: {exc}"
            results.append(ImageResult(path, _file_sha256(path), error=msg))
            typer.echo(f"medfeat: error: {msg}", err=True)
            worst = max(worst, 1)
    table = wide_table(results, columns, pack_gift=packed) if layout == "wide" else long_table(results, columns)
    if layout == "wide":
        from medfeat.tables import drop_unused_columns

        table = drop_unused_columns(table, s, fams)
    if names == "pyradiomics" and layout == "wide":
        from medfeat.pyradiomics import pyradiomics_column

        renamed, seen = [], set()
        for c in table.column_names:
            new = pyradiomics_column(c) or c
            renamed.append(new if new not in seen else c)  # a second column of one name keeps medfeat's
            seen.add(renamed[-1])
        table = table.rename_columns(renamed)
    from medfeat.tables import provenance

    write_table(table, output, provenance(s.replace(families=_families(families) or s.families), label=label, roi=roi,
                                          masks=masks))
    if worst:
        raise typer.Exit(worst)


@app.command("filter")
def filter_cmd(
    image: str = typer.Argument(..., help="Image file or DICOM series folder."),
    output: Path = typer.Option(..., "--output", "-o", help="Response map to write (.nii or .nii.gz), on the "
                                                           "image's grid."),
    settings: str = typer.Option(..., "--settings", "-s", help="Preset (e.g. ibsi2-2.a) or settings file whose "
                                                               "`filters` names the filter (the first one)."),
) -> None:
    """Write the response map of the settings' filter (IBSI chapter 2, or a PyRadiomics image type) for
    IMAGE, as float32 NIfTI on the image's grid (the whole image is filtered; no interpolation)."""
    import numpy as np

    from medfeat.settings import Settings
    from medfeat.filters.registry import apply
    from medfeat.io import read_image

    try:
        s = Settings.resolve(settings)
        if not s.filters:
            _fail(f"{settings}: names no filter (`filters = [{{type = ...}}]`)")
        img = read_image(image)
        response = apply(s.filters[0], img.intensity(), img.spacing)
    except InputError as exc:
        _fail(str(exc))
    import nibabel as nib

    affine = img.meta.get("affine") if isinstance(img.meta, dict) else None
    if affine is None:  # axis-aligned: spacing and origin (z, y, x) -> NIfTI's (x, y, z)
        affine = np.diag([*img.spacing[::-1], 1.0])
        affine[:3, 3] = img.origin[::-1]
    if output.suffix not in (".nii", ".gz"):
        _fail(f"{output}: write a NIfTI file (.nii or .nii.gz)")
    output.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(response.astype(np.float32).transpose(2, 1, 0)),
                             np.asarray(affine, dtype=float)), output)
    typer.echo(f"{output}: {s.filters[0]['type']} response, {response.shape[::-1]} voxels, "
               f"min {response.min():.6g}, max {response.max():.6g}")


@app.command("maps")
def maps_cmd(
    image: str = typer.Argument(..., help="Image file or DICOM series folder."),
    mask: str = typer.Option(..., "--mask", "-m", help="Mask file (label image, RTSTRUCT or SEG)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the maps: one DIR/<column>.nii.gz per feature."),
    settings: Optional[str] = typer.Option(None, "--settings", "-s", help="Preset name or settings file (default: auto)."),
    families: str = typer.Option("stat,glcm", "--families", "-f",
                                 help="Comma-separated families: stat, ih, glcm (incremental); ivh, glrlm, glszm, "
                                      "gldzm, ngtdm, ngldm (per-voxel, slow)."),
    radius: int = typer.Option(1, "--radius", "-r", help="Kernel half size R: a (2R+1)^3 cube, or square with 2D settings."),
    label: Optional[int] = typer.Option(None, "--label", help="Mask label to use (default: any non-zero)."),
    unmasked: bool = typer.Option(False, "--unmasked-kernel", help="Count every image voxel of the kernel, not only "
                                                                    "the ROI's (PyRadiomics' maskedKernel: false)."),
) -> None:
    """Voxel feature maps (PyRadiomics' voxel-based mode): the features of the neighbourhood of every
    ROI voxel, one float32 NIfTI per feature on the image's grid, NaN outside the ROI."""
    from medfeat.maps import compute_maps, write_maps

    try:
        t0 = time.perf_counter()
        maps = compute_maps(image, mask, settings, families, radius, not unmasked, label=label)
        written = write_maps(maps, output)
    except InputError as exc:
        _fail(str(exc))
    for note in maps.notes:
        typer.echo(f"note: {note}")
    for path in written:
        typer.echo(str(path))
    typer.echo(f"{len(written)} maps of {maps.values.shape[0]} ROI voxels, radius {radius}, in "
               f"{time.perf_counter() - t0:.2f} s")


@app.command("gift-fts")
def gift_fts(
    images: List[str] = typer.Argument(..., help="Image files or DICOM series folders, or features tables (.parquet: "
                                                 "a production's features.parquet, `medfeat extract --families gift`)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the .fts files (created if needed)."),
    grey_levels: Optional[int] = typer.Option(None, "--grey-levels",
                                              help="Grey bins: 4 (the default) is GIFT's; any other value (1..94) is not "
                                                   "GIFT-compatible. A table brings its own."),
) -> None:
    """Write GNU GIFT 0.1.15a feature files, OUTPUT/<stem>.fts per image, as gift-extract-features
    writes them for the image forced to 256x256. A features table gives one file per row, from the
    stored codes (no image is read again). A bad image (or a failed row) gets a one-line error; the
    others are still written, and the exit status is then 2."""
    from medfeat.features.gift import GREY_LEVELS, MAX_GREY_LEVELS, gift_features, gift_rgb, write_fts
    from medfeat.io import read_image

    if grey_levels is not None and not 1 <= grey_levels <= MAX_GREY_LEVELS:
        _fail(f"--grey-levels must be in 1..{MAX_GREY_LEVELS}, not {grey_levels}")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"{output}: cannot create the output folder: {exc.strerror or exc}")
    worst = 0
    written: dict[str, str] = {}

    def write(path: str, make) -> None:
        """Write ``path``'s feature file from ``make()`` -> (ids, values); one error line if it fails."""
        nonlocal worst
        target = output / (Path(path.rstrip("/\\") or path).stem + ".fts")  # GIFT cuts at the last dot too
        try:
            if str(target) in written:
                raise InputError(path, f"its feature file {target} would overwrite that of {written[str(target)]}")
            write_fts(target, *make())
            written[str(target)] = path
        except InputError as exc:
            typer.echo(f"medfeat: error: {exc}", err=True)
            worst = max(worst, 2)
        except OSError as exc:
            typer.echo(f"medfeat: error: {target}: cannot write: {exc.strerror or exc}", err=True)
            worst = max(worst, 2)
        except Exception as exc:  # a bug must not cost the other images their files
            typer.echo(f"medfeat: error: {path}: internal error: {type(exc).__name__}: {exc}", err=True)
            worst = max(worst, 1)

    for path in images:
        if path.lower().endswith(".parquet"):
            try:
                for image, make in _fts_rows_of_table(path, grey_levels):
                    write(image, make)
            except InputError as exc:
                typer.echo(f"medfeat: error: {exc}", err=True)
                worst = max(worst, 2)
            continue
        write(path, lambda: gift_features(gift_rgb(read_image(path), path),
                                          grey_levels=grey_levels or GREY_LEVELS).to_sparse())
    if worst:
        raise typer.Exit(worst)


def _fts_rows_of_table(path: str, grey_levels: int | None):
    """(image, make) for each row of a features table, ``make()`` giving the row's GIFT ``(ids,
    values)`` from its stored gift columns (packed or wide), or raising the row's one-line error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medfeat.features.gift import features_of_row, grey_levels_of_row
    from medfeat.tables import pack_gift_codes

    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"not a readable Parquet features table ({exc})") from None
    cols = pf.schema_arrow.names
    g = grey_levels_of_row(dict.fromkeys(cols))
    if "image" not in cols or g <= 0:
        raise InputError(path, "not a features table with gift features (no image or gift_hist_* columns)")
    if grey_levels is not None and g != grey_levels:
        raise InputError(path, f"its gift features have {g} grey levels, not --grey-levels {grey_levels}")
    want = [c for c in cols if c in ("image", "error") or c.startswith("gift_")]
    try:
        for batch in pf.iter_batches(batch_size=256, columns=want):
            for row in pack_gift_codes(pa.Table.from_batches([batch])).to_pylist():
                image = str(row["image"])

                def make(row=row, image=image):
                    if row.get("error"):
                        reason = str(row["error"]).removeprefix(f"{image}: ")
                        raise InputError(image, f"its row in {path} has no features ({reason})")
                    try:
                        return features_of_row(row)
                    except ValueError as exc:
                        raise InputError(image, f"its row in {path}: {exc}") from None

                yield image, make
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"cannot read the table ({exc})") from None


@app.command("index")
def index_cmd(
    inputs: List[str] = typer.Argument(..., help="A features table (.parquet: RUN/features.parquet of `medfeat run "
                                                 "--families gift`), or image files / DICOM series folders."),
    output: Path = typer.Option(..., "--output", "-o", help="Index file to write (.npz)."),
    grey_levels: Optional[int] = typer.Option(None, "--grey-levels",
                                              help="Grey bins for images: 8 (default) retrieves medical images best; 4 "
                                                   "is GIFT's. A table brings its own."),
    gift_parts: bool = typer.Option(False, "--gift-parts",
                                    help="Also keep GIFT's parts, for `medfeat search --method gift|intersection` "
                                         "(about 20 kB an image)."),
) -> None:
    """Build a search-by-example index of GIFT features (see `medfeat search`). From a table, rows with an
    error are left out and counted; from images, a bad image gets a one-line error, the others are
    indexed, and the exit status is then 2."""
    from medfeat.features.gift import MAX_GREY_LEVELS
    from medfeat.retrieval import DEFAULT_GREY_LEVELS, Index, looks_like_parquet

    t0 = time.perf_counter()
    if grey_levels is not None and not 1 <= grey_levels <= MAX_GREY_LEVELS:
        _fail(f"--grey-levels must be in 1..{MAX_GREY_LEVELS}, not {grey_levels}")
    worst = 0
    if len(inputs) == 1 and (inputs[0].lower().endswith(".parquet") or looks_like_parquet(inputs[0])):
        try:
            idx = Index.from_table(inputs[0], gift_parts=gift_parts)
        except InputError as exc:
            _fail(str(exc))
        if grey_levels is not None and grey_levels != idx.grey_levels:
            _fail(f"{inputs[0]}: its gift features have {idx.grey_levels} grey levels, not --grey-levels {grey_levels}")
        if idx.skipped:
            typer.echo(f"medfeat: {inputs[0]}: left out {len(idx.skipped)} rows with an error", err=True)
    else:
        idx = Index.from_images(inputs, grey_levels=DEFAULT_GREY_LEVELS if grey_levels is None else grey_levels,
                                gift_parts=gift_parts)
        for _, reason in idx.skipped:
            typer.echo(f"medfeat: error: {reason}", err=True)
            worst = 2
    if not len(idx):
        _fail("no image to index" + (f" ({len(idx.skipped)} left out)" if idx.skipped else ""))
    try:
        idx.save(output)
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror or exc}")
    typer.echo(f"indexed {len(idx)} images ({idx.grey_levels} grey levels"
               + (f", GIFT's parts: {idx.matrix.nnz} features" if idx.has_gift_parts else "")
               + (f", {len(idx.skipped)} left out" if idx.skipped else "") + f") into {output} "
               f"in {time.perf_counter() - t0:.1f} s")
    if worst:
        raise typer.Exit(worst)


@app.command()
def search(
    index: Path = typer.Argument(..., help="Index file written by `medfeat index`."),
    like: str = typer.Option(..., "--like", help="Query image: a file, or the name of an indexed image."),
    top: int = typer.Option(10, "--top", help="Number of results."),
    method: Optional[str] = typer.Option(None, "--method",
                                         help="hellinger (the default), or gift (GIFT's classical idf) or "
                                              "intersection (indexes built with --gift-parts)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {image, score}, best first."),
) -> None:
    """Search INDEX for the images most like an example image; prints rank, image and score."""
    import json

    from medfeat.retrieval import DEFAULT_METHOD, METHODS, Index

    method = method or DEFAULT_METHOD
    if method not in METHODS:
        _fail(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if top < 1:
        _fail(f"--top must be at least 1, not {top}")
    try:
        idx = Index.load(index)
        if method != DEFAULT_METHOD and not idx.has_gift_parts:
            _fail(f"{index}: --method {method} needs an index built with `medfeat index --gift-parts`")
        hits = idx.search(like, top=top, method=method)
    except InputError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"{like}: {exc}")
    if as_json:
        typer.echo(json.dumps([{"image": name, "score": score} for name, score in hits], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("rank", "image", "score", title=f"{len(hits)} images like {like} ({method}, {len(idx)} indexed)")
    t.columns[0].justify = t.columns[2].justify = "right"
    t.columns[1].overflow = "fold"
    for rank, (name, score) in enumerate(hits, 1):
        t.add_row(str(rank), name, f"{score:.4f}")
    Console().print(t)


@app.command()
def warmup() -> None:
    """Compile every feature kernel now (numba, for all shipped presets, 2D and 3D) into the user's
    cache, so that the first `medfeat extract` only loads them: run it once after installing."""
    from medfeat._numba_cache import warmup as _warmup

    info = _warmup()
    typer.echo(f"compiled {info['compiled']} kernels ({info['loaded']} already cached) into "
               f"{info['cache_dir'] or 'numba default cache'} in {info['seconds']:.1f} s")


@app.command()
def families(as_json: bool = typer.Option(False, "--json", help="Print the families and features as JSON.")) -> None:
    """List every feature family and feature with its IBSI code."""
    import importlib
    import json

    from medfeat.families import FAMILIES

    rows = []
    for key, fam in FAMILIES.items():
        # a family with thousands of columns (gift) lists them by group
        for f in getattr(importlib.import_module(fam.module), "FEATURE_GROUPS", None) or fam.features:
            rows.append({"family": key, "tag": f.tag, "ibsi_code": f.code, "name": f.name,
                         "per_aggregation": bool(fam.textured)})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("family", "feature (IBSI tag)", "IBSI code", "name", "per aggregation")
    for r in rows:
        t.add_row(r["family"], r["tag"], r["ibsi_code"], r["name"], "yes" if r["per_aggregation"] else "")
    Console().print(t)


_SPECULATE = typer.Option(None, "--speculate/--no-speculate", help="Backup attempts for straggling jobs (default on).")
_SPEC_AFTER = typer.Option(None, "--speculate-after", help="Share of jobs done before backups start (default 0.5).")
_SPEC_FACTOR = typer.Option(None, "--speculate-factor", help="Backup a job running longer than this x the median "
                                                             "(default 2).")
_TIMEOUT = typer.Option(None, "--job-timeout",
                        help="Seconds before a job is moved elsewhere (default: 5 x median, at least 30; 0: never).")
_QUEUE_TIMEOUT = typer.Option(None, "--queue-timeout", help="Seconds a batch job may wait in its queue before it is "
                                                            "cancelled and submitted again (default: no limit).")
_SLOW_AFTER = typer.Option(None, "--slow-after", help="Slow jobs after which a worker gets no new ones (default 2).")
_MAX_ATTEMPTS = typer.Option(None, "--max-attempts", help="Attempts per job whose code raises or whose worker or "
                                                          "batch job vanished (default 3).")
_KEEP_BUNDLES = typer.Option(None, "--keep-bundles/--delete-bundles",
                             help="Keep each job's bundle in the stage after its result is committed (default: delete).")
_KEEP_RESULTS = typer.Option(None, "--keep-results/--fold-results",
                             help="Keep the job results in the stage after a complete run (default: delete them "
                                  "once features.parquet holds every row).")
_BUNDLES = typer.Option(None, "--bundles",
                        help="auto (default): reference on the local backend, copy elsewhere; copy: each job's "
                             "bundle carries its images; reference: it lists their paths, read in place by "
                             "workers that share this machine's filesystem.")
_QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
_BACKEND = typer.Option(None, "--backend", "-b", help="Where jobs run: local (default), dask, ssh, slurm, pbs, sge, "
                                                      "htcondor, lsf, oar, moab, arc, kubernetes, cloud.")
_MODE = typer.Option(None, "--mode", help="workers: Dask workers (as batch jobs on a batch system); jobs: one batch "
                                          "job per production job, no connection back (slurm, pbs, sge, htcondor, arc).")
_WORKERS = typer.Option(None, "--workers", "-w", help="Workers (N, or MIN:MAX for an adaptive cluster); in jobs mode "
                                                      "the batch jobs in flight at once.")
_SCHEDULER = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler (implies --backend dask).")
_CONFIG = typer.Option(None, "--config", help="TOML file with [backend], [tail] (and [plan]) tables; flags win.")
_QUEUE = typer.Option(None, "--queue", help="Batch queue or partition.")
_ACCOUNT = typer.Option(None, "--account", help="Batch account or project.")
_WALLTIME = typer.Option(None, "--walltime", help="Batch walltime, e.g. 01:00:00.")
_MEMORY = typer.Option(None, "--memory", help="Memory per worker or job, e.g. 2GB.")
_JOB_EXTRA = typer.Option(None, "--job-extra", help="Extra batch directive (repeatable), e.g. --job-extra=--qos=short.")
_HOSTS = typer.Option(None, "--hosts", help="SSH hosts, comma-separated (the first also runs the scheduler).")
_SSH_PORT = typer.Option(None, "--ssh-port", help="SSH port.")
_SSH_USER = typer.Option(None, "--ssh-user", help="SSH user.")
_SSH_KEY = typer.Option(None, "--ssh-key", help="SSH private key file.")
_CE = typer.Option(None, "--ce", help="ARC computing element host.")
_ENV = typer.Option(None, "--env", help="jobs mode: a worker environment made by `medfeat pack-env` (path or URL), "
                                        "unpacked on the node when medfeat is not installed there.")


def _run_config(config, *, images_per_job=None, stage=None, label=None, roi=None, mask_pattern=None, backend=None, mode=None, workers=None, scheduler=None,
                max_attempts=None, speculate=None, speculate_after=None, speculate_factor=None, job_timeout=None,
                queue_timeout=None, slow_after=None, keep_bundles=None, keep_results=None, bundles=None, queue=None,
                account=None, walltime=None, memory=None, job_extra=None, hosts=None, ssh_port=None, ssh_user=None, ssh_key=None, ce=None, env=None):
    from medfeat.production.options import RunConfig

    cfg = RunConfig.load(config)
    if scheduler and backend not in (None, "dask"):
        _fail("--scheduler names an existing Dask cluster: use it with --backend dask (or alone)")
    cfg.override(
        plan={"images_per_job": images_per_job, "stage": stage, "label": label, "roi": roi,
              "mask_pattern": mask_pattern},
        tail={"max_attempts": max_attempts, "speculate": speculate, "speculate_after": speculate_after,
              "speculate_factor": speculate_factor, "job_timeout": job_timeout, "queue_timeout": queue_timeout,
              "slow_after": slow_after, "keep_bundles": keep_bundles, "keep_results": keep_results,
              "bundles": bundles},
        backend={"name": "dask" if scheduler else backend, "mode": mode, "workers": workers},
        backend_options={"scheduler": scheduler, "queue": queue, "account": account, "walltime": walltime,
                         "memory": memory, "job_extra": list(job_extra) if job_extra else None,
                         "hosts": [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None,
                         "ssh_port": ssh_port, "ssh_user": ssh_user, "ssh_key": ssh_key, "ce": ce, "env": env})
    return cfg


def _preload_report_modules() -> None:
    """Import what report.html needs (matplotlib, ~0.5 s) in a background thread while the workers
    run: the client is mostly waiting then, and the page is written after the run."""
    import threading

    def load():
        import importlib

        try:
            for name in ("matplotlib.figure", "matplotlib.backends.backend_svg"):
                importlib.import_module(name)
        except Exception:  # the page reports its own failure later
            pass

    threading.Thread(target=load, name="medfeat-preload", daemon=True).start()


def _run_production(run_dir: Path, dataset, settings, families, cfg, quiet: bool) -> None:
    import shutil
    import sqlite3

    from rich.console import Console

    from medfeat.production.backends import get_backend
    from medfeat.production.engine import Production
    from medfeat.report.metrics import run_metrics, run_table

    console = Console(stderr=False)
    fresh = not run_dir.exists()
    started = False
    t0 = time.time()  # the user's waiting starts now: planning and the cluster's start-up count
    try:
        get_backend(cfg.backend.name)  # a wrong name fails before any planning
        from medfeat.production.stores import check_stage_url, configure_store, probe_stage

        configure_store(cfg.stage, cfg.backend.options)  # [stage] table -> environment (never the ledger)
        if cfg.plan.stage:
            check_stage_url(cfg.plan.stage)
            probe_stage(cfg.plan.stage)  # a wrong secret or dead endpoint: one line now, not after retries
        prod = Production(run_dir, dataset, settings, _families(families), cfg.plan,
                          console=None if quiet else console, workers_hint=cfg.backend.size()[1])
        ex = prod.executor(cfg.backend)  # connect (or start workers) before the first session
        started = True
        _preload_report_modules()
        try:
            prod.run(ex, cfg.tail, since=t0)
        finally:
            ex.close()
    except (InputError, KeyboardInterrupt, OSError, sqlite3.Error) as exc:
        if fresh and not started:  # nothing ran: leave no half-made run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, (OSError, sqlite3.Error)):  # a full disk, a folder made read-only mid-run
            exc = InputError(run_dir, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, KeyboardInterrupt):
            _fail("interrupted" + (f"; committed results are kept: `medfeat resume {run_dir}` runs the rest"
                                   if started else ""), code=130)
        _fail(str(exc) + (f" (committed results are kept: `medfeat resume {run_dir}` runs the rest)"
                          if started else ""))
    metrics = run_metrics(run_dir)
    console.print(run_table(metrics, title=f"medfeat run {run_dir}"))
    console.print(f"features: {run_dir / 'features.parquet'}  errors: {run_dir / 'errors.csv'}")
    try:  # the page is a convenience: never let it fail the run
        from medfeat.report.html import write_html_report

        page = write_html_report(run_dir)
        if not quiet:
            typer.echo(f"report: {page}")
    except Exception as exc:
        typer.echo(f"medfeat: warning: could not write {run_dir / 'report.html'}: {type(exc).__name__}: "
                   f"{' '.join(str(exc).split())}", err=True)
    if metrics["failed_images"]:
        typer.echo(f"medfeat: {metrics['failed_images']} of {metrics['images']} images failed; reasons in "
                   f"{run_dir / 'errors.csv'}", err=True)
        raise typer.Exit(2)


@app.command()
def run(
    dataset: str = typer.Argument(..., help="Folder (recursive; masks paired by name), glob, CSV cohort (image, mask, "
                                            "label, roi + identifier columns) or fsspec URL."),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder (ledger, stage, features.parquet)."),
    images_per_job: Optional[int] = typer.Option(None, "--images-per-job", help="Images per job bundle (default: about 4 jobs per "
                                                                                   "worker, at most 250)."),
    settings: Optional[str] = typer.Option(None, "--settings", "-s", help="Preset or settings file (default: auto: default-3d for volumes, default-2d for single-slice images)."),
    families: Optional[str] = typer.Option(None, "--families", "-f", help="Comma-separated families."),
    stage: Optional[str] = typer.Option(None, "--stage", help="fsspec URL of the staging store (default RUN_DIR/stage; "
                                                              "file://, sftp://, s3://)."),
    label: Optional[int] = typer.Option(None, "--label", help="Mask label for every image whose row names none "
                                                              "(default: any non-zero voxel)."),
    roi: Optional[str] = typer.Option(None, "--roi", help="RTSTRUCT ROI name for every image whose row names none."),
    resample_mask: bool = typer.Option(False, "--resample-mask", help="Resample masks on another grid (shifted, "
                                                                      "flipped) onto their image's instead of refusing them."),
    mask_pattern: Optional[str] = typer.Option(None, "--mask-pattern",
                                               help="Pair images and masks in a folder: IMAGE_GLOB:MASK_GLOB with one "
                                                    "* each, e.g. '*_t1.nii.gz:*_t1_seg.nii.gz' (default: *_image.* "
                                                    "-> *_mask.*, image/ -> mask/, RTSTRUCT beside a DICOM series)."),
    backend: Optional[str] = _BACKEND, mode: Optional[str] = _MODE, workers: Optional[str] = _WORKERS,
    scheduler: Optional[str] = _SCHEDULER, config: Optional[Path] = _CONFIG,
    queue: Optional[str] = _QUEUE, account: Optional[str] = _ACCOUNT, walltime: Optional[str] = _WALLTIME,
    memory: Optional[str] = _MEMORY, job_extra: Optional[List[str]] = _JOB_EXTRA,
    hosts: Optional[str] = _HOSTS, ssh_port: Optional[int] = _SSH_PORT, ssh_user: Optional[str] = _SSH_USER,
    ssh_key: Optional[str] = _SSH_KEY, ce: Optional[str] = _CE, env: Optional[str] = _ENV,
    max_attempts: Optional[int] = _MAX_ATTEMPTS, quiet: bool = _QUIET,
    speculate: Optional[bool] = _SPECULATE, speculate_after: Optional[float] = _SPEC_AFTER,
    speculate_factor: Optional[float] = _SPEC_FACTOR, job_timeout: Optional[float] = _TIMEOUT,
    queue_timeout: Optional[float] = _QUEUE_TIMEOUT, slow_after: Optional[int] = _SLOW_AFTER,
    keep_bundles: Optional[bool] = _KEEP_BUNDLES, keep_results: Optional[bool] = _KEEP_RESULTS,
    bundles: Optional[str] = _BUNDLES,
) -> None:
    """Run DATASET as a production of jobs on a backend. Re-running it on the same folder resumes."""
    cfg = _run_config(config, images_per_job=images_per_job, stage=stage, label=label, roi=roi,
                      mask_pattern=mask_pattern, backend=backend, mode=mode, workers=workers,
                      scheduler=scheduler, max_attempts=max_attempts, speculate=speculate,
                      speculate_after=speculate_after, speculate_factor=speculate_factor, job_timeout=job_timeout,
                      queue_timeout=queue_timeout, slow_after=slow_after, keep_bundles=keep_bundles, keep_results=keep_results, bundles=bundles, queue=queue,
                      account=account, walltime=walltime, memory=memory, job_extra=job_extra, hosts=hosts,
                      ssh_port=ssh_port, ssh_user=ssh_user, ssh_key=ssh_key, ce=ce, env=env)
    if resample_mask:
        from medfeat.settings import Settings

        try:
            settings = Settings.resolve(settings).replace(resample_mask=True)
        except InputError as exc:
            _fail(str(exc))
    _run_production(output, dataset, settings, families, cfg, quiet)


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="Run folder of an interrupted or partly failed run."),
    backend: Optional[str] = _BACKEND, mode: Optional[str] = _MODE, workers: Optional[str] = _WORKERS,
    scheduler: Optional[str] = _SCHEDULER, config: Optional[Path] = _CONFIG,
    queue: Optional[str] = _QUEUE, account: Optional[str] = _ACCOUNT, walltime: Optional[str] = _WALLTIME,
    memory: Optional[str] = _MEMORY, job_extra: Optional[List[str]] = _JOB_EXTRA,
    hosts: Optional[str] = _HOSTS, ssh_port: Optional[int] = _SSH_PORT, ssh_user: Optional[str] = _SSH_USER,
    ssh_key: Optional[str] = _SSH_KEY, ce: Optional[str] = _CE, env: Optional[str] = _ENV,
    max_attempts: Optional[int] = _MAX_ATTEMPTS, quiet: bool = _QUIET,
    speculate: Optional[bool] = _SPECULATE, speculate_after: Optional[float] = _SPEC_AFTER,
    speculate_factor: Optional[float] = _SPEC_FACTOR, job_timeout: Optional[float] = _TIMEOUT,
    queue_timeout: Optional[float] = _QUEUE_TIMEOUT, slow_after: Optional[int] = _SLOW_AFTER,
    keep_bundles: Optional[bool] = _KEEP_BUNDLES, keep_results: Optional[bool] = _KEEP_RESULTS,
    bundles: Optional[str] = _BUNDLES,
) -> None:
    """Run only the jobs of RUN_DIR without a committed result (on any backend)."""
    from medfeat.production.ledger import LEDGER_NAME

    if not (run_dir / LEDGER_NAME).exists():
        _fail(f"{run_dir}: no run to resume here (no {LEDGER_NAME})")
    cfg = _run_config(config, backend=backend, mode=mode, workers=workers, scheduler=scheduler,
                      max_attempts=max_attempts, speculate=speculate, speculate_after=speculate_after,
                      speculate_factor=speculate_factor, job_timeout=job_timeout, queue_timeout=queue_timeout,
                      slow_after=slow_after, keep_bundles=keep_bundles, keep_results=keep_results, bundles=bundles, queue=queue, account=account,
                      walltime=walltime, memory=memory, job_extra=job_extra, hosts=hosts, ssh_port=ssh_port,
                      ssh_user=ssh_user, ssh_key=ssh_key, ce=ce, env=env)
    _run_production(run_dir, None, None, None, cfg, quiet)


@app.command("job-run")
def job_run(spec_url: str = typer.Argument(..., help="URL or path of a job spec JSON (written by the client).")) -> None:
    """Run one production job standalone: pull its bundle, verify, extract, push the result and the
    attempt's report to the stage. Exit 0 on success, 1 when the job failed, 2 on an unreadable spec."""
    from medfeat.production.job import run_spec_url

    raise typer.Exit(run_spec_url(spec_url))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    attempts: bool = typer.Option(False, "--attempts", help="Also list every attempt: job, role, outcome, host, "
                                                            "batch job id, queue wait, running time."),
    html: bool = typer.Option(False, "--html", help="Write the report as one self-contained HTML page (run table, "
                                                    "Gantt chart of the attempts, job times, throughput, workers, "
                                                    "failed images; no network needed) to RUN/report.html."),
    html_out: Optional[Path] = typer.Option(None, "--output", "-o", help="Where --html writes the page (implies "
                                                                         "--html; default RUN/report.html)."),
) -> None:
    """Print the run table (submission, running and waiting times, queue wait, staging, jobs, images,
    efficiency), the backend of each session and where the attempts ran. `--html [-o OUT.html]`
    writes it all, with figures, as one HTML page instead."""
    from medfeat.production.ledger import LEDGER_NAME

    if not (run_dir / LEDGER_NAME).exists():
        _fail(f"{run_dir}: not a run folder (no {LEDGER_NAME})")
    import sqlite3

    try:
        _report(run_dir, as_json, html, html_out, attempts)
    except InputError as exc:
        _fail(str(exc))
    except sqlite3.Error as exc:  # a ledger damaged past its header
        _fail(f"{run_dir / LEDGER_NAME}: cannot use the run's ledger: {exc}")


def _report(run_dir: Path, as_json: bool, html: bool, html_out: Optional[Path], attempts: bool) -> None:
    import json

    from medfeat.report.metrics import attempt_rows, host_rows, run_metrics, run_table, session_rows

    if html or html_out is not None:
        from medfeat.report.html import write_html_report

        try:
            page = write_html_report(run_dir, html_out)
        except OSError as exc:
            _fail(f"{html_out or run_dir / 'report.html'}: cannot write the report: {exc.strerror or exc}")
        typer.echo(f"report: {page}", err=as_json)
        if not as_json:
            return
    m = run_metrics(run_dir)
    if as_json:
        typer.echo(json.dumps(m, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(run_table(m, title=f"medfeat run {run_dir}"))
    t = Table("session", "backend", "options", "workers", "waiting", title="sessions")
    for r in session_rows(run_dir):
        t.add_row(str(r["session"]), r["backend"] or "-", r["options"], str(r["workers"] or 0), f"{r['waiting_s']:.1f} s")
    console.print(t)
    t = Table("host", "attempts", "committed", "lost / failed", "queue wait (mean)", "running (sum)",
              title="where the attempts ran")
    for r in host_rows(run_dir):
        t.add_row(r["host"], str(r["attempts"]), str(r["committed"]), str(r["lost_or_failed"]),
                  f"{r['queue_wait_s']:.2f} s", f"{r['running_s']:.1f} s")
    console.print(t)
    if attempts:
        t = Table("job", "attempt", "role", "outcome", "host", "worker", "batch id", "queue wait", "running",
                  title="attempts")
        for r in attempt_rows(run_dir):
            t.add_row(*(str(r[k]) if r[k] is not None else "-" for k in ("job_id", "attempt_id", "role", "outcome",
                                                                         "host", "worker", "batch_id")),
                      *(f"{r[k]:.2f} s" if r[k] is not None else "-" for k in ("queue_wait_s", "running_s")))
        console.print(t)


@app.command()
def study(
    dataset: str = typer.Argument(..., help="Dataset, as for `medfeat run`."),
    output: Path = typer.Option(..., "--output", "-o", help="Study folder: one run folder per point under runs/, "
                                                           "study.parquet and study.html."),
    workers: str = typer.Option("1,2", "--workers", "-w", help="Worker counts, comma-separated (e.g. 1,2,4)."),
    images_per_job: str = typer.Option("250", "--images-per-job", help="Images per job, comma-separated (e.g. 50,250)."),
    repeat: int = typer.Option(1, "--repeat", help="Runs per point (the spread over repeats is shown)."),
    settings: Optional[str] = typer.Option(None, "--settings", "-s", help="Preset or settings file (default: auto)."),
    families: Optional[str] = typer.Option(None, "--families", "-f", help="Comma-separated families."),
    backend: str = typer.Option("local", "--backend", help="Backend of every run (see `medfeat run --help`)."),
    mode: str = typer.Option("workers", "--mode", help="workers or jobs."),
    queue: Optional[str] = _QUEUE, hosts: Optional[str] = _HOSTS,
    quiet: bool = _QUIET,
) -> None:
    """Run DATASET as a production at every point of a grid (workers x images per job x repeats), each
    in its own run folder; a point already complete is not run again, an interrupted one is resumed.
    Writes OUTPUT/study.parquet (one row per run: the point, every `medfeat report --json` key,
    speedup and efficiency against the fewest workers) and OUTPUT/study.html."""
    from medfeat.production.study import StudyPlan, parse_counts, run_study, study_points
    from medfeat.report.studies import study_rows, study_summary, write_study_html, write_study_table

    try:
        plan = StudyPlan(dataset, parse_counts(workers, "--workers"), parse_counts(images_per_job, "--images-per-job"),
                         repeat, settings, list(_families(families) or []) or None, backend, mode,
                         {k: v for k, v in {"queue": queue, "hosts": [h for h in (hosts or "").split(",") if h]
                                             or None}.items() if v})

        def told(point, state, seconds):
            if not quiet:
                typer.echo(f"{point.name}: " + ("already complete" if state == "done" else f"{state} in {seconds:.1f} s"))

        run_study(output, plan, on_point=told)
    except (InputError, OSError) as exc:
        _fail(str(exc) + " (finished points are kept: run the same command again to go on)")
    except KeyboardInterrupt:
        _fail("interrupted; finished points are kept: run the same command again to go on", code=130)
    rows = study_rows(study_points(output))
    summary = study_summary(rows)
    write_study_table(rows, output / "study.parquet")
    write_study_html(rows, summary, output / "study.html", f"medfeat study {output}")
    from rich.console import Console
    from rich.table import Table

    t = Table("run", "workers", "images/job", "waiting", "speedup", "efficiency", title=f"study {output}")
    for r in rows:
        t.add_row(r["run"], str(r["workers_requested"]), str(r["images_per_job"]), f"{r['user_waiting_time_s']:.1f} s",
                  f"{r['speedup']:.2f}", f"{r['efficiency']:.2f}")
    Console().print(t)
    for s_ in summary:
        if s_["amdahl"]:
            typer.echo(f"{s_['images_per_job']} images/job: Amdahl serial fraction {s_['amdahl']['serial_fraction']:.3f}")
    typer.echo(f"study: {output / 'study.parquet'}  {output / 'study.html'}")


@app.command()
def compare(
    runs: List[Path] = typer.Argument(..., help="Run folders."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Also write the table as a self-contained HTML page."),
    as_json: bool = typer.Option(False, "--json", help="Print every run's metrics as JSON."),
) -> None:
    """The seed's table for any set of runs: one column per run, rows average submission time per
    job, summed running time, user real waiting time."""
    import json

    from medfeat.production.ledger import LEDGER_NAME
    from medfeat.report.metrics import format_value
    from medfeat.report.studies import SEED_ROWS, compare_rows, write_compare_html

    for d in runs:
        if not (d / LEDGER_NAME).exists():
            _fail(f"{d}: not a run folder (no {LEDGER_NAME})")
    rows = compare_rows(runs)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table("", *[r["run"] for r in rows], title="medfeat compare")
        for key, label in SEED_ROWS:
            t.add_row(label, *[format_value(key, r[key]) for r in rows])
        Console().print(t)
    if html_out is not None:
        write_compare_html(rows, html_out)
        if not as_json:
            typer.echo(f"html: {html_out}")


@app.command()
def simulate(
    run_dir: Path = typer.Argument(..., help="Run folder whose ledger gives the measured job times, queue waits "
                                             "and overheads."),
    workers: str = typer.Option("10,100,1000", "--workers", "-w", help="Worker counts to simulate, N[,N...]."),
    slow_share: float = typer.Option(0.0, "--slow-share", help="Share of the workers that are slow "
                                                                "(round(share x N) of them; e.g. 0.05)."),
    slow_factor: float = typer.Option(10.0, "--slow-factor", help="How many times slower a slow worker runs."),
    fail_rate: float = typer.Option(0.0, "--fail-rate", help="Probability that an attempt fails (at a uniform "
                                                              "point of its run; it is retried)."),
    queue_wait: str = typer.Option("measured", "--queue-wait", help="Queue wait per attempt: measured (the run's "
                                                                    "own), 0, const:SECONDS or exp:MEAN_SECONDS."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Jobs of the simulated production (default: the run's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulation (same seed, same result)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per worker count, one per line."),
) -> None:
    """Predict RUN_DIR's waiting time and parallel efficiency on other worker counts, with slow workers,
    failures or other queue waits, with and without the tail policy (a discrete-event simulation that
    draws from the run's measured distributions; see medfeat.report.simulation for the model)."""
    from medfeat.report.simulation import check_options, json_lines, measure, parse_workers, predict

    try:
        counts = parse_workers(workers)
        check_options(slow_share, slow_factor, fail_rate, jobs)
        measured = measure(run_dir)
        rows = predict(measured, counts, jobs=jobs, slow_share=slow_share, slow_factor=slow_factor,
                       fail_rate=fail_rate, queue_wait=queue_wait, seed=seed)
    except InputError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json_lines(rows))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("workers", "wait s", "eff.", "wait s\nno TP", "eff.\nno TP", "job p95\ns", "job max\ns",
              "backups\n(won)", "slow\navoided", title=f"medfeat simulate {run_dir}: {rows[0]['jobs']} jobs "
                                                     f"(measured: {measured.workers} workers, "
                                                     f"{measured.user_waiting_time_s:.1f} s waiting)",
              caption="TP: the tail policy (backups, timeouts); eff.: parallel efficiency")
    for r in rows:
        t.add_row(str(r["workers"]), f"{r['user_waiting_time_s']:.1f}", f"{r['parallel_efficiency']:.3f}",
                  f"{r['user_waiting_time_s_no_tail_policy']:.1f}", f"{r['parallel_efficiency_no_tail_policy']:.3f}",
                  f"{r['job_time_p95_s']:.2f}", f"{r['job_time_max_s']:.2f}",
                  f"{r['backups_launched']} ({r['backups_won']})", f"{r['slow_workers_avoided']}/{r['slow_workers']}")
    Console().print(t)
    r = rows[0]
    typer.echo(f"fixed costs (as measured): planning {r['planning_s']:.2f} s, start-up {r['startup_s']:.2f} s, "
               f"assembly {r['assembly_s']:.2f} s")


@app.command("make-dataset")
def make_dataset_cmd(
    out: Path = typer.Argument(..., help="Folder to write the dataset into."),
    jobs: int = typer.Option(8, "--jobs", help="Number of job folders."),
    images_per_job: int = typer.Option(25, "--images-per-job", help="Images per job folder."),
    size: int = typer.Option(256, "--size", help="Image width and height (RGB PPM)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the deterministic variations."),
) -> None:
    """Write JOBS x IMAGES_PER_JOB distinct RGB PPM images derived from real medical images that ship
    inside Python packages (pydicom, pydicom-data), with a manifest per job. No downloads."""
    from medfeat.dataset import make_dataset

    try:
        info = make_dataset(out, jobs=jobs, images_per_job=images_per_job, size=size, seed=seed)
    except InputError as exc:
        _fail(str(exc))
    typer.echo(f"{info.n_images} images in {jobs} job folders under {out} ({info.elapsed_s:.1f} s, "
               f"{info.images_per_s:.0f} images/s); colour share {info.colour_fraction:.0%}; "
               f"{len(info.sources)} source images")


@app.command()
def demo(
    output: Path = typer.Option(Path("demo-out"), "--output", "-o", help="Folder for the demo's dataset and run."),
    jobs: int = typer.Option(8, "--jobs", help="Jobs of the demo production."),
    images_per_job: int = typer.Option(25, "--images-per-job", help="Images per job (256x256 RGB PPM)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes (default: one per core)."),
) -> None:
    """Make a small dataset from real medical images, run it as a production on the embedded Dask
    cluster, and print the run table and a few features."""
    import shutil

    import pyarrow.parquet as pq
    from rich.console import Console
    from rich.table import Table

    from medfeat.dataset import make_dataset

    console = Console()
    data = output / "dataset"
    if not (data / "dataset.json").exists():
        make_dataset(data, jobs=jobs, images_per_job=images_per_job, size=256)
    run_dir = output / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    _run_production(run_dir, str(data), "default-2d", None,
                    _run_config(None, images_per_job=images_per_job, workers=workers), quiet=False)
    rows = pq.read_table(run_dir / "features.parquet").to_pylist()
    shown = ["stat_mean", "ih_entropy", "cm_contrast_2d_avg", "rlm_sre_2d_avg"]
    t = Table("image", *shown, title=f"first rows of {run_dir / 'features.parquet'} ({len(rows)} rows)")
    for r in rows[:5]:
        t.add_row(Path(r["image"]).name, *(f"{r[c]:.4g}" if r[c] is not None else "-" for c in shown))
    console.print(t)
    if (run_dir / "report.html").exists():
        typer.echo(f"report (open it in a browser): {run_dir / 'report.html'}")


@app.command("settings")
def settings_cmd(
    source: Optional[str] = typer.Argument(None, help="Preset name or settings file (TOML, YAML, JSON) to print as "
                                                      "a complete TOML settings file."),
    from_pyradiomics: Optional[Path] = typer.Option(None, "--from-pyradiomics",
                                                    help="Convert a PyRadiomics parameter file (YAML or JSON)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the TOML here (default: stdout)."),
) -> None:
    """Print or convert settings: a preset or file as complete TOML, or a PyRadiomics parameter file
    as medfeat settings, with one note (on stderr and as comments) per setting that has no exact
    equivalent."""
    from medfeat.settings import Settings
    from medfeat.pyradiomics import settings_from_pyradiomics, settings_to_toml

    if (source is None) == (from_pyradiomics is None):
        _fail("give a preset or settings file, or --from-pyradiomics PARAMS.yaml (one of them)")
    try:
        if from_pyradiomics is not None:
            s, notes = settings_from_pyradiomics(from_pyradiomics)
        else:
            s, notes = Settings.resolve(source), []
    except InputError as exc:
        _fail(str(exc))
    text = settings_to_toml(s, notes)
    for note in notes:
        typer.echo(f"medfeat: note: {note}", err=True)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


@app.command("pack-env")
def pack_env_cmd(
    out: Path = typer.Argument(..., help="Archive to write, e.g. medfeat-env.tar."),
    source: Optional[Path] = typer.Option(None, "--source", help="medfeat source tree to build medfeat from "
                                                                "(default: the one this medfeat runs from)."),
    wheels: str = typer.Option("auto", "--wheels", help="pip: pip wheel each dependency at its installed version "
                                                        "(needs the package index); installed: repack the installed "
                                                        "ones (offline); auto: pip, else installed."),
) -> None:
    """Pack medfeat and its dependencies into one archive for batch nodes without medfeat:
    `medfeat run --mode jobs --env OUT` sets it up once per node (a venv from the node's python3)."""
    from medfeat.production.environment import PackError, pack_env

    try:
        info = pack_env(out, source=source, wheels=wheels)
    except (PackError, OSError) as exc:
        _fail(f"{out}: cannot pack the worker environment: {exc}")
    for note in info["notes"]:
        typer.echo(f"medfeat: note: {note}", err=True)
    typer.echo(f"{info['path']}: {info['size'] / 1e6:.0f} MB, {len(info['wheels'])} wheels (from {info['wheels_from']}), "
               f"sha256 {info['key']}..., built in {info['build_s']:.1f} s")
    typer.echo(f"the node needs: {info['needs']}")
    typer.echo(f"use it: medfeat run DATASET -o RUN --mode jobs --backend slurm --env {info['path']}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
