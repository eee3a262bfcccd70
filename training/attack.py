"""`python -m training attack`: a robustness curve (accuracy against epsilon) of a classifier.

    python -m training attack <run-or-export> [--attack pgd[,fgsm,noise]] [--norm linf|l2]
        [--eps 0.05,0.1,0.2,0.3] [--steps 20] [--step-size S] [--random-start | --no-random-start]
        [--dataset SPEC [--split test]] [--limit N] [--batch-size 250] [--seed 0]
        [--logdir runs] [--out FILE]

The target is a run directory (runs/cnn/<time>, its model.keras), an export version
(exports/cnn/1, its serving_default signature) or a folder of either (the newest finished run,
the highest version): see training/trained.py. It is attacked on the held-out test examples the
run or export carries (calibration.npz: the run's validation split, up to 2,000 examples), or on
the `--split` of `--dataset` (a tfds name, folder:PATH or sample:NAME), at every eps of the list
plus eps 0 (clean accuracy), by each attack of the comma-separated list: `fgsm`, `pgd` (random
start by default, `--steps` steps of `--step-size`, default 2.5 eps / steps) and `noise` (random
perturbations of the same norm: the black-box baseline). eps and the step size are fractions of
the 0..1 pixel range; the models take 0..255 pixels, so eps 0.1 is 25.5 pixel levels (training/
adversarial.py). `--restarts N` tries N random starts (or noise draws) per example and counts
it as fooled if any fools the model (Madry et al.'s evaluation). `--seed` fixes the random starts
and the noise.

It prints the curve (one row per eps, one column per attack), writes a run directory
`<logdir>/<name>-attack/<UTC time>/` (name: the run's recipe or the export's model name) with
`attack.json` (the curves: accuracy, and the mean L-inf and L2 size of the perturbations actually
made, after clipping to the pixel range) and TensorBoard events: `<attack>_<norm>/accuracy`
against step = 1000 x eps, a grid of adversarial examples per eps (`<attack>_<norm>/examples`,
predicted label with the true one in brackets, wrong ones in red) and an HParams row. `--out`
writes attack.json there too. The last line printed is a JSON summary.

Exit codes: 0 done; 2 for a bad request (no run or export at the path, not a classifier, a bad eps
list, an unknown attack or norm, a data set whose classes differ from the model's), with a
one-line reason and nothing written.
"""

import argparse
import json
import pathlib
import sys
import time

from training.tooling import ArgumentParser, BadRequest, new_run_dir

DEFAULT_EPS = "0.05,0.1,0.2,0.3"


def _parser():
    p = ArgumentParser(
        prog="python -m training attack",
        description="Accuracy of a classifier (run or export) under FGSM, PGD and random noise, "
        "against epsilon; prints it and logs it to TensorBoard.",
    )
    p.add_argument("target", help="a run directory, an export version, or a folder of them")
    p.add_argument("--attack", default="pgd", help="fgsm, pgd, noise, or a comma-separated list")
    p.add_argument("--norm", default="linf", help="linf (default) or l2")
    p.add_argument(
        "--eps",
        default=DEFAULT_EPS,
        help=f"comma-separated, fractions of the 0..1 pixel range (default {DEFAULT_EPS})",
    )
    p.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    p.add_argument(
        "--step-size", type=float, help="fraction of the range (default: 2.5 eps / steps for PGD)"
    )
    p.add_argument(
        "--random-start",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from a random point of the eps-ball (default: on for pgd, off for fgsm)",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="random starts per example; an example counts as fooled if any fools the model",
    )
    p.add_argument("--dataset", help="attack this data set's --split instead of the carried one")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, help="attack only the first N examples")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", default="runs")
    p.add_argument("--out", help="also write the curves (attack.json) to this file")
    return p


