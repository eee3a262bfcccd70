"""`python -m serving export <run-dir> [--version N] [--export-dir exports]`

Writes the run's model as a SavedModel in TF Serving's layout, exports/<model>/<version>/
(saved_model.pb, variables/, assets.extra/ with warmup requests, labels and the calibration
sample for TFLite), built in a hidden sibling and renamed into place, so a polling server never
sees half a version. Reads only the run directory: model.keras, recipe.json, export_info.json,
calibration.npz.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys


class ExportError(Exception):
    """A one-line reason the export cannot be made."""


def export_run(run_dir, export_root="exports", version=None) -> pathlib.Path:
    import keras

    import zoo  # noqa: F401  (registers the zoo's custom layers for loading)
    from serving import signatures, warmup

    run_dir = pathlib.Path(run_dir)
    for needed in ("model.keras", "recipe.json", "export_info.json"):
        if not (run_dir / needed).is_file():
            raise ExportError(f"{run_dir} is not a finished training run: it has no {needed}")
    recipe = json.loads((run_dir / "recipe.json").read_text())
    info = json.loads((run_dir / "export_info.json").read_text())
    name = recipe["export"].get("name") or recipe["model"]["name"]
    base = pathlib.Path(export_root) / name
    version = int(version) if version is not None else next_version(base)
    if version <= 0:
        raise ExportError(f"version must be a positive integer, not {version}")
    final = base / str(version)
    if final.exists():
        raise ExportError(f"{final} exists already; pick another --version")

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    archive = keras.export.ExportArchive()
    archive.track(model)
    example = signatures.add_signatures(info["task"], archive, model, info)

    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        if info.get("class_names"):
            (extra / "labels.txt").write_text("\n".join(map(str, info["class_names"])) + "\n")
        (extra / "export_info.json").write_text(
            json.dumps({**info, "model": name}, indent=2) + "\n"
        )
        if (run_dir / "calibration.npz").is_file():
            shutil.copy(run_dir / "calibration.npz", extra / "calibration.npz")
        warmup.write_warmup_requests(tmp, name, "serving_default", example)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def next_version(base: pathlib.Path) -> int:
    versions = [int(p.name) for p in base.glob("*") if p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving export", description=__doc__.splitlines()[2]
    )
    parser.add_argument("run_dir")
    parser.add_argument("--version", type=int)
    parser.add_argument("--export-dir", default="exports")
    args = parser.parse_args(argv)
    try:
        path = export_run(args.run_dir, args.export_dir, args.version)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
