"""`python -m training search`: hyperparameter and architecture search of a recipe on KerasTuner.

    python -m training search <recipe> --space NAME[,NAME...] [--trials 10]
        [--algorithm random|bayesian|hyperband] [--objective accuracy] [--direction max|min]
        [--max-steps N] [--factor 3] [--prefer-smaller TOL] [--set KEY=VALUE ...] [--seed 0]
        [--logdir runs] [--quiet]

KerasTuner proposes, the zoo trains. The oracles (`RandomSearchOracle`,
`BayesianOptimizationOracle`, `HyperbandOracle`) choose each trial's hyperparameters; a
`keras_tuner.Tuner` subclass overrides `run_trial` to apply them to the recipe (`--set`-style paths,
through recipes.apply_set, so a bad value fails as `--set` would) and train it with the zoo's own
loop, `loop.train(recipe, logdir=...)`, rather than `model.fit`: every trial is a normal run
directory (recipe.json with the trial's values, train/ and validation/ events, checkpoints,
model.keras, metrics.json, HParams) that `train`, `export`, `attack`... accept like any other.
The trial's objective is a validation metric of the run's last epoch (RunResult.metrics,
`--objective`, `accuracy` by default; maximized unless its name says loss or error, or
`--direction`); the model's parameter count is recorded with it (in KerasTuner's trial metrics,
the results JSON, and as a `params` scalar in the trial's run directory for the HParams table).

Search spaces are plain data declared next to the models: a zoo module's `SEARCH_SPACES`
(zoo/vision/cnn.py: `cnn`, `cnn-small`; zoo/vision/resnet.py: `resnet-widths`), plus the
optimizer's space here (`optimizer`: learning rate and weight decay, the same for every model, and
zoo/ knows nothing of optimizers). A space maps recipe paths to {"choice": [...]}, {"int": [lo, hi
(, step)]}, {"float": [lo, hi(, step)]} (with "log": True for log sampling) or {"tuple": [...]}
(a list with one such entry per item, e.g. filters per stage); `--space cnn,optimizer` searches
both. Only the spaces of the recipe's model (its module) and `optimizer` apply.

Budgets. Random and Bayesian trials each train the recipe's budget (`train.epochs`, capped by
`train.max_steps`; `--max-steps N` sets the cap). Hyperband's budget unit is the recipe's epoch:
`max_epochs` is `train.epochs` (E), and a trial that KerasTuner gives `tuner/epochs` = e trains
e epochs with `train.max_steps` scaled to round(max_steps * e / E) when the recipe caps steps (the
cnn recipe's 1,240 steps in 20 epochs: e = 2 is 124 steps). A configuration promoted to a longer
round trains again from scratch in a new run directory: KerasTuner's Hyperband would continue the
earlier trial's weights (`tuner/trial_id`), but a continued run's learning-rate schedule (one-cycle,
cosine) would not be the schedule of a run of that length, so the longer round would measure
something else than the recipe it hands on. Short budgets can rank noise: the cnn recipe's
batch normalization (moving statistics, momentum 0.99) leaves its validation accuracy at chance
(0.097) after 1 to 3 of its 20 epochs and at 0.33 after 4, although it trains (0.82 on its
training batches), and so did every trial of 124 steps measured here: for that recipe, short
rounds do not tell configurations apart. `--trials` caps Hyperband as well (0: one full Hyperband
iteration, 30 trials at E = 20 and factor 3, 266 epochs in all, 13.3 runs of E).

Layout: `<logdir>/<recipe>-search/<UTC time>/` holds `trial_<id>/<recipe>/<time>/` (each trial's
run directory, exactly what `train --logdir .../trial_<id>` writes), `tuner/` (KerasTuner's own
state: oracle.json, trial_*/trial.json), `search.json` (the request, the spaces, every trial:
hyperparameters, params, validation metrics, run directory, seconds, status; rewritten after each
trial), `best_recipe.json` and an HParams experiment config (events in the search directory) that
names the searched hyperparameters and the validation metrics and params: `tensorboard --logdir`
that search directory and the HParams tab compares the trials. (An experiment config applies to
the whole log directory TensorBoard reads: point it at the search, not at runs/, where the other
runs have no config and fill their own columns.)

The best trial: the highest (or lowest) objective among completed trials; `--prefer-smaller TOL`
takes instead the smallest model whose objective is within TOL of that best. `best_recipe.json` is
the recipe as given (with `--set`) plus the best trial's hyperparameters, at the recipe's own
budget (not the search's `--max-steps` or Hyperband round), named `<recipe>-searched`:
`python -m training train <search dir>/best_recipe.json` trains it in full. The last line printed
is a JSON summary.

Exit codes: 0 done (also when no trial completed: the table says so); 2 for a bad request (unknown
recipe, space or algorithm, a space path the recipe lacks, an override the model does not take,
missing data) with a one-line reason and nothing written; 143 stopped by SIGTERM (the running
trial's checkpoint saved; search.json holds the finished ones).
"""