def _check(args):
    from training import adversarial

    attacks = [a.strip() for a in args.attack.split(",") if a.strip()]
    unknown = [a for a in attacks if a not in adversarial.ATTACKS]
    if unknown or not attacks:
        raise BadRequest(
            f"--attack {args.attack}: unknown attack {unknown[0] if unknown else ''!r} "
            f"(known: {', '.join(adversarial.ATTACKS)})"
        )
    if args.norm not in adversarial.NORMS:
        raise BadRequest(f"--norm {args.norm}: known norms are {', '.join(adversarial.NORMS)}")
    try:
        eps = [float(e) for e in args.eps.split(",")]
    except ValueError:
        raise BadRequest(f"--eps {args.eps}: expected numbers separated by commas") from None
    if not eps or any(not e > 0 for e in eps) or any(e != e or e == float("inf") for e in eps):
        raise BadRequest(f"--eps {args.eps}: every eps must be a positive number")
    if args.norm == "linf" and any(e > 1 for e in eps):
        raise BadRequest(f"--eps {args.eps}: L-inf eps is a fraction of the pixel range, <= 1")
    if args.steps < 1:
        raise BadRequest(f"--steps {args.steps}: needs at least 1")
    if args.step_size is not None and not args.step_size > 0:
        raise BadRequest(f"--step-size {args.step_size}: must be positive")
    if args.batch_size < 1 or args.restarts < 1 or (args.limit is not None and args.limit < 1):
        raise BadRequest("--batch-size, --restarts and --limit must be positive")
    return attacks, sorted(set(eps))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
    except BadRequest as e:
        print(f"attack: error: {e}", file=sys.stderr)
        return 2
    import console

    console.import_tensorflow()  # after argparse: --help stays fast
    from training import data, trained

    try:
        attacks, eps_list = _check(args)
        with console.quiet():  # the first device query's notices
            target = trained.load(args.target)
        x, y = _examples(target, args, data)
    except (trained.NotAClassifier, data.DataError, BadRequest) as e:
        print(f"attack: error: {e}", file=sys.stderr)
        return 2
    return _run(target, x, y, attacks, eps_list, args)


def _examples(target, args, data):
    """(images float32, labels int64): the carried test examples or --dataset's --split."""
    import numpy as np

    if args.dataset:
        source = data.open_source(args.dataset)
        if source.class_names != [str(n) for n in target.class_names]:
            raise BadRequest(
                f"--dataset {args.dataset}: classes {source.class_names} are not the model's "
                f"{target.class_names}"
            )
        pairs = [
            (np.asarray(e["image"], np.float32), int(e["label"]))
            for e in source.load(args.split).as_numpy_iterator()
        ]
        if not pairs:
            raise BadRequest(f"--dataset {args.dataset}: split {args.split!r} is empty")
        x, y = np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int64)
    else:
        found = target.test_arrays()
        if found is None:
            raise BadRequest(f"{target.path} carries no test examples: give --dataset")
        x, y = found
    if tuple(x.shape[1:]) != tuple(target.image_shape):
        raise BadRequest(
            f"images of shape {x.shape[1:]} do not fit the model's {target.image_shape}"
        )
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    return x, y


