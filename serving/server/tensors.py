"""Tensors in and out of TF Serving's REST JSON (api_rest.md), validated against a signature.

Row format (`instances`) and columnar format (`inputs`) become a dict of numpy arrays; outputs
become `predictions` (row) or `outputs` (columnar). Strings travel as UTF-8 or as `{"b64": ...}`;
output tensors whose name ends in `_bytes` are written as base64. Every malformed value raises
`ServingError(INVALID_ARGUMENT)` with a message in the spirit of TF Serving's json_tensor.cc.
"""

import base64
import binascii
import json
from dataclasses import dataclass

import numpy as np

from serving.server.errors import ServingError, invalid

INSTANCES, INPUTS, SIGNATURE = "instances", "inputs", "signature_name"
BYTES_SUFFIX = "_bytes"


@dataclass(frozen=True)
class TensorSpecInfo:
    """What a signature says about one input or output: dtype family and (partial) shape."""

    name: str
    dtype_name: str  # TF's DataTypeString: "float", "int64", "string", ...
    np_dtype: object  # numpy dtype; `object` for strings
    kind: str  # "float" | "int" | "uint" | "bool" | "string" | "other"
    shape: tuple | None  # dims with None for unknown; None for unknown rank


def spec_kind(np_dtype) -> str:
    if np_dtype is object:
        return "string"
    dt = np.dtype(np_dtype)
    if dt == np.bool_:
        return "bool"
    if dt.kind == "f" or dt.name == "bfloat16":
        return "float"
    if dt.kind == "i":
        return "int"
    if dt.kind == "u":
        return "uint"
    return "other"