import copy
import importlib.util
import json
import math
import pathlib
import shutil
import sys
import time

from training.tooling import ArgumentParser, BadRequest, new_run_dir

ALGORITHMS = ("random", "bayesian", "hyperband")

# The optimizer's space: the same for every model. Weight decay is a choice, 0 included, because
# a log range cannot hold 0 (Keras' decay is decoupled: training/recipe_book/vision.py).
OPTIMIZER_SPACES = {
    "optimizer": {
        "optimizer.lr": {"float": [3e-4, 1e-2], "log": True},
        "optimizer.weight_decay": {"choice": [0.0, 1e-4, 1e-3, 1e-2]},
    },
}


def _parser():
    p = ArgumentParser(
        prog="python -m training search",
        description="Hyperparameter and architecture search of a recipe on KerasTuner: each "
        "trial a normal run directory, the best trial's recipe written as a recipe file.",
    )
    p.add_argument("recipe", help="a recipe's name, or a recipe file (e.g. a run's recipe.json)")
    p.add_argument(
        "--space",
        required=True,
        help="search space name(s), comma-separated (e.g. cnn, cnn-lean, cnn-small, resnet-widths, "
        "optimizer)",
    )
    p.add_argument("--trials", type=int, default=10, help="number of trials (default 10)")
    p.add_argument("--algorithm", default="random", help="random (default), bayesian, hyperband")
    p.add_argument(
        "--objective",
        default="accuracy",
        help="the validation metric to optimize (default accuracy)",
    )
    p.add_argument("--direction", choices=["max", "min"], help="default: min for loss/error")
    p.add_argument(
        "--max-steps", type=int, help="each trial's train.max_steps (Hyperband: the max)"
    )
    p.add_argument("--factor", type=int, default=3, help="Hyperband's reduction factor (3)")
    p.add_argument(
        "--prefer-smaller",
        type=float,
        default=0.0,
        metavar="TOL",
        help="best = the fewest parameters within TOL of the best objective (default 0)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, as for train",
    )
    p.add_argument("--seed", type=int, default=0, help="the oracle's seed (train.seed: --set)")
    p.add_argument("--logdir", default="runs")
    p.add_argument("--quiet", action="store_true", help="one line per trial, not the loop's")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
        _check_args(args)
    except BadRequest as e:
        print(f"search: error: {e}", file=sys.stderr)
        return 2
    import console

    console.import_tensorflow()  # after argparse: --help stays fast
    import zoo
    from training import data, recipes

    try:
        recipe, space, hparams = _prepare(args)
    except (BadRequest, recipes.RecipeError, data.DataError, zoo.UnknownModelError) as e:
        print(f"search: error: {e}", file=sys.stderr)
        return 2
    return _search(args, recipe, space, hparams)


def _check_args(args):
    if args.algorithm not in ALGORITHMS:
        raise BadRequest(f"unknown --algorithm {args.algorithm!r} (known: {', '.join(ALGORITHMS)})")
    if args.trials < 0 or (args.trials == 0 and args.algorithm != "hyperband"):
        raise BadRequest(f"--trials {args.trials}: expected a positive number")
    if args.max_steps is not None and args.max_steps < 1:
        raise BadRequest(f"--max-steps {args.max_steps}: expected a positive number")
    if args.factor < 2:
        raise BadRequest(f"--factor {args.factor}: expected 2 or more")
    if args.prefer_smaller < 0:
        raise BadRequest(f"--prefer-smaller {args.prefer_smaller}: expected 0 or more")


# ---------------------------------------------------------------------------------------------
# Spaces: plain data -> keras_tuner.HyperParameters


