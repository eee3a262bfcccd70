"""`python -m training search`: a 2-trial random search on the real shared digits writes two normal
run directories with the proposed hyperparameters applied, KerasTuner's state, search.json, an
HParams experiment that reads back, and a best_recipe.json that `train` accepts; bad requests exit
2 with nothing written. The spaces' translation to KerasTuner and Hyperband's budget mapping are
checked on their own (no training)."""

import json
import pathlib

import pytest

from tests.conftest import run_module
from tests.training.conftest import DIGITS

TRIAL_STEPS = 30


@pytest.fixture(scope="module")
def searched(shared_data, tmp_path_factory):
    """A finished 2-trial random search of cnn-classic over `cnn-small` (30 steps a trial)."""
    from training import search

    logdir = tmp_path_factory.mktemp("search") / "runs"
    argv = [
        "cnn-classic",
        "--space",
        "cnn-small",
        "--trials",
        "2",
        "--algorithm",
        "random",
        "--max-steps",
        str(TRIAL_STEPS),
        "--seed",
        "1",
        "--logdir",
        str(logdir),
        "--quiet",
        "--set",
        f"data.dataset=folder:{shared_data / 'mnist5k'}",
        *(a for s in DIGITS for a in ("--set", s)),
        "--set",
        "train.log_every=10",
    ]
    assert search.main(argv) == 0
    (search_dir,) = pathlib.Path(logdir, "cnn-classic-search").iterdir()
    return search_dir, json.loads((search_dir / "search.json").read_text())


def test_each_trial_is_a_normal_run_with_its_hyperparameters(searched):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    search_dir, results = searched
    trials = results["trials"]
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    assert results["request"]["budget"]["max_steps"] == TRIAL_STEPS
    for trial in trials:
        run_dir = pathlib.Path(trial["run_dir"])
        assert run_dir.parent.parent == search_dir / f"trial_{trial['trial']}"
        recipe = json.loads((run_dir / "recipe.json").read_text())
        proposed = trial["hyperparameters"]
        # the proposal is applied (cnn-classic itself has filters 32/64 and dropout 0.5)
        assert recipe["model"]["overrides"]["filters"] == proposed["model.overrides.filters"]
        assert recipe["model"]["overrides"]["dropout"] == proposed["model.overrides.dropout"]
        assert proposed["model.overrides.filters"] in ([4, 8], [8, 8], [8, 16])
        assert recipe["train"]["max_steps"] == TRIAL_STEPS
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["steps"] == TRIAL_STEPS
        assert metrics["validation"]["accuracy"] == pytest.approx(trial["validation"]["accuracy"])
        assert metrics["validation"]["accuracy"] > 0.3  # it trained (chance: 0.1)
        assert (run_dir / "model.keras").is_file()
        # the parameter count is the model's: convs, and the dense layer on 5x5 maps
        f1, f2 = proposed["model.overrides.filters"]
        assert trial["params"] == (9 * f1 + f1) + (9 * f1 * f2 + f2) + (25 * f2 * 10 + 10)

        validation = EventAccumulator(str(run_dir / "validation"))
        validation.Reload()
        assert "epoch_accuracy" in validation.Tags()["tensors"]
        root = EventAccumulator(str(run_dir))
        root.Reload()
        session = root.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
        hparams = metadata.parse_session_start_info_plugin_data(session).hparams
        assert json.loads(hparams["model.overrides.filters"].string_value) == [f1, f2]
        (params,) = root.Tensors("params")
        assert float(tf.make_ndarray(params.tensor_proto)) == trial["params"]


def test_search_state_summary_and_hparams_experiment(searched):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    search_dir, results = searched
    kt_trials = sorted((search_dir / "tuner").glob("trial_*/trial.json"))
    assert len(kt_trials) == 2
    for path in kt_trials:  # KerasTuner's own record holds the objective and params
        kt = json.loads(path.read_text())
        assert kt["status"] == "COMPLETED"
        assert set(kt["metrics"]["metrics"]) == {"accuracy", "params"}
    summary = results["summary"]
    best = max(results["trials"], key=lambda t: (t["validation"]["accuracy"], -t["params"]))
    assert summary["best_trial"] == best["trial"]
    assert summary["accuracy"] == best["validation"]["accuracy"]

    events = EventAccumulator(str(search_dir))
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    experiment = metadata.parse_experiment_plugin_data(content)
    assert {h.name for h in experiment.hparam_infos} == {
        "model.overrides.filters",
        "model.overrides.dropout",
    }
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert {("validation", "epoch_accuracy"), ("", "params")} <= metrics