def parse_json_body(body: bytes) -> dict:
    """The request document: a JSON object (NaN/Infinity accepted, as TF Serving does)."""
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise invalid("JSON Parse error: nesting too deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"JSON Parse error: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {_short(doc)} Is not object")
    return doc


def signature_name_from_json(doc: dict) -> str:
    name = doc.get(SIGNATURE, "")
    if not isinstance(name, str):
        raise invalid(
            f"JSON Value: {_short(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def inputs_from_json(doc: dict, specs: dict[str, TensorSpecInfo]) -> tuple[dict, str]:
    """(inputs as numpy arrays, "row" | "columnar") from a predict request document."""
    if not specs:
        raise invalid("Failed to get input map for signature")
    if INSTANCES in doc and INPUTS in doc:
        raise invalid(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if INSTANCES in doc:
        return _from_instances(doc[INSTANCES], specs), "row"
    if INPUTS in doc:
        return _from_inputs(doc[INPUTS], specs), "columnar"
    raise invalid("Missing 'inputs' or 'instances' key")


def _from_instances(instances, specs):
    if not isinstance(instances, list):
        raise invalid("Excepting 'instances' to be an list/array")
    if not instances:
        raise invalid("No values in 'instances' array")
    first = instances[0]
    named = _is_named_object(first)
    if not named:
        if len(specs) > 1:
            raise invalid(
                "instances is a plain list, but expecting list of objects as multiple input "
                "tensors required as per tensorinfo_map"
            )
        ((name, spec),) = specs.items()
        for i, item in enumerate(instances):
            if _is_named_object(item):
                raise invalid(f"Expecting value/list but got object at item {i} of input list")
        try:
            return {name: json_to_array(instances, spec)}
        except ServingError as exc:
            raise invalid(f"Failed to process 'instances' list. Error: {exc.message}") from None
    rows: dict[str, list] = {name: [] for name in specs}
    for i, item in enumerate(instances):
        if not _is_named_object(item):
            raise invalid(f"Expecting object but got list at item {i} of input list")
        if set(item) != set(specs):
            raise invalid(
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                f"{_short(item)} keys must be equal to: {','.join(sorted(specs))}"
            )
        for name, value in item.items():
            try:
                arr = json_to_array(value, specs[name])
            except ServingError as exc:
                raise invalid(
                    f"Failed to process element: {i} key: {name} of 'instances' list. "
                    f"Error: {exc.message}"
                ) from None
            if rows[name] and rows[name][0].shape != arr.shape:
                raise invalid(
                    f"Failed to process element: {i} key: {name} of 'instances' list. "
                    f"Error: Expecting shape {list(rows[name][0].shape)} but got: {list(arr.shape)}"
                )
            rows[name].append(arr)
    return {name: np.stack(arrays) for name, arrays in rows.items()}


def _from_inputs(value, specs):
    if not _is_named_object(value):
        if len(specs) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        ((name, spec),) = specs.items()
        return {name: json_to_array(value, spec)}
    out = {}
    for name, spec in specs.items():
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        out[name] = json_to_array(value[name], spec)
    extra = sorted(set(value) - set(specs))
    if extra:
        raise invalid(f"Unexpected named input(s): {', '.join(extra)} in 'inputs' object.")
    return out


def _is_named_object(value) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def json_to_array(value, spec: TensorSpecInfo) -> np.ndarray:
    """A (nested) JSON list as a dense numpy array of the spec's dtype, or INVALID_ARGUMENT."""
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list = []
    _flatten(value, shape, 0, flat)
    kinds = set(map(type, flat))
    if list in kinds:
        raise invalid(f"Encountered list at unexpected level: {len(shape)} expected < {len(shape)}")
    kind = spec.kind
    if kind == "string":
        data = [_to_bytes(v, spec) for v in flat]
        arr = np.empty(len(data), dtype=object)
        arr[:] = data
        return arr.reshape(shape)
    if kind == "float":
        _check_types(flat, kinds, {int, float}, spec)
    elif kind in ("int", "uint"):
        _check_types(flat, kinds, {int}, spec)
        if flat:
            lo, hi = min(flat), max(flat)
            info = np.iinfo(spec.np_dtype)
            if lo < info.min or hi > info.max:
                bad = lo if lo < info.min else hi
                raise invalid(f"JSON Value: {bad} is out of range for type: {spec.dtype_name}")
    elif kind == "bool":
        _check_types(flat, kinds, {bool}, spec)
    else:
        raise ServingError(
            "UNIMPLEMENTED",
            f"Conversion of JSON values to type: {spec.dtype_name} is not supported",
        )
    try:
        with np.errstate(over="ignore"):
            arr = np.asarray(flat, dtype=spec.np_dtype).reshape(shape)
    except (OverflowError, ValueError, TypeError) as exc:
        raise invalid(f"Cannot convert JSON values to {spec.dtype_name}: {exc}") from None
    if kind == "float" and arr.size:
        _check_lossless(flat, kinds, arr, spec)
    return arr


def _check_lossless(flat, kinds, arr, spec):
    """TF Serving refuses numbers a float type cannot hold (out of range, or big integers)."""
    bad = None
    if not np.isfinite(arr).all():
        wide = np.asarray(flat, dtype=np.float64)
        overflow = ~np.isfinite(arr.reshape(-1)) & np.isfinite(wide)
        if overflow.any():
            bad = flat[int(np.argmax(overflow))]
    if bad is None and int in kinds and arr.dtype.itemsize < 8:
        max_int = 2 ** (np.finfo(arr.dtype).nmant + 1) - 1
        bad = next((v for v in flat if type(v) is int and abs(v) > max_int), None)
    if bad is not None:
        raise invalid(
            f"Cannot convert JSON value: {bad} to {spec.dtype_name} without loss of precision."
        )


def _flatten(value, shape, level, out):
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(
                f"JSON Value: {_short(value)} found at incorrect level: {level} in the JSON "
                f"DOM. Expected at level: {rank} (a tensor's lists must nest evenly)"
            )
        out.append(value)
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    if level == rank - 1:
        out.extend(value)  # leaves; a nested list among them is caught by the type check
        return
    for item in value:
        _flatten(item, shape, level + 1, out)


def _check_types(flat, kinds, allowed, spec):
    if kinds <= allowed:
        return
    bad = next(v for v in flat if type(v) not in allowed)
    raise invalid(
        f"JSON Value: {_short(bad)} Type: {_json_type(bad)} is not of expected type: "
        f"{spec.dtype_name}"
    )


def _to_bytes(value, spec) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    if isinstance(value, dict):
        if not _is_b64(value):
            raise invalid(f"JSON Value: {_short(value)} not formatted correctly for base64 data")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            # TF Serving also accepts the URL-safe alphabet.
            try:
                return base64.b64decode(value["b64"], altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise invalid("Unable to base64 decode") from None
    raise invalid(
        f"JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: "
        f"{spec.dtype_name}"
    )


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    return "Object"


def _short(value, limit: int = 200) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ---- outputs --------------------------------------------------------------------------------


def array_to_json(name: str, arr: np.ndarray):
    """A numpy array as nested JSON lists (strings UTF-8, or b64 for `*_bytes` names)."""
    if arr.dtype == object or arr.dtype.kind in "SU":
        as_b64 = name.endswith(BYTES_SUFFIX)
        flat = [_bytes_out(v, as_b64) for v in arr.reshape(-1).tolist()]
        return _nest(flat, arr.shape)
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float32)
        return arr.tolist()
    if arr.dtype.kind in "iub":
        return arr.tolist()
    raise ServingError(
        "INVALID_ARGUMENT", f"Failed to write JSON value for tensor type: {arr.dtype.name}"
    )


def _bytes_out(value, as_b64):
    if isinstance(value, str):
        value = value.encode()
    if as_b64:
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.decode("utf-8", errors="replace")


def _nest(flat, shape):
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def outputs_to_json(outputs: dict[str, np.ndarray], fmt: str) -> dict:
    """The response document: {"predictions": ...} for row requests, {"outputs": ...} otherwise."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    if fmt == "columnar":
        if len(outputs) == 1:
            ((name, arr),) = outputs.items()
            return {"outputs": array_to_json(name, arr)}
        return {"outputs": {name: array_to_json(name, arr) for name, arr in outputs.items()}}
    batch = None
    for name, arr in outputs.items():
        if arr.ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and arr.shape[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {arr.shape[0]} "
                f"expecting: {batch}"
            )
        batch = arr.shape[0]
    if len(outputs) == 1:
        ((name, arr),) = outputs.items()
        return {"predictions": array_to_json(name, arr)}
    columns = {name: array_to_json(name, arr) for name, arr in outputs.items()}
    return {"predictions": [{name: col[i] for name, col in columns.items()} for i in range(batch)]}


def dumps(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
