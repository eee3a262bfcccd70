"""REST JSON <-> tensors for dtypes and shapes the cnn fixture does not have (no server needed)."""

import json

import numpy as np
import pytest

from serving.server.errors import ServingError
from serving.server.tensors import (
    TensorSpecInfo,
    inputs_from_json,
    json_to_array,
    outputs_to_json,
    parse_json_body,
    spec_kind,
)


def spec(name, np_dtype, shape):
    dtype_name = "string" if np_dtype is object else np.dtype(np_dtype).name
    return TensorSpecInfo(name, dtype_name, np_dtype, spec_kind(np_dtype), shape)


def test_dtypes():
    assert json_to_array([[1, 2], [3, 4]], spec("x", np.int32, (None, 2))).dtype == np.int32
    assert json_to_array([True, False], spec("b", np.bool_, (None,))).tolist() == [True, False]
    assert json_to_array(7, spec("s", np.int64, ())).shape == ()
    assert json_to_array([0, 255], spec("u", np.uint8, (None,))).tolist() == [0, 255]
    strings = json_to_array(["héllo", {"b64": "AAE="}], spec("t", object, (None,)))
    assert strings.tolist() == ["héllo".encode(), b"\x00\x01"]
    nan = parse_json_body(b'{"x": [NaN, Infinity, -Infinity, 1e3]}')["x"]
    got = json_to_array(nan, spec("f", np.float64, (None,)))
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == -np.inf and got[3] == 1000.0
    assert json_to_array([], spec("e", np.float32, (None,))).shape == (0,)


@pytest.mark.parametrize(
    "value,np_dtype,message",
    [
        ([1.5], np.int32, "not of expected type: int32"),
        ([2**31], np.int32, "out of range"),
        ([-1], np.uint8, "out of range"),
        ([1], np.bool_, "not of expected type: bool"),
        ([True], np.int64, "not of expected type"),
        ([{"b64": "AAE="}], np.int64, "not of expected type"),
        ([{"b64": 5}], object, "not formatted correctly for base64"),
        ([[1, 2], 3], np.int64, "incorrect level"),
        ([1j], np.complex64, "not supported"),
    ],
)
def test_dtype_errors(value, np_dtype, message):
    with pytest.raises(ServingError, match=message):
        json_to_array(value, spec("x", np_dtype, None))


def test_row_format_with_several_named_inputs():
    specs = {"tag": spec("tag", object, (None,)), "signal": spec("signal", np.float32, (None, 3))}
    doc = {"instances": [{"tag": "a", "signal": [1, 2, 3]}, {"tag": "b", "signal": [4, 5, 6]}]}
    inputs, fmt = inputs_from_json(doc, specs)
    assert fmt == "row"
    assert inputs["tag"].tolist() == [b"a", b"b"] and inputs["signal"].shape == (2, 3)
    with pytest.raises(ServingError, match="plain list"):
        inputs_from_json({"instances": [[1, 2, 3]]}, specs)
    with pytest.raises(ServingError, match="plain value/list"):
        inputs_from_json({"inputs": [[1, 2, 3]]}, specs)
    columnar, fmt = inputs_from_json({"inputs": {"tag": ["x"], "signal": [[1, 2, 3]] * 4}}, specs)
    assert fmt == "columnar" and columnar["signal"].shape == (4, 3)  # 0th dims may differ


def test_outputs():
    probs = np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)
    raw = np.array([b"\xff\x00", b"ok"], dtype=object)
    labels = np.array([b"cat", b"dog"], dtype=object)
    row = outputs_to_json({"p": probs, "image_bytes": raw, "labels": labels}, "row")
    assert row["predictions"][0] == {
        "p": [0.25, 0.75],
        "image_bytes": {"b64": "/wA="},
        "labels": "cat",
    }
    assert outputs_to_json({"p": probs}, "row") == {"predictions": probs.tolist()}
    assert outputs_to_json({"p": probs}, "columnar") == {"outputs": probs.tolist()}
    both = outputs_to_json({"p": probs, "labels": labels}, "columnar")
    assert both["outputs"]["labels"] == ["cat", "dog"]
    # float32 values survive the trip through JSON exactly.
    x = np.array([0.1, 1 / 3, 1e-8], np.float32)
    back = np.array(json.loads(json.dumps(outputs_to_json({"x": x}, "row")))["predictions"])
    assert np.array_equal(back.astype(np.float32), x)
    with pytest.raises(ServingError, match="inconsistent batch size"):
        outputs_to_json({"a": np.zeros(2), "b": np.zeros(3)}, "row")
    with pytest.raises(ServingError, match="no shape information"):
        outputs_to_json({"a": np.float32(1.0).reshape(())}, "row")
    assert outputs_to_json({"a": np.float32(1.0).reshape(())}, "columnar") == {"outputs": 1.0}
