"""`python -m training explain`: where a classifier looks, as a heatmap over the image.

    python -m training explain <run-or-export> IMAGE [--method gradcam|gradcam++|ig|smoothgrad]
        [--layer NAME] [--steps 32] [--samples 25] [--sigma 0.15] [--seed 0] [-o OUT.png]
        [--logdir DIR]

The target is a run directory (runs/cnn/<time>: its model.keras), an export version
(exports/cnn/1) or a folder of either (the newest finished run, the highest version), read as
training/trained.py reads it for every tool (an export without importing `serving`). IMAGE (PNG,
JPEG, GIF or BMP) is decoded and resized to the model's input as the exports' bytes signatures do,
and the predicted class is explained (saliency/):

- `gradcam` (default) and `gradcam++` weigh the feature map of the target layer, found
  automatically (zoo/explain.py) or named with `--layer`; `ig` is Integrated Gradients from a
  black image in `--steps` steps; `smoothgrad` averages the gradients of `--samples` noisy copies
  (noise std `--sigma` of the 0..255 range, `--seed`).
- On an export: `gradcam` is its `explain_image_bytes` signature (the layer the export found;
  `--layer` needs the run), `ig` and `smoothgrad` take gradients through its `serving_default`
  (of the probability: an export has no logits), `gradcam++` needs the run directory.

It writes the heatmap over the image, at the image's own size, to OUT.png (default
`<image name>-<method>.png` here) and prints one JSON line: the image, the target, the method and
layer, the class, its label and probability, and the picture. `--logdir DIR` also writes a run
directory `DIR/<name>-explain/<UTC time>/` with the picture as a TensorBoard image
(`heatmap/<method>`) and explain.json.

Exit codes: 0 done; 2 for a bad request (no run or export at the path, not a classifier, an image
that is missing or does not decode, an unknown method or layer, a method the export cannot do),
with a one-line reason and nothing written.
"""

import json
import pathlib
import sys

from training.tooling import ArgumentParser, BadRequest, new_run_dir

METHODS = ("gradcam", "gradcam++", "ig", "smoothgrad")


def _parser():
    p = ArgumentParser(
        prog="python -m training explain",
        description="A heatmap of where a classifier (run or export) looks in an image.",
    )
    p.add_argument("target", help="a run directory, an export version, or a folder of them")
    p.add_argument("image", help="a PNG, JPEG, GIF or BMP file")
    p.add_argument("--method", choices=METHODS, default="gradcam")
    p.add_argument("--layer", help="Grad-CAM's target layer (default: found automatically)")
    p.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps (32)")
    p.add_argument("--samples", type=int, default=25, help="SmoothGrad noisy samples (25)")
    p.add_argument(
        "--sigma", type=float, default=0.15, help="SmoothGrad noise std, fraction of 0..255"
    )
    p.add_argument("--seed", type=int, default=0, help="SmoothGrad noise seed")
    p.add_argument("-o", "--output", help="the picture (default: <image name>-<method>.png)")
    p.add_argument("--logdir", help="also log the picture to TensorBoard in a run directory here")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
        _check(args)
        import console

        console.import_tensorflow()
        from training import trained

        data, original = _read_image(args.image)
        try:
            classifier = trained.load(args.target)
        except trained.NotAClassifier as e:
            raise BadRequest(str(e)) from None
        result = _explain(classifier, _model_input(data, classifier.image_shape), data, args)
    except BadRequest as e:
        print(f"explain: error: {e}", file=sys.stderr)
        return 2
    picture = _picture(original, result["heatmap"])
    output = pathlib.Path(args.output)
    _write_png(output, picture)
    summary = {
        "image": str(args.image),
        "target": str(classifier.path),
        "method": args.method,
        "layer": result["layer"],
        "class": result["class"],
        "label": result["label"],
        "probability": round(result["probability"], 6),
        "output": str(output),
    }
    if args.logdir:
        summary["run_dir"] = str(_log(args, classifier.name, picture, summary))
    print(json.dumps(summary))
    return 0


