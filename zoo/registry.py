"""The model registry: every zoo model is buildable by name, with overrides.

A family module registers each public builder with `@register(...)`; `zoo.build(name, **overrides)`
calls it with the spec's defaults, then the `tiny` set (if asked), then the caller's overrides.
"""

import dataclasses
import difflib
import inspect
from collections.abc import Callable

import keras

from zoo.tasks import get_kind


class UnknownModelError(ValueError):
    """Raised for a model name that is not registered."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., keras.Model]
    task: str  # its task kind (zoo/tasks.py): "classification", "language_model", ...
    input_shape: tuple  # default input shape, without the batch dimension
    citation: str
    tiny: dict  # overrides that make a model small enough to train one step in a test
    defaults: dict  # overrides always applied before the caller's
    family: str
    summary: str

    def arguments(self) -> list[str]:
        return list(inspect.signature(self.builder).parameters)


_REGISTRY: dict[str, ModelSpec] = {}


def register(name, *, task, input_shape, citation, tiny=None, **defaults):
    """Decorator: register `fn(**kwargs) -> keras.Model` under `name`."""

    get_kind(task)  # an unknown kind fails at import, not after training

    def decorator(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip()
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=fn,
            task=task,
            input_shape=tuple(input_shape) if input_shape is not None else None,
            citation=citation,
            tiny=dict(tiny or {}),
            defaults=dict(defaults),
            family=fn.__module__.rsplit(".", 1)[-1],
            summary=doc.splitlines()[0] if doc else "",
        )
        return fn

    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (known: {', '.join(list_models())})"
        ) from None


def build(name: str, *, tiny: bool = False, **overrides) -> keras.Model:
    """Build a registered model: spec defaults < tiny overrides < caller overrides."""
    spec = get_spec(name)
    kwargs = dict(spec.defaults)
    if spec.input_shape is not None and "input_shape" in spec.arguments():
        kwargs["input_shape"] = spec.input_shape
    if tiny:
        kwargs.update(spec.tiny)
    kwargs.update(overrides)
    accepted = spec.arguments()
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ValueError(
            f"model {name!r} has no argument {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(accepted)}"
        )
    return spec.builder(**kwargs)
