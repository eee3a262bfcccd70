"""Tensors in and out of TF Serving's REST JSON (api_rest.md), validated against a signature.

Row format (`instances`) and columnar format (`inputs`) become a dict of numpy arrays; outputs
become `predictions` (row) or `outputs` (columnar). Strings travel as UTF-8 or as `{"b64": ...}`;
output tensors whose name ends in `_bytes` are written as base64. Every malformed value raises
`ServingError(INVALID_ARGUMENT)` with a message in the spirit of TF Serving's json_tensor.cc.
"""

import base64
import binascii
import itertools
import json
import math
import re
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


# Numbers that may not fit a double: an exponent of three digits or more, or 300+ digits in a row.
_MAYBE_HUGE = re.compile(rb"[eE][+-]?0*[1-9][0-9]{2}|[0-9]{300}")
_UTF8_BOM = b"\xef\xbb\xbf"


class JsonDocument(dict):
    """A parsed request. `inf_is_overflow`: the body has no Infinity literal, so an infinite
    number in it can only be one too big for a double (1e400), which TF Serving refuses."""

    inf_is_overflow = False


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise _NumberTooBig(text)
    return value


class _NumberTooBig(ValueError):
    pass


def parse_json_body(body: bytes) -> dict:
    """The request document: a JSON object in UTF-8, as TF Serving's RapidJSON reads it.

    NaN/Infinity literals are accepted (TF Serving does); a number that overflows a double
    (1e400), a byte-order mark, UTF-16/32 or invalid UTF-8 are refused. Overflow costs nothing on
    the common path: without an `Infinity` in the body, json's C parser runs as is and an infinite
    float tensor value is reported later (JsonDocument.inf_is_overflow); only bodies that hold
    both an `Infinity` and a possibly huge number are parsed number by number.
    """
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    if (
        body.startswith(_UTF8_BOM)
        or body[:1] in (b"\xff", b"\xfe", b"\x00")
        or body[1:2] == b"\x00"
    ):
        raise invalid(
            "JSON Parse error: Invalid value. (a byte-order mark or UTF-16/32 text; send UTF-8)"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(
            f"JSON Parse error: Invalid encoding in string (at byte {exc.start})"
        ) from None
    literal_infinity = b"Infinity" in body
    try:
        if literal_infinity and _MAYBE_HUGE.search(body):
            doc = json.loads(text, parse_float=_finite_float)
        else:
            doc = json.loads(text)
    except _NumberTooBig as exc:
        raise number_too_big(exc) from None
    except RecursionError:
        raise invalid("JSON Parse error: nesting too deep") from None
    except ValueError as exc:
        raise invalid(f"JSON Parse error: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {_short(doc)} Is not object")
    doc = JsonDocument(doc)
    doc.inf_is_overflow = not literal_infinity
    return doc


def number_too_big(value) -> ServingError:
    return invalid(f"JSON Parse error: Number too big to be stored in double: {_clip(value)}")


def _clip(exc, limit=40) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def signature_name_from_json(doc: dict) -> str:
    name = doc.get(SIGNATURE, "")
    if not isinstance(name, str):
        raise invalid(
            f"JSON Value: {_short(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def inputs_from_json(
    doc: dict, specs: dict[str, TensorSpecInfo], max_instances: int | None = None
) -> tuple[dict, str]:
    """(inputs as numpy arrays, "row" | "columnar") from a predict request document.

    With `max_instances`, a request of more rows (instances, or dim 0 of a columnar input) is
    refused before any tensor is built.
    """
    if not specs:
        raise invalid("Failed to get input map for signature")
    if INSTANCES in doc and INPUTS in doc:
        raise invalid(
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    if INSTANCES in doc:
        instances = doc[INSTANCES]
        if max_instances and isinstance(instances, list) and len(instances) > max_instances:
            raise too_many_instances("Request", len(instances), max_instances)
        return _from_instances(instances, specs, _overflow(doc)), "row"
    if INPUTS in doc:
        value = doc[INPUTS]
        if max_instances:
            named = value.items() if _is_named_object(value) else [(next(iter(specs)), value)]
            for name, tensor in named:
                if isinstance(tensor, list) and len(tensor) > max_instances:
                    raise too_many_instances(f"Input '{name}'", len(tensor), max_instances)
        return _from_inputs(value, specs, _overflow(doc)), "columnar"
    raise invalid("Missing 'inputs' or 'instances' key")


def _overflow(doc) -> bool:
    return getattr(doc, "inf_is_overflow", False)


def too_many_instances(what: str, n: int, limit: int) -> ServingError:
    return invalid(
        f"{what} has {n} instances (dimension 0), more than the server's limit of "
        f"--max-instances={limit}"
    )


def _from_instances(instances, specs, inf_is_overflow=False):
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
            return {name: json_to_array(instances, spec, inf_is_overflow)}
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
                arr = json_to_array(value, specs[name], inf_is_overflow)
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


def _from_inputs(value, specs, inf_is_overflow=False):
    if not _is_named_object(value):
        if len(specs) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        ((name, spec),) = specs.items()
        return {name: json_to_array(value, spec, inf_is_overflow)}
    out = {}
    for name, spec in specs.items():
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        out[name] = json_to_array(value[name], spec, inf_is_overflow)
    extra = sorted(set(value) - set(specs))
    if extra:
        raise invalid(f"Unexpected named input(s): {', '.join(extra)} in 'inputs' object.")
    return out


def _is_named_object(value) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def json_to_array(value, spec: TensorSpecInfo, inf_is_overflow: bool = False) -> np.ndarray:
    """A (nested) JSON list as a dense numpy array of the spec's dtype, or INVALID_ARGUMENT.

    `inf_is_overflow`: the request had no Infinity literal, so an infinite value was a number
    too big for a double (see parse_json_body)."""
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat = _flatten_regular(value, shape)
    if flat is None:  # not evenly nested: the slow walk finds where, for the message
        flat = []
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
        _check_lossless(flat, kinds, arr, spec, inf_is_overflow)
    return arr


def _check_lossless(flat, kinds, arr, spec, inf_is_overflow=False):
    """TF Serving refuses numbers a float type cannot hold (out of range, or big integers)."""
    bad = None
    if not np.isfinite(arr).all():
        if inf_is_overflow:
            wide = np.asarray(flat, dtype=np.float64)
            if np.isinf(wide).any():
                raise number_too_big(flat[int(np.argmax(np.isinf(wide)))])
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


def _flatten_regular(value, shape):
    """The leaves of an evenly nested list of `shape`, level by level in C loops (map, chain);
    None when some list is not where or as long as the shape says."""
    if not shape:
        return [value]
    level = value
    for depth, size in enumerate(shape):
        if depth:
            if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
                return None
            level = list(itertools.chain.from_iterable(level))
        elif len(level) != size:
            return None
    return level if isinstance(level, list) else list(level)


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


# ---- gRPC TensorProtos --------------------------------------------------------------------------

# TensorProto value fields per dtype (tensor.proto), and values per element in each.
_PROTO_FIELDS = {
    "float32": ("float_val", 1),
    "float64": ("double_val", 1),
    "float16": ("half_val", 1),
    "bfloat16": ("half_val", 1),
    "int8": ("int_val", 1),
    "int16": ("int_val", 1),
    "int32": ("int_val", 1),
    "uint8": ("int_val", 1),
    "uint16": ("int_val", 1),
    "int64": ("int64_val", 1),
    "uint32": ("uint32_val", 1),
    "uint64": ("uint64_val", 1),
    "bool": ("bool_val", 1),
    "string": ("string_val", 1),
    "complex64": ("scomplex_val", 2),
    "complex128": ("dcomplex_val", 2),
}


_DTYPES: dict = {}  # DataType enum -> (TF name, bytes per element, value field, values each)


def _dtype_info(enum: int):
    info = _DTYPES.get(enum)
    if info is None:
        import tensorflow as tf

        try:
            dtype = tf.dtypes.as_dtype(enum)
        except TypeError:
            return None
        field, per_element = _PROTO_FIELDS.get(dtype.name, (None, 1))
        size = 1 if dtype == tf.string else dtype.size
        info = _DTYPES[enum] = (dtype.name, size, field, per_element)
    return info


def array_from_proto(name: str, proto, max_instances: int | None, max_bytes: int) -> np.ndarray:
    """A request's TensorProto as a numpy array, checked before anything is materialised.

    TF's rules: a known shape with no negative dims; `tensor_content` of exactly
    elements x itemsize bytes; or typed values, exactly one per element, or a single one that
    fills the shape (or none for an empty tensor). Dimension 0 is held to `max_instances` and the
    materialised size to `max_bytes`, so a 100-byte request cannot ask for 5,000 images.
    """
    import tensorflow as tf

    what = f"Input '{name}'"
    info = _dtype_info(proto.dtype) if proto.dtype else None
    if info is None:
        raise invalid(f"{what} has an invalid dtype ({proto.dtype})")
    type_name, itemsize, field, per_element = info
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise invalid(f"{what} has a tensor_shape of unknown rank; a request tensor needs a shape")
    dims = [d.size for d in shape.dim]
    elements = 1
    for d in dims:
        if d < 0:
            raise invalid(f"{what} has a negative dimension in its shape {dims}")
        elements *= d
    if max_instances and dims and dims[0] > max_instances:
        raise too_many_instances(what, dims[0], max_instances)
    nbytes = elements * itemsize
    if nbytes > max_bytes:
        raise invalid(
            f"{what} of shape {dims} and type {type_name} would take {nbytes} bytes, more than "
            f"the server's limit of {max_bytes} bytes"
        )
    content = len(proto.tensor_content)
    if content:
        if type_name == "string":
            raise invalid(f"{what}: string tensors cannot use tensor_content")
        if content != nbytes:
            raise invalid(
                f"{what} has tensor_content of {content} bytes, but its shape "
                f"{dims} of {type_name} needs {nbytes}"
            )
    elif field is not None:
        values = getattr(proto, field)
        count = len(values) // per_element
        if count != elements and count != 1 and not (count == 0 and elements == 0):
            raise invalid(
                f"{what} has {count} values in {field}, but its shape {dims} holds {elements} "
                "(send one value per element, or a single value to fill the shape)"
            )
        if type_name == "string" and count:
            total = sum(map(len, values)) * (elements if count == 1 else 1)
            if total > max_bytes:
                raise invalid(
                    f"{what} would take {total} bytes of strings, more than the server's limit "
                    f"of {max_bytes} bytes"
                )
    else:
        raise ServingError(
            "UNIMPLEMENTED", f"{what}: tensors of type {type_name} are not supported"
        )
    try:
        return tf.make_ndarray(proto)
    except Exception as exc:  # noqa: BLE001 - anything left is the request's fault
        raise invalid(f"Failed to convert input tensor '{name}': {exc}") from None


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
