"""The house rules that a reader of the README relies on: imports point one way, and the
registries of models, task kinds, training tasks, serving signatures and export formats agree
(README: "Layout" and "Adding a model, a task, an export format")."""

import ast
import pathlib
import re

import pytest

import zoo
from serving import exporters, signatures
from training import tasks

REPO = pathlib.Path(__file__).resolve().parents[1]

# package -> top-level modules it must never import
FORBIDDEN = {
    "zoo": {
        "tensorflow",
        "training",
        "serving",
        "textkit",
        "console",
        "saliency",
        "evaluation",
        "boxkit",
    },
    "training": {"serving"},
    "serving": {"training"},
    "textkit": {"training", "serving"},
    "saliency": {"training", "serving"},
    "boxkit": {"training", "serving", "zoo"},
    "evaluation": {"training", "serving", "zoo"},
    "console": {"zoo", "training", "serving", "textkit", "saliency", "evaluation", "boxkit"},
}


def imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    offending = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
    }
    assert not {k: v for k, v in offending.items() if v}


def test_training_does_not_even_mention_importing_serving():
    """The issue's own check: `grep -rn "from serving\\|import serving" training/` is empty."""
    pattern = re.compile(r"from serving|import serving")
    hits = [
        f"{path.relative_to(REPO)}:{n}"
        for path in (REPO / "training").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not hits


def test_every_model_names_a_task_kind_that_training_and_serving_implement():
    for name in zoo.list_models():
        assert zoo.get_spec(name).task in zoo.TASK_KINDS, name
    # every kind is trained by a task (a task may train an existing kind: distillation trains
    # classifiers) and built by a serving signature builder
    assert {task.export_kind() for task in tasks.TASKS.values()} == set(zoo.TASK_KINDS)
    assert set(signatures.SIGNATURES) == set(zoo.TASK_KINDS)
    for kind in zoo.TASK_KINDS.values():
        assert next(iter(kind.signatures)) == "serving_default", kind.name


def test_a_model_with_an_unknown_task_kind_does_not_register():
    with pytest.raises(ValueError, match="unknown task 'telepathy'"):
        zoo.register("mind_reader", task="telepathy", input_shape=(1,), citation="")


def test_requested_signatures_are_checked_against_the_kind():
    assert zoo.check_signatures("classification", None) == [
        "serving_default",
        "predict_image_bytes",
        "explain_image_bytes",
    ]
    assert zoo.check_signatures("classification", ["predict_image_bytes"]) == [
        "serving_default",
        "predict_image_bytes",
    ]
    with pytest.raises(ValueError, match=r"no serving signature 'generate' \(known: serving_de"):
        zoo.check_signatures("classification", ["generate"])


def test_a_builder_that_adds_other_signatures_than_its_record_fails():
    class Archive:
        def add_endpoint(self, *args, **kwargs):
            pass

        def track(self, resource):
            pass

    def builder(archive, model, info):
        archive.add_endpoint("serving_default", None)
        archive.add_endpoint("surprise", None)
        return {}

    saved = signatures.SIGNATURES["autoencoder"]
    signatures.SIGNATURES["autoencoder"] = builder
    try:
        with pytest.raises(ValueError, match="its record in zoo/tasks.py"):
            signatures.add_signatures("autoencoder", Archive(), None, {})
    finally:
        signatures.SIGNATURES["autoencoder"] = saved


def test_every_export_format_is_one_module_with_its_own_tests():
    modules = sorted(p.stem for p in (REPO / "serving" / "exporters").glob("[!_]*.py"))
    assert modules == sorted(exporters.FORMATS)
    for name in exporters.FORMATS:
        assert (REPO / "tests" / "serving" / f"test_export_{name}.py").is_file(), name


def test_every_training_tool_is_a_module_with_main():
    import importlib

    from training import cli

    for name, (module, _) in cli.TOOLS.items():
        assert callable(importlib.import_module(module).main), name


def test_files_the_readme_names_for_adding_things_exist():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Adding a model, a task, an export format", 1)[1]
    named = set(re.findall(r"`((?:zoo|training|serving|tests)/[\w/]+\.py)`", section))
    assert named, "the section names no files"
    for path in named:
        assert (REPO / path).is_file(), path


def test_every_training_extension_is_a_module_with_a_recipe_section():
    from training import extensions, recipes

    modules = sorted(p.stem for p in (REPO / "training" / "extensions").glob("[!_]*.py"))
    sections = {
        cls.__module__.rsplit(".", 1)[1]: name for name, cls in extensions.EXTENSIONS.items()
    }
    assert sorted(sections) == modules
    for name, cls in extensions.EXTENSIONS.items():
        assert name == cls.section and name not in ("model", "data", "task", "train")
        assert recipes.resolve("cnn")[name] == cls.defaults  # every recipe has the section
        assert not cls.enabled(cls.defaults), f"{name} is on by default"
