"""Serving signatures per task kind: what an exported SavedModel takes and returns.

Each kind's list of signatures is its record in zoo/tasks.py; the modules here implement it, one
builder per kind registered with `@signature_builder(kind)`. A builder adds the kind's endpoints to
a `keras.export.ExportArchive` for a model and the run's export_info.json, and returns example
inputs of `serving_default` for TF Serving's warmup requests. `serving_default` is always the
tensor-in signature that TFLite converts; the others (bytes in, text in) are for SavedModel /
TF Serving only (TFLite has no image decoding or tokenizers).
"""

import importlib
import pkgutil

from zoo.tasks import check_signatures

SIGNATURES = {}


def signature_builder(kind):
    def decorator(fn):
        SIGNATURES[kind] = fn
        return fn

    return decorator


class _Only:
    """An ExportArchive that keeps only the endpoints asked for, and notes every name offered."""

    def __init__(self, archive, wanted):
        self._archive, self.wanted, self.offered = archive, set(wanted), []

    def add_endpoint(self, name, fn, input_signature=None, **kwargs):
        self.offered.append(name)
        if name in self.wanted:
            self._archive.add_endpoint(name, fn, input_signature=input_signature, **kwargs)

    def track(self, resource):
        self._archive.track(resource)


def add_signatures(kind, archive, model, info, signatures=None) -> dict:
    """Add the kind's endpoints (`signatures`: a subset of its record, None: all of them);
    returns example inputs of serving_default for warmup."""
    wanted = check_signatures(kind, signatures)
    if kind not in SIGNATURES:
        raise ValueError(f"no serving signatures for task {kind!r}")
    only = _Only(archive, wanted)
    example = SIGNATURES[kind](only, model, info)
    if sorted(only.offered) != sorted(check_signatures(kind, None)):
        raise ValueError(  # the builder and the record disagree: a bug, caught by the tests
            f"task {kind!r}: the builder adds {sorted(only.offered)}, its record in zoo/tasks.py "
            f"lists {sorted(check_signatures(kind, None))}"
        )
    return example


# Every module of this package registers its kinds with @signature_builder.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
