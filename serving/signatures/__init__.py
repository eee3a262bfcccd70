"""Serving signatures per task kind: what an exported SavedModel takes and returns.

One module per family registers a builder per task kind with `@signature_builder(kind)`. A builder
adds endpoints to a `keras.export.ExportArchive` for a model and the run's export_info.json, and
returns example inputs of `serving_default` for TF Serving's warmup requests. `serving_default` is
always the float-tensor signature that TFLite converts; the others (bytes in, text in) are for
SavedModel / TF Serving only (TFLite has no image decoding).
"""

import importlib
import pkgutil

SIGNATURES = {}


def signature_builder(kind):
    def decorator(fn):
        SIGNATURES[kind] = fn
        return fn

    return decorator


def add_signatures(kind, archive, model, info) -> dict:
    """Add the kind's endpoints; returns example inputs of serving_default for warmup."""
    if kind not in SIGNATURES:
        raise ValueError(
            f"no serving signatures for task {kind!r} (known: {', '.join(sorted(SIGNATURES))})"
        )
    return SIGNATURES[kind](archive, model, info)


# Every module of this package registers its kinds with @signature_builder.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
