"""Distillation (training/tasks/distillation.py) on the real digits: a student learns what its
teacher knows and the labels do not say; the teacher may be a run or an export; a missing or
mismatched teacher is a bad request."""

import json

import numpy as np
import pytest

from training import cli, loop, recipes, trained
from training.tasks import get_task

SWAPPED = {"3": "5", "5": "3"}
STUDENT = [
    'model.overrides={"filters": [8, 16], "dropout": 0.0}',
    "task.augment=none",
    "task.temperature=4.0",
    "optimizer.lr=0.003",
    "train.batch_size=64",
    "train.epochs=1",  # 62 steps
    "data.shuffle_buffer=4096",
    'export.formats=["saved_model"]',
]


@pytest.fixture(scope="module")
def mislabelled(shared_data, tmp_path_factory):
    """The shared digits with the training 3s labelled 5 and the 5s labelled 3 (test as it is)."""
    root = tmp_path_factory.mktemp("swapped")
    (root / "train").mkdir()
    for digit in (shared_data / "mnist5k" / "train").iterdir():
        source = shared_data / "mnist5k" / "train" / SWAPPED.get(digit.name, digit.name)
        (root / "train" / digit.name).symlink_to(source, target_is_directory=True)
    (root / "test").symlink_to(shared_data / "mnist5k" / "test", target_is_directory=True)
    return root


def student(mislabelled, teacher, tmp_path, *sets):
    recipe = recipes.resolve(
        "cnn-distilled",
        [f"data.dataset=folder:{mislabelled}", f"task.teacher={teacher}", *STUDENT, *sets],
    )
    return loop.train(recipe, logdir=tmp_path, verbose=False)


def per_class_accuracy(run_dir):
    model = trained.load(run_dir)
    x, y = model.test_arrays()
    predicted = np.argmax(model.predict(x), axis=-1)
    swapped = np.isin(y, [3, 5])
    return float(np.mean(predicted[swapped] == y[swapped])), float(np.mean(predicted == y))


def test_a_student_learns_from_the_teachers_soft_labels(digit_classifier, mislabelled, tmp_path):
    """The labels call every 3 a 5 and every 5 a 3; the teacher (trained on the true labels, and
    given as its SavedModel here) knows better. Without it (alpha 0) the student learns the
    swap; with it (alpha 0.9: the labels still weigh 0.1) the student reads 3s and 5s right."""
    alone = student(mislabelled, digit_classifier.run_dir, tmp_path, "task.alpha=0.0")
    taught = student(mislabelled, digit_classifier.export_dir, tmp_path, "task.alpha=0.9")
    swapped_alone, overall_alone = per_class_accuracy(alone.run_dir)
    swapped_taught, overall_taught = per_class_accuracy(taught.run_dir)
    assert swapped_alone < 0.2  # (one epoch: ~0.08)
    assert swapped_taught > 0.5  # (~0.76)
    assert overall_taught > overall_alone + 0.05  # (~0.81 against ~0.69)
    assert overall_taught == pytest.approx(taught.metrics["accuracy"], abs=1e-6)
    # what it exports is a classifier: the teacher is not part of it
    info = json.loads((taught.run_dir / "export_info.json").read_text())
    assert (
        info["task"] == "classification" and get_task("distillation").export_kind() == info["task"]
    )


def test_the_soft_loss_is_zero_when_the_student_matches_the_teacher():
    task = object.__new__(get_task("distillation"))
    task.temperature = 4.0
    p = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]], np.float32)
    q = np.array([[0.2, 0.7, 0.1], [0.0, 1.0, 0.0]], np.float32)
    assert np.allclose(task.soft_loss(p, p), 0.0, atol=1e-5)
    assert (task.soft_loss(p, q).numpy() > 0.1).all()  # and finite, even for zeros


@pytest.mark.parametrize(
    "teacher, reason",
    [
        ("/no/such/run", "does not exist"),
        ("{empty}", "neither a run"),
    ],
)
def test_a_missing_teacher_is_a_bad_request(teacher, reason, shared_data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [
        "train",
        "cnn-distilled",
        "--set",
        f"task.teacher={teacher.format(empty=tmp_path / 'empty')}",
        "--dataset",
        f"folder:{shared_data / 'mnist5k'}",
        "--logdir",
        str(tmp_path / "runs"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert reason in err and "task.teacher" in err
    assert not (tmp_path / "runs").exists()


def test_a_teacher_of_other_classes_is_refused(digit_classifier, shared_data, tmp_path):
    """A data set of two of the digits: the teacher predicts ten classes."""
    root = tmp_path / "two"
    for split in ("train", "test"):
        for digit in ("0", "1"):
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / split / digit).symlink_to(shared_data / "mnist5k" / split / digit)
    recipe = recipes.resolve(
        "cnn-distilled",
        [f"data.dataset=folder:{root}", f"task.teacher={digit_classifier.run_dir}"],
    )
    with pytest.raises(ValueError, match="predicts classes"):
        loop.train(recipe, logdir=tmp_path / "runs", verbose=False)
    assert not (tmp_path / "runs").exists()


def test_the_recipes_student_has_at_most_a_quarter_of_the_cnns_parameters():
    import zoo

    def parameters(name):
        overrides = recipes.resolve(name)["model"]["overrides"]
        return zoo.build("cnn", input_shape=(28, 28, 1), num_classes=10, **overrides).count_params()

    assert parameters("cnn-distilled") <= parameters("cnn") / 4
