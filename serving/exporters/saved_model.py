"""The SavedModel format, in TF Serving's layout: out_dir/<version>/ with saved_model.pb,
variables/ and assets.extra/ (warmup requests, labels.txt, export_info.json, and the calibration
sample TFLite uses). Built in a hidden sibling and renamed into place, so a polling server never
sees half a version; an export that finds its version taken meanwhile by another (two runs
exporting at once) takes the next free one. Options: `version` (default: the next free one),
`signatures` (default: all of the task's, see zoo/tasks.py; serving_default always).
"""

import json
import os
import pathlib
import shutil

from serving.exporters import ExportError, export_format, read_run


@export_format("saved_model")
def export(run_dir, out_dir, *, version=None, signatures=None, say=print) -> pathlib.Path:
    """Write the run's model as the next version under out_dir; returns the version directory."""
    run_dir, base = pathlib.Path(run_dir), pathlib.Path(out_dir)
    chosen = version is not None
    version = int(version) if chosen else next_version(base)
    if version <= 0:
        raise ExportError(f"version must be a positive integer, not {version}")
    final = base / str(version)
    if final.exists():
        raise ExportError(f"{final} exists already; pick another --version")
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(run_dir, tmp, base.name, signatures)
        while True:
            try:
                os.rename(tmp, final)  # fails if another export took the version meanwhile
                break
            except OSError:
                if chosen or not final.exists():
                    raise ExportError(f"{final} was written by another export meanwhile") from None
                final = base / str(next_version(base))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def write(run_dir, directory, name, signatures=None):
    """The SavedModel of a run, written at `directory` (which must not exist)."""
    import keras

    import zoo  # noqa: F401  (registers the zoo's custom layers for loading)
    from serving import signatures as builders
    from serving import warmup

    run_dir, directory = pathlib.Path(run_dir), pathlib.Path(directory)
    _, info = read_run(run_dir)
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    archive = keras.export.ExportArchive()
    archive.track(model)
    try:
        example = builders.add_signatures(info["task"], archive, model, info, signatures)
    except ValueError as e:  # a signature the task does not have
        raise ExportError(str(e)) from None
    archive.write_out(str(directory), verbose=False)
    extra = directory / "assets.extra"
    extra.mkdir(exist_ok=True)
    if info.get("class_names"):
        (extra / "labels.txt").write_text("\n".join(map(str, info["class_names"])) + "\n")
    meta = {**info, "model": name, "run_dir": str(run_dir.resolve())}
    (extra / "export_info.json").write_text(json.dumps(meta, indent=2) + "\n")
    if (run_dir / "calibration.npz").is_file():
        shutil.copy(run_dir / "calibration.npz", extra / "calibration.npz")
    warmup.write_warmup_requests(directory, name, "serving_default", example)
    return directory


def next_version(base: pathlib.Path) -> int:
    versions = [int(p.name) for p in base.glob("*") if p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def versions_of_run(base, run_dir) -> list[pathlib.Path]:
    """The version directories under `base` exported from `run_dir`, oldest first."""
    run_dir = str(pathlib.Path(run_dir).resolve())
    found = []
    for version in sorted((p for p in pathlib.Path(base).glob("*") if p.name.isdigit()), key=_num):
        meta = version / "assets.extra" / "export_info.json"
        if meta.is_file() and json.loads(meta.read_text()).get("run_dir") == run_dir:
            found.append(version)
    return found


def _num(path):
    return int(path.name)