def _check(args):
    for name in ("steps", "samples"):
        if getattr(args, name) < 1:
            raise BadRequest(f"--{name} {getattr(args, name)}: needs at least 1")
    if not args.sigma >= 0:
        raise BadRequest(f"--sigma {args.sigma}: must be zero or positive")
    if not pathlib.Path(args.image).is_file():
        raise BadRequest(f"{args.image}: no such image file")
    if args.output is None:
        args.output = f"{pathlib.Path(args.image).stem}-{args.method}.png"
    parent = pathlib.Path(args.output).resolve().parent
    if not parent.is_dir():
        raise BadRequest(f"-o {args.output}: the folder {parent} does not exist")


# ---- the image and the heatmap -------------------------------------------------------------------


def _read_image(path):
    """(the file's bytes, its pixels uint8 [h,w,c])."""
    import tensorflow as tf

    data = pathlib.Path(path).read_bytes()
    try:
        return data, tf.io.decode_image(data, expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, ValueError):
        raise BadRequest(f"{path}: not an image TensorFlow decodes (PNG, JPEG, GIF, BMP)") from None


def _model_input(data, image_shape):
    """The image as the exports' bytes signatures take it: decoded to the model's channels and
    bilinearly resized to its size, [1,H,W,C] float32 0..255."""
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=image_shape[-1], expand_animations=False)
    return tf.image.resize(tf.cast(image, tf.float32), image_shape[:2])[None]


def _explain(classifier, image, data, args) -> dict:
    """The heatmap [H,W] of the predicted class and what was explained."""
    import numpy as np
    import tensorflow as tf

    import saliency

    options = {
        "ig": {"steps": args.steps},
        "smoothgrad": {"samples": args.samples, "sigma": args.sigma * 255.0, "seed": args.seed},
    }.get(args.method, {})
    layer = None
    if classifier.kind == "export":
        if args.layer is not None:
            raise BadRequest(
                "--layer: an export's explain_image_bytes fixed its layer; name one on the run "
                "directory the export came from"
            )
        if args.method == "gradcam++":
            raise BadRequest(
                "gradcam++ needs the layers of a run directory; an export serves Grad-CAM "
                "(explain_image_bytes), ig and smoothgrad"
            )
        if args.method == "gradcam":
            loaded = classifier.predict.loaded  # the SavedModel trained.load restored
            if "explain_image_bytes" not in loaded.signatures:
                raise BadRequest(
                    f"{classifier.path} has no explain_image_bytes signature (an older export)"
                )
            out = loaded.signatures["explain_image_bytes"](image_bytes=tf.constant([data]))
            heatmap, probabilities = out["heatmap"][0].numpy(), out["probabilities"][0].numpy()
        else:
            scorer = saliency.ProbabilityScores(classifier.predict)
            explained = saliency.explain(scorer, image, args.method, **options)
            heatmap = explained.heatmaps[0].numpy()
            probabilities = explained.probabilities[0].numpy()
    else:
        try:
            explainer = saliency.Explainer(classifier.model, args.layer)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        explained = saliency.explain(explainer, image, args.method, **options)
        heatmap = explained.heatmaps[0].numpy()
        probabilities = explained.probabilities[0].numpy()
        if args.method.startswith("gradcam"):
            layer = explainer.target.layer
    chosen = int(np.argmax(probabilities))
    return {
        "heatmap": heatmap,
        "layer": layer,
        "class": chosen,
        "label": str(classifier.class_names[chosen]),
        "probability": float(probabilities[chosen]),
    }


def _picture(original, heatmap):
    """The heatmap, resized to the file's own size, over the file's pixels: uint8 RGB."""
    import tensorflow as tf

    import saliency

    size = original.shape[:2]
    resized = tf.image.resize(heatmap[None, ..., None], size, method="bilinear")[0, ..., 0]
    return saliency.overlay(original[None, ..., :3], resized.numpy()[None])[0]


def _write_png(path, picture):
    from PIL import Image

    Image.fromarray(picture).save(path, format="PNG")


def _log(args, name, picture, summary) -> pathlib.Path:
    """A run directory with the picture in TensorBoard and explain.json."""
    import tensorflow as tf

    run_dir = new_run_dir(args.logdir, f"{name}-explain")
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        tf.summary.image(f"heatmap/{args.method}", picture[None], step=0)
        caption = f"{summary['label']} ({summary['probability']:.3f}) by {args.method}"
        tf.summary.text("explanation", f"{args.image}: {caption}", step=0)
    writer.close()
    (run_dir / "explain.json").write_text(json.dumps(summary, indent=2) + "\n")
    return run_dir
