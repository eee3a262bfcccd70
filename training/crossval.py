"""`python -m training crossval`: leave-one-group-out evaluation of a recipe (leave one speaker
out, for spoken digits): for each group, train on the others and test on it.

    python -m training crossval <recipe> [--groups a,b,...] [--set KEY=VALUE ...] [--logdir runs]

The recipe's `data.hold_out` says how an example's group is found: `pattern`'s first group over
the string feature `key` (the spoken-digit recipes: the speaker in FSDD's file names,
`<digit>_<speaker>_<n>.wav`). Each fold is a normal run (`runs/<recipe>/<time>/`, recipe.json
with `data.hold_out.group` set, TensorBoard events, metrics.json): all of the data set's splits
are pooled, the group's examples are the validation split and the rest the training split.
`runs/<recipe>-crossval/<time>/crossval.json` keeps every fold's validation metrics, their
mean and their minimum, and the table is printed at the end. Exit 2 for a bad request (unknown
recipe or group, no `data.hold_out` in the recipe).
"""

import json
import sys

from training import tooling
from training.tooling import BadRequest


def _parser():
    parser = tooling.ArgumentParser(
        prog="python -m training crossval",
        description="leave-one-group-out evaluation (leave one speaker out) of a recipe",
    )
    parser.add_argument("recipe", help="a recipe name or a recipe .json file")
    parser.add_argument("--groups", default=None, help="groups to hold out in turn (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--logdir", default="runs")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
    except BadRequest as e:
        print(f"crossval: error: {e}", file=sys.stderr)
        return 2
    import console

    console.import_tensorflow()
    import zoo
    from training import data, loop, recipes

    try:
        recipe = recipes.resolve(args.recipe, args.set)
        held = recipe["data"].get("hold_out")
        if not held or not held.get("key") or not held.get("pattern"):
            raise BadRequest(
                f"recipe {recipe['name']!r} has no data.hold_out key and pattern: nothing says "
                "which group an example belongs to"
            )
        dcfg = recipe["data"]
        source = data.open_source(dcfg["dataset"], dcfg.get("fallback"))
        known = sorted(set(data.groups_of(source, held["key"], held["pattern"]).values()))
        groups = known if not args.groups else [g.strip() for g in args.groups.split(",")]
        unknown = [g for g in groups if g not in known]
        if unknown or not groups:
            raise BadRequest(f"unknown groups {unknown} (known: {', '.join(known) or 'none'})")
    except (BadRequest, recipes.RecipeError, data.DataError, zoo.UnknownModelError) as e:
        print(f"crossval: error: {e}", file=sys.stderr)
        return 2

    folds = []
    for i, group in enumerate(groups, 1):
        print(f"fold {i}/{len(groups)}: {group} held out", flush=True)
        fold = recipes.resolve(args.recipe, [*args.set, f"data.hold_out.group={json.dumps(group)}"])
        result = loop.train(fold, logdir=args.logdir, verbose=not args.quiet)
        folds.append(
            {
                "group": group,
                "run_dir": str(result.run_dir),
                "seconds": round(result.seconds, 1),
                "metrics": result.metrics,
            }
        )
        print(f"fold {group}: {_line(result.metrics)}", flush=True)
    names = sorted({k for f in folds for k, v in f["metrics"].items() if _number(v)})
    summary = {
        "recipe": recipe["name"],
        "key": held["key"],
        "pattern": held["pattern"],
        "folds": folds,
        "mean": {k: sum(f["metrics"][k] for f in folds) / len(folds) for k in names},
        "min": {k: min(f["metrics"][k] for f in folds) for k in names},
    }
    out = tooling.new_run_dir(args.logdir, f"{recipe['name']}-crossval")
    (out / "crossval.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(_table(summary))
    print(f"wrote {out / 'crossval.json'}")
    return 0


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _line(metrics):
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if _number(v))


def _table(summary):
    rows = [f"{'held out':<12} {'accuracy':>9} {'loss':>8}"]
    for f in summary["folds"]:
        m = f["metrics"]
        rows.append(
            f"{f['group']:<12} {m.get('accuracy', float('nan')):>9.4f} "
            f"{m.get('loss', float('nan')):>8.4f}"
        )
    mean = summary["mean"]
    rows.append(
        f"{'mean':<12} {mean.get('accuracy', float('nan')):>9.4f} "
        f"{mean.get('loss', float('nan')):>8.4f}"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
