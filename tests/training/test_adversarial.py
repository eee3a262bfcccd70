"""Adversarial robustness on the real digits: the attacks (training/adversarial.py) against a small
trained cnn, the `attack` tool on its run and on its SavedModel, and adversarial training (the
`adversarial` extension) holding accuracy under attack."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.training.conftest import digits_recipe
from training import adversarial, attack, cli, extensions, loop, recipes, trained
from training.extensions.adversarial import Adversarial

EPS = 0.1  # of the 0..1 range: 25.5 pixel levels


@pytest.fixture(scope="module")
def digits(digit_classifier):
    """The classifier and 300 of its held-out digits, drawn across the classes."""
    classifier = trained.load(digit_classifier.run_dir)
    x, y = classifier.test_arrays()
    pick = np.random.default_rng(0).permutation(len(x))[:300]
    return classifier, x[pick], y[pick]


def accuracy(predict, x, y):
    return float(np.mean(np.argmax(predict(x), axis=-1) == y))


def attacked(predict, x, y, attack_name, norm="linf", eps=EPS, steps=10, random_start=False):
    tf.random.set_seed(0)
    adv = adversarial.perturb(
        predict,
        x,
        y,
        eps=eps,
        attack=attack_name,
        norm=norm,
        steps=steps,
        random_start=random_start,
    )
    return adv.numpy()


def test_pgd_beats_fgsm_beats_noise_of_the_same_norm(digits):
    classifier, x, y = digits
    predict = classifier.predict
    clean = accuracy(predict, x, y)
    fgsm = accuracy(predict, attacked(predict, x, y, "fgsm"), y)
    pgd = accuracy(predict, attacked(predict, x, y, "pgd", random_start=True), y)
    noise = accuracy(predict, attacked(predict, x, y, "noise"), y)
    assert clean > 0.9
    assert pgd < fgsm <= clean
    assert pgd < 0.8 * clean
    assert noise > pgd + 0.15 and noise >= clean - 0.05  # random signs barely matter


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_perturbations_stay_in_the_ball_and_the_pixel_range(digits, norm):
    classifier, x, y = digits
    x, y = x[:50], y[:50]
    eps = EPS if norm == "linf" else 1.5
    for name in adversarial.ATTACKS:
        adv = attacked(
            classifier.predict, x, y, name, norm=norm, eps=eps, steps=3, random_start=True
        )
        delta = (adv - x).reshape(len(x), -1)
        assert adv.min() >= 0 and adv.max() <= 255, name
        size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
        assert size.max() <= eps * 255 * (1 + 1e-4), name
        assert size.mean() > 0.5 * eps * 255, name  # they do move (clipping takes some)
    # the L2 PGD attack hurts too
    l2 = attacked(classifier.predict, x, y, "pgd", norm="l2", eps=2.0, steps=10, random_start=True)
    assert accuracy(classifier.predict, l2, y) < accuracy(classifier.predict, x, y) - 0.2


def events(run_dir, tag):
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc.Tensors(tag)


def test_the_attack_tool_on_a_run_and_on_its_export(digit_classifier, tmp_path, capsys):
    logdir, out = tmp_path / "runs", tmp_path / "curve.json"
    argv = ["--eps", "0.05,0.1", "--steps", "10", "--limit", "300", "--logdir", str(logdir)]
    code = cli.main(["attack", str(digit_classifier.run_dir), "--attack", "fgsm,pgd,noise", *argv])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[1].split() == ["eps", "fgsm", "pgd", "noise"]
    summary = json.loads(printed[-1])
    run_dir = summary["run_dir"]
    assert run_dir.startswith(str(logdir / "cnn-classic-attack"))
    curves = json.loads((pathlib.Path(run_dir) / "attack.json").read_text())
    assert curves["target_kind"] == "run" and curves["examples"] == 300
    pgd = [p["accuracy"] for p in curves["curves"]["pgd"]]
    assert [p["eps"] for p in curves["curves"]["pgd"]] == [0.0, 0.05, 0.1]
    assert pgd[0] > pgd[1] > pgd[2]  # accuracy falls as eps grows
    noise = curves["curves"]["noise"][-1]
    assert noise["accuracy"] > pgd[2] and noise["linf"] == pytest.approx(0.1, abs=1e-3)
    scalars = events(run_dir, "pgd_linf/accuracy")
    assert [e.step for e in scalars] == [0, 50, 100]
    assert float(tf.make_ndarray(scalars[-1].tensor_proto)) == pytest.approx(pgd[2])
    assert len(events(run_dir, "pgd_linf/examples")) == 3  # a grid per eps

    # the SavedModel: gradients flow through serving_default, and it is the same model; two
    # random starts per example fool it at least as often as one
    restarts = ["--restarts", "2"]
    code = attack.main([str(digit_classifier.export_dir), *argv, *restarts, "--out", str(out)])
    assert code == 0
    exported = json.loads(out.read_text())
    assert exported["target_kind"] == "export" and exported["settings"]["pgd"]["restarts"] == 2
    assert exported["curves"]["pgd"][0]["accuracy"] == pytest.approx(pgd[0])
    assert pgd[2] - 0.03 <= exported["curves"]["pgd"][-1]["accuracy"] <= pgd[2] + 0.005


@pytest.mark.parametrize(
    "args, reason",
    [
        (["/no/such/run"], "does not exist"),
        (["{run}", "--eps", "0.1,big"], "expected numbers"),
        (["{run}", "--eps", "0.1,-0.2"], "positive"),
        (["{run}", "--eps", "2"], "<= 1"),
        (["{run}", "--attack", "pgd,carlini"], "unknown attack 'carlini'"),
        (["{run}", "--norm", "l1"], "known norms"),
        (["{empty}"], "neither a run"),
    ],
)
def test_the_attack_tool_refuses_bad_requests(args, reason, digit_classifier, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = [a.format(run=digit_classifier.run_dir, empty=tmp_path / "empty") for a in args]
    assert attack.main([*args, "--logdir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and reason in err
    assert not (tmp_path / "runs").exists()


def test_the_extension_changes_the_batch_only_when_enabled(digits):
    classifier, x, y = digits
    x, y = tf.constant(x[:32]), tf.constant(y[:32])

    def sections(recipe):
        return [e.section for e in extensions.active(recipe, 100)]

    assert "adversarial" not in sections(recipes.resolve("cnn"))
    assert "adversarial" in sections(
        recipes.resolve("resnet18-cifar10", ["adversarial.attack=pgd"])
    )
    config = {**Adversarial.defaults, "attack": "pgd", "steps": 2, "mix": 0.5}
    images, labels = Adversarial(config, 100).replica_batch(classifier.model, (x, y))
    assert images.shape == x.shape and np.array_equal(labels, y)
    delta = np.abs(images.numpy() - x.numpy()).reshape(32, -1).max(axis=1)
    assert (delta[:16] == 0).all()  # mix: the first half stays clean
    assert (delta[16:] > 0).all() and delta.max() <= EPS * 255 + 1e-3
    for bad in [{"attack": "carlini"}, {"attack": "pgd", "eps": 0.0}, {"attack": "fgsm", "mix": 1}]:
        sets = [f"adversarial.{k}={json.dumps(v)}" for k, v in bad.items()]
        with pytest.raises(ValueError, match="adversarial"):
            extensions.active(recipes.resolve("cnn", sets), 10)


def test_adversarial_training_holds_accuracy_under_attack(
    digit_classifier, digits, shared_data, tmp_path
):
    """FGSM with a random start (Wong et al. 2020), the same recipe and budget otherwise."""
    _, x, y = digits
    recipe = digits_recipe(shared_data, "train.max_steps=200", "adversarial.attack=fgsm")
    robust = loop.train(recipe, logdir=tmp_path, verbose=False)
    plain = trained.load(digit_classifier.run_dir).predict
    tough = trained.load(robust.run_dir).predict
    before = accuracy(plain, attacked(plain, x, y, "pgd", random_start=True), y)
    after = accuracy(tough, attacked(tough, x, y, "pgd", random_start=True), y)
    assert after > before + 0.1
    assert accuracy(tough, x, y) > 0.9
