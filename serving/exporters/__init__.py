"""Export formats: a finished training run in, what a server or a device loads out.

Each format is one module of this package that registers a function with `@export_format(name)`:

    export(run_dir, out_dir, *, say=print, **options) -> pathlib.Path   # what it wrote

- `run_dir`: a finished run (model.keras, recipe.json, export_info.json, calibration.npz);
- `out_dir`: the export's base directory, exports/<name>/, which is TF Serving's model base path:
  SavedModel versions go in out_dir/<version>/, other formats in out_dir/<format>/;
- `options`: the recipe's `export.<format>` section (e.g. `export.tflite.variants`);
- `say`: where progress lines go (long conversions say what they are doing).

A recipe lists its formats in `export.formats`, run in that order (tflite converts the SavedModel
that saved_model wrote just before it). The export is named after the recipe (`export.name`
overrides), so two recipes of one model (gpt-shakespeare-char and gpt-shakespeare-char-cpu) keep
apart. `python -m serving export RUN_DIR` runs a run's list; `python -m training train` runs it in
a fresh process once the loop has returned. What was written is recorded in RUN_DIR/exports.json.
"""

import argparse
import importlib
import json
import os
import pathlib
import pkgutil
import sys

import console

FORMATS = {}


class ExportError(Exception):
    """A one-line reason an export cannot be made."""


def export_format(name):
    def decorator(fn):
        if name in FORMATS:
            raise ValueError(f"export format {name!r} is registered twice")
        FORMATS[name] = fn
        return fn

    return decorator


def read_run(run_dir) -> tuple[dict, dict]:
    """(recipe, export_info) of a finished run; ExportError when it is not one."""
    run_dir = pathlib.Path(run_dir)
    for needed in ("model.keras", "recipe.json", "export_info.json"):
        if not (run_dir / needed).is_file():
            raise ExportError(f"{run_dir} is not a finished training run: it has no {needed}")
    recipe = json.loads((run_dir / "recipe.json").read_text())
    info = json.loads((run_dir / "export_info.json").read_text())
    return recipe, info


def export_name(recipe: dict) -> str:
    return recipe["export"].get("name") or recipe["name"]


def export_run(run_dir, export_root="exports", formats=None, overrides=None, say=print) -> dict:
    """Run `formats` (default: the recipe's `export.formats`) on a run, with the recipe's options
    updated by `overrides` ({format: {option: value}}); returns {format: path written}."""
    run_dir = pathlib.Path(run_dir)
    recipe, _ = read_run(run_dir)
    formats = list(recipe["export"]["formats"] if formats is None else formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(
            f"unknown export format {', '.join(map(repr, unknown))} (known: {', '.join(FORMATS)})"
        )
    out_dir = pathlib.Path(export_root) / export_name(recipe)
    written = {}
    for name in formats:
        options = {**(recipe["export"].get(name) or {}), **(overrides or {}).get(name, {})}
        path = FORMATS[name](run_dir, out_dir, **options, say=say)
        say(f"exported {name} -> {path}")
        written[name] = str(path)
    record = run_dir / "exports.json"
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(json.dumps({"name": export_name(recipe), **written}, indent=2) + "\n")
    os.replace(tmp, record)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving export",
        description="export a training run in the formats its recipe lists (or --formats)",
    )
    parser.add_argument("run_dir")
    parser.add_argument("--export-dir", default="exports")
    parser.add_argument("--formats", help=f"comma-separated, from: {', '.join(FORMATS)}")
    parser.add_argument("--version", type=int, help="the SavedModel version (default: next)")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f] if args.formats else None
    overrides = {"saved_model": {"version": args.version}} if args.version is not None else None
    try:
        with console.quiet():  # loading a model first touches the devices: CUDA notices
            export_run(args.run_dir, args.export_dir, formats, overrides, say=_say)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _say(*parts):
    print(*parts, flush=True)


# Every module of this package registers its format with @export_format.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