def _run(target, x, y, attacks, eps_list, args) -> int:
    import numpy as np
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    from training import adversarial, summaries

    shape = tuple(target.image_shape)
    spec = (
        tf.TensorSpec([None, *shape], tf.float32),
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([], tf.float32),
    )
    settings = {}
    for attack in attacks:
        random_start = args.random_start
        if random_start is None:
            random_start = attack == "pgd"
        settings[attack] = {
            "steps": args.steps if attack == "pgd" else (1 if attack == "fgsm" else 0),
            "step_size": args.step_size,
            "random_start": bool(random_start) and attack != "noise",
            # more tries only where they differ: random starts, or noise
            "restarts": args.restarts if (random_start or attack == "noise") else 1,
        }

    def compiled(attack):
        s = settings[attack]

        @tf.function(input_signature=spec)
        def run(images, labels, eps):
            adv = adversarial.perturb(
                target.predict,
                images,
                labels,
                eps=eps,
                attack=attack,
                norm=args.norm,
                steps=max(s["steps"], 1),
                step_size=s["step_size"],
                random_start=s["random_start"],
            )
            return adv, tf.argmax(target.predict(adv), axis=-1)

        return run

    @tf.function(input_signature=spec[:1])
    def clean(images):
        return tf.argmax(target.predict(images), axis=-1)

    names = [str(n) for n in target.class_names]
    shown = np.random.default_rng(0).permutation(len(x))[:25]  # across the classes
    run_dir = new_run_dir(args.logdir, f"{target.name}-attack")
    writer = tf.summary.create_file_writer(str(run_dir))
    started = time.time()
    tf.random.set_seed(args.seed)
    clean_pred = np.concatenate(
        [clean(x[i : i + args.batch_size]).numpy() for i in range(0, len(x), args.batch_size)]
    )
    clean_accuracy = float(np.mean(clean_pred == y))
    curves = {}
    with writer.as_default():
        for attack in attacks:
            tag = f"{attack}_{args.norm}"
            step_fn = compiled(attack)
            points = [{"eps": 0.0, "accuracy": clean_accuracy, "linf": 0.0, "l2": 0.0}]
            _log_point(tag, points[0], x[shown], clean_pred[shown], y[shown], names, summaries)
            for eps in eps_list:
                adv, pred = None, None
                for _ in range(settings[attack]["restarts"]):  # keep what fooled the model
                    tried = [
                        step_fn(x[i : i + args.batch_size], y[i : i + args.batch_size], eps)
                        for i in range(0, len(x), args.batch_size)
                    ]
                    new_adv = np.concatenate([a.numpy() for a, _ in tried])
                    new_pred = np.concatenate([p.numpy() for _, p in tried])
                    if adv is None:
                        adv, pred = new_adv, new_pred
                    else:
                        better = (pred == y) & (new_pred != y)
                        adv[better], pred[better] = new_adv[better], new_pred[better]
                delta = (adv - x).reshape(len(x), -1) / 255.0
                point = {
                    "eps": eps,
                    "accuracy": float(np.mean(pred == y)),
                    "linf": float(np.mean(np.abs(delta).max(axis=1))),
                    "l2": float(np.mean(np.sqrt((delta**2).sum(axis=1)))),
                }
                points.append(point)
                _log_point(tag, point, adv[shown], pred[shown], y[shown], names, summaries)
            curves[attack] = points
        hparams = {
            "target": str(target.path),
            "target_kind": target.kind,
            "attacks": ",".join(attacks),
            "norm": args.norm,
            "steps": args.steps,
            "step_size": args.step_size if args.step_size is not None else -1.0,
            "restarts": args.restarts,
            "examples": len(x),
            "seed": args.seed,
        }
        hp.hparams(hparams, trial_id=f"{target.name}-attack/{run_dir.name}")
    writer.close()
    seconds = time.time() - started
    result = {
        "target": str(target.path),
        "target_kind": target.kind,
        "norm": args.norm,
        "examples": len(x),
        "settings": settings,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "curves": curves,
    }
    text = json.dumps(result, indent=2) + "\n"
    (run_dir / "attack.json").write_text(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)
    _print_table(target, x, attacks, settings, curves, args.norm, seconds)
    summary = {"run_dir": str(run_dir), "clean_accuracy": clean_accuracy}
    summary["accuracy"] = {a: {p["eps"]: p["accuracy"] for p in c[1:]} for a, c in curves.items()}
    print(json.dumps(summary))
    return 0


def _log_point(tag, point, images, predicted, labels, names, summaries):
    import tensorflow as tf

    step = round(point["eps"] * 1000)
    tf.summary.scalar(f"{tag}/accuracy", point["accuracy"], step=step)
    captions = [
        names[p] if p == t else f"{names[p]} ({names[t]})" for p, t in zip(predicted, labels)
    ]
    colors = ["black" if p == t else "red" for p, t in zip(predicted, labels)]
    summaries.image(f"{tag}/examples", summaries.grid(images, captions, colors), step)


def _print_table(target, x, attacks, settings, curves, norm, seconds):
    about = []
    for attack in attacks:
        s, parts = settings[attack], []
        if attack == "pgd":
            size = "2.5 eps/steps" if s["step_size"] is None else f"{s['step_size']:g}"
            parts.append(f"{s['steps']} steps of {size}")
        if s["random_start"]:
            parts.append("random start" if s["restarts"] == 1 else f"{s['restarts']} random starts")
        if parts:
            about.append(f"{attack}: {', '.join(parts)}")
    print(
        f"{norm} attacks on {target.path} ({target.kind}), {len(x)} examples"
        + (f" ({'; '.join(about)})" if about else "")
        + f", {seconds:.1f} s"
    )
    print("eps    " + "".join(f"{a:>9}" for a in attacks))
    for i, point in enumerate(curves[attacks[0]]):
        row = "".join(f"{curves[a][i]['accuracy']:>9.3f}" for a in attacks)
        print(f"{point['eps']:<7g}{row}")