def known_spaces(model_name: str) -> dict:
    """The spaces that apply to `model_name`: its zoo module's SEARCH_SPACES and the optimizer's."""
    import zoo

    module = sys.modules[zoo.get_spec(model_name).builder.__module__]
    return {**getattr(module, "SEARCH_SPACES", {}), **OPTIMIZER_SPACES}


def all_spaces() -> dict:
    """Every declared space by name, with the models it applies to (for error messages)."""
    import zoo

    owners = {name: ["any model"] for name in OPTIMIZER_SPACES}
    for model in zoo.list_models():
        module = sys.modules[zoo.get_spec(model).builder.__module__]
        for name in getattr(module, "SEARCH_SPACES", {}):
            owners.setdefault(name, []).append(model)
    return owners


def _prepare(args):
    """Everything a bad request can be wrong about, checked before anything is written:
    (the recipe with --set, the combined space, its keras_tuner HyperParameters)."""
    import zoo
    from training import data, recipes

    recipe = recipes.resolve(args.recipe, args.set)
    if args.algorithm == "bayesian" and importlib.util.find_spec("scipy") is None:
        raise BadRequest(
            "--algorithm bayesian needs scipy (KerasTuner's Gaussian process): "
            "pip install scipy, or keras-tuner[bayesian]"
        )
    spec = zoo.get_spec(recipe["model"]["name"])
    usable = known_spaces(spec.name)
    space = {}
    for name in filter(None, (n.strip() for n in args.space.split(","))):
        if name not in usable:
            owners = all_spaces()
            where = f" (a space of {', '.join(owners[name])})" if name in owners else ""
            raise BadRequest(
                f"unknown --space {name!r} for model {spec.name}{where}; known: "
                f"{', '.join(sorted(usable))}"
            )
        space.update(usable[name])
    if not space:
        raise BadRequest("--space: no space named")
    hparams = to_hyperparameters(space)
    # every path must take a value: apply the first value of each to a copy, as --set would
    trial = apply_values(recipe, space, _first_values(hparams))
    accepted = spec.arguments()
    unknown = [k for k in trial["model"]["overrides"] if k not in accepted]
    if unknown:
        raise BadRequest(
            f"model {spec.name} has no argument {', '.join(map(repr, unknown))}; it takes: "
            f"{', '.join(accepted)}"
        )
    dcfg = recipe["data"]
    data.open_source(dcfg["dataset"], dcfg.get("fallback"))  # missing data: exit 2 here
    return recipe, space, hparams


def _check_entry(path, entry):
    if not isinstance(entry, dict) or len({"choice", "int", "float", "tuple"} & set(entry)) != 1:
        raise BadRequest(f"space entry {path}: expected one of choice, int, float, tuple")


def _add(hps, name, entry):
    """Declare `entry` in `hps` under `name` (a tuple: one hyperparameter per item)."""
    _check_entry(name, entry)
    sampling = "log" if entry.get("log") else "linear"
    if "choice" in entry:
        values = list(entry["choice"])
        if not values:
            raise BadRequest(f"space entry {name}: an empty choice")
        if any(isinstance(v, (list, tuple, dict)) or v is None for v in values):
            values = [json.dumps(v) for v in values]  # KerasTuner choices are scalars
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            if any(isinstance(v, float) for v in values):
                values = [float(v) for v in values]
        hps.Choice(name, values)
    elif "int" in entry:
        lo, hi, *step = entry["int"]
        hps.Int(name, int(lo), int(hi), step=int(step[0]) if step else 1, sampling=sampling)
    elif "float" in entry:
        lo, hi, *step = entry["float"]
        hps.Float(name, float(lo), float(hi), step=step[0] if step else None, sampling=sampling)
    else:
        for i, item in enumerate(entry["tuple"]):
            _add(hps, f"{name}[{i}]", item)


def to_hyperparameters(space: dict):
    """A declarative space as keras_tuner.HyperParameters, one per path (per item of a tuple)."""
    import keras_tuner

    hps = keras_tuner.HyperParameters()
    for path, entry in space.items():
        try:
            _add(hps, path, entry)
        except (TypeError, ValueError) as e:
            raise BadRequest(f"space entry {path}: {e}") from None
    return hps


def _first_values(hps) -> dict:
    return {h.name: h.default if h.default is not None else h.values[0] for h in hps.space}


