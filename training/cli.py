"""The training command line: `train <recipe>`, `list`, and the tools in TOOLS (`launch`, ...).

`train` runs the loop, then hands the finished run directory to `python -m serving export` in a
fresh process (the recipe's `export.formats`; `--no-export` skips it) and prints one JSON line:
run_dir, steps, seconds, validation metrics and the export.

Exit codes: 0 done, 1 the run failed (e.g. NaN loss), 2 bad request (unknown model, recipe,
data set or strategy; malformed --set; missing data) with nothing written, 143 stopped by SIGTERM
after saving a checkpoint.
"""

import argparse
import importlib
import json
import os
import pathlib
import subprocess
import sys

# Tools on a recipe, a run or an export: `python -m training <tool> ...` runs the module's
# main(argv) with the arguments after the tool's name. A new tool is one module and one line here.
TOOLS = {
    "launch": ("training.launch", "train on N local worker processes, or emit a k8s TFJob"),
    "explain": ("training.explain", "heatmap of where a run or export looks in an image"),
    "attack": ("training.attack", "accuracy of a run or export under FGSM/PGD/noise vs eps"),
    "federate": ("training.federated", "federated learning of a recipe on Flower (FedAvg/FedProx)"),
    "search": ("training.search", "hyperparameter/architecture search of a recipe on KerasTuner"),
    "crossval": ("training.crossval", "leave-one-group-out (leave one speaker out) evaluation"),
    "play": ("training.rl.play", "play a trained policy (run or export): mean episode return"),
}


def _parser():
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="models, recipes, data sets, strategies")
    for name, (_, help_) in TOOLS.items():
        commands.add_parser(name, help=help_, add_help=False)
    t = commands.add_parser("train", help="train a recipe")
    t.add_argument("recipe", help="a recipe's name, or a recipe file (e.g. a run's recipe.json)")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. optimizer.lr=3e-4",
    )
    t.add_argument("--strategy", help="auto | one_device | mirrored | multi_worker")
    t.add_argument("--dataset", help="a tfds name or folder:PATH (PATH/<split>/<label>/<image>)")
    t.add_argument("--epochs", type=int)
    t.add_argument(
        "--mixed-precision",
        choices=["auto", "float16", "bfloat16", "float32"],
        help="auto: bfloat16 on A100/H100-class GPUs, float16 on older GPUs, float32 on CPU",
    )
    t.add_argument("--jit", action="store_true", default=None, help="compile the steps with XLA")
    t.add_argument(
        "--tiny", action="store_true", default=None, help="the model's tiny configuration"
    )
    t.add_argument("--logdir", default="runs")
    t.add_argument("--export-dir", default="exports")
    t.add_argument("--no-export", action="store_true", help="skip the SavedModel/TFLite export")
    t.add_argument("--resume", action="store_true", help="continue the newest run of this recipe")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TOOLS:  # each tool parses its own arguments
        return importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:])
    args = _parser().parse_args(argv)
    import console

    console.import_tensorflow()  # after argparse: --help stays fast

    import zoo
    from training import data, distribute, loop, recipes, rl

    if args.command == "list":
        return _list(zoo, recipes, distribute)
    try:
        sets = list(args.set)
        for flag, key in [
            ("strategy", "run.strategy"),
            ("dataset", "data.dataset"),
            ("epochs", "train.epochs"),
            ("mixed_precision", "run.mixed_precision"),
            ("jit", "run.jit"),
            ("tiny", "run.tiny"),
        ]:
            value = getattr(args, flag)
            if value is not None:
                sets.append(f"{key}={json.dumps(value)}")
        resume_dir = None
        if args.resume:
            saved = recipes.from_file(args.recipe)
            name = saved["name"] if saved else args.recipe
            resume_dir = loop.find_resumable(args.logdir, name)
            if resume_dir is None:
                raise recipes.RecipeError(
                    f"--resume: no run of {name!r} with a checkpoint under {args.logdir}/"
                )
            saved = json.loads((resume_dir / "recipe.json").read_text())
            recipe = recipes.resolve(args.recipe, sets, base=saved)
        else:
            recipe = recipes.resolve(args.recipe, sets)
        if rl.trains(recipe):  # reinforcement learning: the environment is the data
            from training.rl import driver

            result = driver.train(recipe, logdir=args.logdir, resume_dir=resume_dir)
        else:
            result = loop.train(recipe, logdir=args.logdir, resume_dir=resume_dir)
    except (recipes.RecipeError, data.DataError, zoo.UnknownModelError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except loop.Interrupted as e:
        print(f"\nstopped: {e}", file=sys.stderr)
        return 143
    except loop.TrainingError as e:
        print(f"\nfailed: {e}", file=sys.stderr)
        return 1
    exported = None
    if result.chief and not args.no_export and recipe["export"]["formats"]:
        code, exported = export(result.run_dir, args.export_dir)
        if code:
            print(
                f"\nfailed: the export of {result.run_dir} (exit {code}); the run is complete: "
                f"python -m serving export {result.run_dir} retries it",
                file=sys.stderr,
            )
            return code
    print(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "steps": result.steps,
                "seconds": round(result.seconds, 1),
                "validation": result.metrics,
                "export": exported,
            }
        )
    )
    return 0


def export(run_dir, export_dir) -> tuple[int, str | None]:
    """Hand a finished run to `python -m serving export` in a fresh process (training and serving
    import nothing of each other); (exit code, the SavedModel version directory or None)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "serving",
        "export",
        str(run_dir),
        "--export-dir",
        str(export_dir),
    ]
    sys.stdout.flush()
    code = subprocess.run(command, env=env).returncode
    record = pathlib.Path(run_dir, "exports.json")
    if code or not record.is_file():
        return code or 1, None
    written = json.loads(record.read_text())
    written.pop("name", None)
    return 0, written.get("saved_model") or next(iter(written.values()), None)


def _list(zoo, recipes, distribute) -> int:
    print("models:")
    for name in zoo.list_models():
        spec = zoo.get_spec(name)
        print(f"  {name:<20} {spec.task:<22} {spec.summary}")
    print("recipes:")
    width = max(map(len, recipes.list_recipes()))
    for name in recipes.list_recipes():
        r = recipes.RECIPES[name]
        print(
            f"  {name:<{width}} {r['model']['name']} on {r['data']['dataset']}: {r['description']}"
        )
    datasets = sorted({r["data"]["dataset"] for r in recipes.RECIPES.values()})
    print("data sets used by recipes (any tfds name works, or folder:PATH):")
    print("  " + ", ".join(datasets))
    print("strategies: " + ", ".join(distribute.STRATEGIES))
    return 0
