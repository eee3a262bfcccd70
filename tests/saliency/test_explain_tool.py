"""`python -m training explain` on a run and on its export (the cnn trained on the digits), its
picture and JSON line, its exit codes for bad requests, and the heatmaps TensorBoard shows for
every epoch of a classifier run."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import saliency
from tests.conftest import run_module
from training import explain


@pytest.fixture(scope="module")
def digit_png(test_digits, tmp_path_factory):
    """A held-out 7, enlarged to 56x56 as a user's file might be."""
    images, labels = test_digits
    seven = images[np.flatnonzero(labels == 7)[0]]
    path = tmp_path_factory.mktemp("explain-tool") / "seven.png"
    Image.fromarray(seven[..., 0].astype(np.uint8)).resize((56, 56)).save(path)
    return path


def run(capsys, *args):
    code = explain.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("method", saliency.METHODS)
def test_on_a_run_every_method_writes_the_heatmap_over_the_image(
    capsys, trained_cnn, digit_png, tmp_path, method
):
    output = tmp_path / "heat.png"
    code, out, err = run(capsys, trained_cnn.run_dir, digit_png, "--method", method, "-o", output)
    assert code == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    assert line["method"] == method and line["output"] == str(output)
    assert line["layer"] == ("conv2" if method.startswith("gradcam") else None)
    image = np.asarray(Image.open(digit_png), np.float32)[None, ..., None]
    resized = tf.image.resize(image, (28, 28))
    probabilities = trained_cnn.model(resized).numpy()[0]
    assert line["class"] == int(np.argmax(probabilities)) == 7 and line["label"] == "7"
    assert line["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)
    picture = Image.open(output)
    assert picture.size == (56, 56) and picture.mode == "RGB"


def test_on_an_export_gradcam_is_its_signature_and_matches_the_run(
    capsys, trained_cnn, digit_png, tmp_path
):
    pictures = {}
    for target in (trained_cnn.run_dir, trained_cnn.export_dir.parent):  # a model's export folder
        output = tmp_path / f"{target.name}.png"
        code, out, err = run(capsys, target, digit_png, "-o", output)
        assert code == 0, err
        line = json.loads(out.strip().splitlines()[-1])
        assert line["label"] == "7"
        pictures[target] = np.asarray(Image.open(output), np.int16)
    assert line["target"] == str(trained_cnn.export_dir)  # the highest version
    run_picture, export_picture = pictures.values()
    assert np.abs(run_picture - export_picture).max() <= 1  # the same heatmap, rounded

    for method in ("ig", "smoothgrad"):  # through serving_default
        code, out, err = run(
            capsys, trained_cnn.export_dir, digit_png, "--method", method, "-o", tmp_path / "x.png"
        )
        assert code == 0 and json.loads(out)["label"] == "7", err


def test_logdir_writes_a_run_with_the_picture(capsys, trained_cnn, digit_png, tmp_path):
    code, out, err = run(
        capsys, trained_cnn.export_dir, digit_png, "-o", tmp_path / "heat.png",
        "--logdir", tmp_path / "runs",
    )  # fmt: skip
    assert code == 0, err
    run_dir = tmp_path / "runs" / "cnn-classic-explain"
    (written,) = run_dir.iterdir()
    assert json.loads(out)["run_dir"] == str(written)
    assert json.loads((written / "explain.json").read_text())["label"] == "7"
    events = EventAccumulator(str(written), size_guidance={"tensors": 0})
    events.Reload()
    assert {"heatmap/gradcam", "explanation"} <= set(events.Tags()["tensors"])


def test_bad_requests_exit_2_with_one_line_and_write_nothing(
    capsys, trained_cnn, digit_png, tmp_path
):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    empty = tmp_path / "empty"
    empty.mkdir()
    run_dir, export = trained_cnn.run_dir, trained_cnn.export_dir
    output = tmp_path / "out.png"
    cases = [
        ([tmp_path / "nowhere", digit_png], "does not exist"),
        ([empty, digit_png], "is neither a run (model.keras) nor an export"),
        ([run_dir, tmp_path / "missing.png"], "no such image file"),
        ([run_dir, not_an_image], "not an image TensorFlow decodes"),
        ([run_dir, digit_png, "--method", "lime"], "invalid choice: 'lime'"),
        ([run_dir, digit_png, "--layer", "conv9"], "no layer 'conv9' in model"),
        ([run_dir, digit_png, "--layer", "flatten"], "not a feature map"),
        ([export, digit_png, "--layer", "conv1"], "an export's explain_image_bytes fixed"),
        ([export, digit_png, "--method", "gradcam++"], "gradcam++ needs the layers of a run"),
        ([run_dir, digit_png, "--steps", "0"], "--steps 0: needs at least 1"),
        ([run_dir, digit_png, "-o", tmp_path / "no" / "such" / "dir.png"], "does not exist"),
    ]
    for args, reason in cases:
        has_output = "-o" in args
        code, out, err = run(capsys, *args, *([] if has_output else ["-o", output]))
        assert code == 2 and reason in err and len(err.strip().splitlines()) == 1, (args, err)
        assert err.startswith("explain: error: ") and not out
        assert not output.exists()


def test_the_command_line_runs_the_tool(trained_cnn, digit_png, tmp_path):
    assert explain.METHODS == saliency.METHODS  # the tool lists them without importing TF
    proc = run_module(
        "training", "explain", trained_cnn.run_dir, digit_png, "-o", tmp_path / "heat.png"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["label"] == "7"
    assert (tmp_path / "heat.png").is_file()


def test_tensorboard_shows_heatmaps_of_fixed_test_images_every_epoch(trained_cnn):
    events = EventAccumulator(str(trained_cnn.run_dir / "validation"), size_guidance={"tensors": 0})
    events.Reload()
    pictures = events.Tensors("heatmaps")
    assert [e.step for e in pictures] == [62, 124, 186, 248]  # one per epoch
    png = tf.make_ndarray(pictures[-1].tensor_proto)[2]  # [width, height, png bytes]
    grid = tf.io.decode_png(png).numpy()
    assert grid.shape[-1] == 3 and grid.shape[1] == 4 * 84  # 8 images, 4 columns
