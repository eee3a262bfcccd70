"""Tasks by name: the per-replica steps of each kind of model (see base.py for the contract)."""

from training.tasks.base import Task
from training.tasks.classification import Classification

TASKS: dict[str, type[Task]] = {Classification.name: Classification}


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name]
