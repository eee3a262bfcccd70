"""Tasks by name: the per-replica steps of each kind of model (see base.py for the contract).

Every module in this package is imported; each `Task` subclass with a `name` is registered.
"""

import importlib
import pkgutil

from training.tasks.base import Task

TASKS: dict[str, type[Task]] = {}
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def _register(cls):
    for sub in cls.__subclasses__():
        if sub.name not in TASKS and sub.name != Task.name:
            TASKS[sub.name] = sub
        _register(sub)


_register(Task)


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name]