def test_best_recipe_trains(searched, tmp_path):
    search_dir, results = searched
    best_file = search_dir / "best_recipe.json"
    best = json.loads(best_file.read_text())
    chosen = results["trials"][int(results["summary"]["best_trial"])]["hyperparameters"]
    assert best["name"] == "cnn-classic-searched"
    assert best["model"]["overrides"]["filters"] == chosen["model.overrides.filters"]
    assert best["train"]["max_steps"] == 0  # the recipe's own budget, not the search's
    done = run_module(
        "training",
        "train",
        best_file,
        "--set",
        "train.max_steps=5",
        "--no-export",
        "--logdir",
        tmp_path / "runs",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = pathlib.Path(json.loads(done.stdout.strip().splitlines()[-1])["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "cnn-classic-searched"
    trained = json.loads((run_dir / "recipe.json").read_text())
    assert trained["model"]["overrides"] == best["model"]["overrides"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cnn", "--space", "nope"], "unknown --space 'nope' for model cnn"),
        (["cnn", "--space", "resnet-widths"], "a space of resnet18"),
        (["cnn", "--space", "cnn", "--algorithm", "grid"], "unknown --algorithm 'grid'"),
        (["cnn", "--space", "cnn", "--trials", "0"], "--trials 0"),
        (["no-such-recipe", "--space", "cnn"], "unknown recipe 'no-such-recipe'"),
        (["resnet18-cifar10", "--space", "cnn"], "unknown --space 'cnn' for model resnet18"),
        (["cnn", "--space", "cnn", "--set", "data.dataset=folder:/nowhere"], "/nowhere"),
    ],
)
def test_bad_requests_exit_2_with_nothing_written(argv, message, tmp_path, capsys):
    from training import search

    assert search.main([*argv, "--logdir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_spaces_translate_to_keras_tuner_and_back():
    from training import recipes, search

    space = {
        "model.overrides.filters": {"tuple": [{"choice": [8, 16]}, {"int": [16, 64, 16]}]},
        "optimizer.lr": {"float": [1e-4, 1e-2], "log": True},
        "optimizer.weight_decay": {"choice": [0, 1e-3]},
        "model.overrides.blocks": {"choice": [[1, 1], [2, 2]]},
    }
    hps = search.to_hyperparameters(space)
    names = {h.name: type(h).__name__ for h in hps.space}
    assert names == {
        "model.overrides.filters[0]": "Choice",
        "model.overrides.filters[1]": "Int",
        "optimizer.lr": "Float",
        "optimizer.weight_decay": "Choice",
        "model.overrides.blocks": "Choice",
    }
    assert hps.space[2].sampling == "log"
    values = {
        "model.overrides.filters[0]": 16,
        "model.overrides.filters[1]": 48,
        "optimizer.lr": 0.0031622776601683794,
        "optimizer.weight_decay": 0.001,
        "model.overrides.blocks": "[2, 2]",
        "tuner/epochs": 2,
    }
    recipe = search.apply_values(recipes.resolve("cnn"), space, values)
    assert recipe["model"]["overrides"]["filters"] == [16, 48]
    assert recipe["model"]["overrides"]["blocks"] == [2, 2]
    assert recipe["optimizer"]["lr"] == pytest.approx(0.00316228)
    with pytest.raises(search.BadRequest, match="expected one of"):
        search.to_hyperparameters({"optimizer.lr": {"between": [0, 1]}})
    with pytest.raises(recipes.RecipeError, match="no field 'optimizer.nope'"):
        search.apply_values(
            recipes.resolve("cnn"), {"optimizer.nope": {"choice": [1]}}, {"optimizer.nope": 1}
        )


def test_hyperband_rounds_map_onto_epochs_and_max_steps():
    from training import recipes, search

    cnn = recipes.resolve("cnn")  # 20 epochs, 1,240 steps
    two = search._budget(cnn, {"tuner/epochs": 2})["train"]
    assert (two["epochs"], two["max_steps"]) == (2, 124)
    full = search._budget(cnn, {"tuner/epochs": 20})["train"]
    assert (full["epochs"], full["max_steps"]) == (20, 1240)
    capped = search._budget(cnn, {"tuner/epochs": 5}, max_steps=400)["train"]
    assert (capped["epochs"], capped["max_steps"]) == (5, 100)
    plain = search._budget(cnn, {}, max_steps=30)["train"]
    assert (plain["epochs"], plain["max_steps"]) == (20, 30)