def _plain(value):
    """A KerasTuner value as JSON data (numpy scalars, floats from a stepped range)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return json.loads(value) if value[:1] in "[{n" else value
        except json.JSONDecodeError:
            return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def recipe_values(space: dict, values: dict) -> dict:
    """KerasTuner's values (`path[i]` per tuple item, Hyperband's `tuner/*` left out) as recipe
    path -> value."""
    out = {}
    for path, entry in space.items():
        if "tuple" in entry:
            out[path] = [_plain(values[f"{path}[{i}]"]) for i in range(len(entry["tuple"]))]
        else:
            out[path] = _plain(values[path])
    return out


def apply_values(recipe: dict, space: dict, values: dict) -> dict:
    """A copy of `recipe` with the trial's values set at their paths, as `--set` sets them."""
    from training import recipes

    trial = copy.deepcopy(recipe)
    for path, value in recipe_values(space, values).items():
        recipes.apply_set(trial, f"{path}={json.dumps(value)}")
    return trial


# ---------------------------------------------------------------------------------------------
# The search


def _direction(args) -> str:
    if args.direction:
        return args.direction
    return "min" if any(w in args.objective for w in ("loss", "error")) else "max"


def _oracle(args, hparams, recipe):
    import keras_tuner

    objective = keras_tuner.Objective(args.objective, _direction(args))
    common = {"objective": objective, "hyperparameters": hparams, "seed": args.seed}
    if args.algorithm == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=args.trials, **common)
    if args.algorithm == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=args.trials, **common)
    oracle = keras_tuner.oracles.HyperbandOracle(
        max_epochs=int(recipe["train"]["epochs"]), factor=args.factor, **common
    )
    oracle.max_trials = args.trials or None  # HyperbandOracle takes no max_trials; Oracle checks it
    return oracle


def _budget(recipe: dict, values: dict, max_steps=None) -> dict:
    """The trial's budget: `--max-steps`, then for Hyperband `tuner/epochs` of the recipe's
    epochs with max_steps scaled alike (module doc)."""
    trial = copy.deepcopy(recipe)
    cfg = trial["train"]
    if max_steps is not None:
        cfg["max_steps"] = max_steps
    if "tuner/epochs" in values:
        epochs, full = int(values["tuner/epochs"]), int(cfg["epochs"])
        if cfg["max_steps"]:
            cfg["max_steps"] = max(1, round(cfg["max_steps"] * epochs / full))
        cfg["epochs"] = epochs
    return trial


def _tuner_class():
    import keras_tuner
    import tensorflow as tf

    from training import loop

    class ZooTuner(keras_tuner.Tuner):
        """Trains each trial with the zoo's loop; KerasTuner only proposes and records."""

        def __init__(self, oracle, *, recipe, space, search_dir, args, on_trial):
            super().__init__(oracle, directory=str(search_dir), project_name="tuner")
            self.recipe, self.space, self.search_dir = recipe, space, search_dir
            self.args, self.on_trial = args, on_trial
            self.records = {}

        def run_trial(self, trial, *_, **__):
            values = trial.hyperparameters.values
            recipe = apply_values(self.recipe, self.space, values)
            recipe = _budget(recipe, values, self.args.max_steps)
            record = {
                "trial": trial.trial_id,
                "hyperparameters": recipe_values(self.space, values),
                "budget": {k: recipe["train"][k] for k in ("epochs", "max_steps")},
                "status": "RUNNING",
            }
            record.update({k: _plain(v) for k, v in values.items() if k.startswith("tuner/")})
            self.records[trial.trial_id] = record
            self.on_trial(record, None)
            logdir = self.search_dir / f"trial_{trial.trial_id}"
            try:
                result = loop.train(recipe, logdir=logdir, verbose=not self.args.quiet)
            except loop.TrainingError as e:  # e.g. a learning rate that diverges: a failed trial
                record["error"] = str(e)
                raise keras_tuner.errors.FailedTrialError(str(e)) from e
            except Exception as e:  # SIGTERM, a bug: stop the search, not just this trial
                record["error"] = f"{type(e).__name__}: {e}"
                raise keras_tuner.errors.FatalError(e) from e
            params = int(result.model.count_params())
            with tf.summary.create_file_writer(str(result.run_dir)).as_default():
                tf.summary.scalar("params", params, step=result.steps)  # for the HParams table
            metrics = {k: float(v) for k, v in result.metrics.items() if _scalar(v)}
            if self.args.objective not in metrics:
                raise keras_tuner.errors.FatalError(
                    f"--objective {self.args.objective}: the run's validation metrics are "
                    f"{', '.join(sorted(metrics))}"
                )
            record.update(
                params=params,
                validation=metrics,
                steps=result.steps,
                seconds=round(result.seconds, 1),
                run_dir=str(result.run_dir),
            )
            return {self.args.objective: metrics[self.args.objective], "params": float(params)}

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            record = self.records.get(trial.trial_id)
            if record is not None:
                record["status"] = str(trial.status)
                self.on_trial(record, trial)

        def save_model(self, trial_id, model, step=0):
            """Nothing: the trial's run directory holds its model (model.keras, checkpoints)."""

        def load_model(self, trial):
            record = self.records.get(trial.trial_id) or {}
            if "run_dir" not in record:
                return None
            import keras

            return keras.saving.load_model(pathlib.Path(record["run_dir"], "model.keras"))

    return ZooTuner


