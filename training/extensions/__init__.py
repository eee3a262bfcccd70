"""Training extensions: what a recipe can add to any run of any task, each through its own recipe
section (`prune`, ...), called by the loop at fixed points so no extension is a special case in it.

An extension is a subclass of `Extension` in a module of this package, with a `section` name and
that section's `defaults` (so `--set <section>.<field>=...` works on every recipe). It is active
when `enabled(config)` says so; then the loop calls, in this order:

- `wrap(model)` once the model is built, inside the strategy's scope: may return another model;
- `build(model)`: create variables (in scope); `checkpoint()` returns what the run's checkpoints
  keep of it (restored by `--resume`);
- `replica_batch(model, batch)` inside each replica's train step, before the task's step: may
  change the batch (e.g. adversarial examples);
- `after_step(model, step)` inside the compiled loop, in cross-replica context, after each
  optimizer step (`step`: the run's step count after it, an int64 tensor);
- `epoch_scalars(model)` on the chief after each epoch: scalars logged under train/ as
  `<section>/<name>`;
- `unwrap(model)` when model.keras is saved, in reverse order: the model to keep there (and so to
  export), when `wrap` returned one for training only (e.g. with fake-quantizing layers that
  serving knows nothing of). Checkpoints, validation and `RunResult.model` keep the wrapped one.
"""

import importlib
import pkgutil


class Extension:
    section = ""
    defaults: dict = {}

    def __init__(self, config: dict, total_steps: int):
        self.config, self.total_steps = config, total_steps

    @classmethod
    def enabled(cls, config: dict) -> bool:
        raise NotImplementedError

    def wrap(self, model):
        return model

    def build(self, model):
        pass

    def checkpoint(self):
        return None

    def replica_batch(self, model, batch):
        return batch

    def after_step(self, model, step):
        pass

    def epoch_scalars(self, model) -> dict:
        return {}

    def unwrap(self, model):
        return model


EXTENSIONS: dict[str, type[Extension]] = {}


def _register(cls):
    for sub in cls.__subclasses__():
        EXTENSIONS[sub.section] = sub
        _register(sub)


def active(recipe: dict, total_steps: int) -> list[Extension]:
    """The recipe's enabled extensions, in their sections' order."""
    return [
        cls(recipe[section], total_steps)
        for section, cls in EXTENSIONS.items()
        if cls.enabled(recipe[section])
    ]


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
_register(Extension)