def _scalar(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _search(args, recipe, space, hparams) -> int:
    import keras_tuner

    from training import data, loop

    name = recipe["name"]
    records = {}  # trial id -> its record, as the tuner fills it
    search_dir = new_run_dir(args.logdir, f"{name}-search")
    request = {
        "recipe": name,
        "algorithm": args.algorithm,
        "trials": args.trials,
        "objective": args.objective,
        "direction": _direction(args),
        "space": args.space,
        "spaces": space,
        "sets": args.set,
        "seed": args.seed,
        "budget": {
            k: _budget(recipe, {}, args.max_steps)["train"][k] for k in ("epochs", "max_steps")
        },
    }
    started = time.time()
    total = args.trials or "?"
    say = print

    def on_trial(record, trial):
        if trial is None:
            shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in record["hyperparameters"].items())
            say(f"\n== trial {record['trial']} ({int(record['trial']) + 1}/{total}): {shown}")
            return
        if "params" in record:
            say(
                f"== trial {record['trial']}: {args.objective} "
                f"{record['validation'][args.objective]:.4f}, {record['params']:,} parameters, "
                f"{record['seconds']} s ({record['status']})"
            )
        else:
            say(f"== trial {record['trial']}: {record['status']}: {record.get('error', '')}")
        _write_results(search_dir, request, records, started, None)

    try:
        oracle = _oracle(args, hparams, recipe)
        oracle.verbose = 0  # its tables would interleave with the loop's lines; ours instead
        tuner = _tuner_class()(
            oracle, recipe=recipe, space=space, search_dir=search_dir, args=args, on_trial=on_trial
        )
        tuner.records = records
        say(
            f"search: {args.algorithm}, {total} trials of {name} over {args.space} "
            f"({len(hparams.space)} hyperparameters), {args.objective} "
            f"({_direction(args)}) -> {search_dir}"
        )
        tuner.search()
    except keras_tuner.errors.FatalError as e:
        cause = e.__cause__
        if isinstance(cause, loop.Interrupted):
            print(f"\nstopped: {cause}", file=sys.stderr)
            _write_results(search_dir, request, records, started, None)
            return 143
        completed = [r for r in records.values() if "params" in r]
        if not completed and isinstance(cause, (ValueError, data.DataError)):  # a bad request
            shutil.rmtree(search_dir, ignore_errors=True)
            print(f"search: error: {cause}", file=sys.stderr)
            return 2
        _write_results(search_dir, request, records, started, None)
        print(f"\nfailed: trial {len(records) - 1}: {cause or e}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # KerasTuner: too many failed trials in a row
        _write_results(search_dir, request, records, started, None)
        print(f"\nfailed: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1

    best = _best(records, args.objective, _direction(args), args.prefer_smaller)
    best_path = None
    if best is not None:
        best_path = search_dir / "best_recipe.json"
        best_recipe = apply_values(recipe, space, _kt_values(space, best["hyperparameters"]))
        best_recipe["name"] = f"{name}-searched"
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in best["hyperparameters"].items())
        best_recipe["description"] = (
            f"{name} with the hyperparameters of trial {best['trial']} of {search_dir}: {shown}"
        )
        best_path.write_text(json.dumps(best_recipe, indent=2) + "\n")
    _write_hparams_config(search_dir, space, records, args, recipe)
    summary = _write_results(search_dir, request, records, started, best, best_path)
    say("\n" + _table(records, args.objective, best))
    if best_path:
        say(f"best: trial {best['trial']}; train it: python -m training train {best_path}")
    else:
        say("best: none (no trial completed)")
    print(json.dumps(summary["summary"]))
    return 0


def _kt_values(space, recipe_values_: dict) -> dict:
    """recipe path -> value back to KerasTuner names (tuple items as `path[i]`)."""
    out = {}
    for path, entry in space.items():
        value = recipe_values_[path]
        if "tuple" in entry:
            out.update({f"{path}[{i}]": v for i, v in enumerate(value)})
        else:
            out[path] = value
    return out


def _best(records, objective, direction, tolerance):
    """The completed trial with the best objective (fewer parameters breaking a tie), or with
    `tolerance`: the fewest parameters among those within it of the best."""
    done = [r for r in records.values() if "params" in r and r["status"] == "COMPLETED"]
    if not done:
        return None
    sign = 1 if direction == "max" else -1
    score = {r["trial"]: sign * r["validation"][objective] for r in done}
    top = max(score.values())
    if tolerance == 0:
        return min(done, key=lambda r: (-score[r["trial"]], r["params"]))
    close = [r for r in done if score[r["trial"]] >= top - tolerance - 1e-12]
    return min(close, key=lambda r: (r["params"], -score[r["trial"]]))


def _write_results(search_dir, request, records, started, best, best_path=None) -> dict:
    summary = {
        "search_dir": str(search_dir),
        "trials": len(records),
        "completed": sum(1 for r in records.values() if r.get("status") == "COMPLETED"),
        "seconds": round(time.time() - started, 1),
        "best_trial": best["trial"] if best else None,
        "best_recipe": str(best_path) if best_path else None,
    }
    if best:
        summary.update(
            {
                request["objective"]: best["validation"][request["objective"]],
                "params": best["params"],
                "hyperparameters": best["hyperparameters"],
            }
        )
    out = {"request": request, "summary": summary, "trials": list(records.values())}
    tmp = search_dir / ".search.json.tmp"
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(search_dir / "search.json")
    return out


def _table(records, objective, best) -> str:
    rows = [r for r in records.values()]
    if not rows:
        return "no trials"
    names = list(rows[0]["hyperparameters"])
    header = ["trial", *names, "steps", "params", objective, "seconds", "status"]
    body = []
    for r in sorted(rows, key=lambda r: -r.get("validation", {}).get(objective, -math.inf)):
        mark = " *" if best and r["trial"] == best["trial"] else ""
        body.append(
            [
                r["trial"] + mark,
                *(json.dumps(r["hyperparameters"][n]) for n in names),
                str(r.get("steps", "")),
                f"{r['params']:,}" if "params" in r else "",
                f"{r['validation'][objective]:.4f}" if "validation" in r else "",
                str(r.get("seconds", "")),
                r["status"],
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [header, *body]]
    return "\n".join(lines)


def _write_hparams_config(search_dir, space, records, args, recipe):
    """The HParams experiment: the searched paths (as the loop's hparams name them: the recipe
    path, lists as JSON text), the validation metrics the trials reported, and params."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = []
    for path, entry in space.items():
        if "choice" in entry:
            values = [json.dumps(v) if isinstance(v, (list, tuple)) else v for v in entry["choice"]]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                values = [float(v) for v in values]
            hparams.append(hp.HParam(path, hp.Discrete(values)))
        elif "int" in entry:
            hparams.append(hp.HParam(path, hp.IntInterval(*map(int, entry["int"][:2]))))
        elif "float" in entry:
            hparams.append(hp.HParam(path, hp.RealInterval(*map(float, entry["float"][:2]))))
        else:
            hparams.append(hp.HParam(path))  # a list: its JSON text
    if args.algorithm == "hyperband":
        hparams += [hp.HParam("train.epochs"), hp.HParam("train.max_steps")]
    seen = []
    for r in records.values():
        seen += [k for k in r.get("validation", {}) if k not in seen]
    metrics = [
        hp.Metric(f"epoch_{k}", group="validation", display_name=f"validation {k}") for k in seen
    ]
    metrics.append(hp.Metric("params", display_name="parameters"))
    with tf.summary.create_file_writer(str(search_dir)).as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)
