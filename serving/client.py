"""`python -m serving predict --model cnn [--grpc] FILE...`: print a served model's top classes,
or a detector's boxes.

Talks to any TF Serving (the real one or the embedded server): REST on 8501 by default, gRPC on
8500 with `--grpc`. It reads the model's metadata first and picks the signature: for image files,
`predict_image_bytes` (a classifier) or `detect_image_bytes` (a detector) when the model has it,
and for WAV files `classify_audio_bytes` (a keyword spotter) or `transcribe_audio_bytes` (a
speech recognizer: its transcript is printed) (the encoded file is sent as is,
base64 in JSON), else `serving_default` with the image decoded
here (and resized to the signature's input shape where it has one). `.npy` files are sent as
arrays. Prints the top classes per file, with the model's label for the best one when the
signature returns `labels`; for a detector (outputs named as the TF Object Detection API names
them), each box scoring at least `--min-score`: label, score, (ymin, xmin, ymax, xmax)
normalized and in the image's pixels. `--draw out.png` writes the boxes over the image
(`out-2.png`, ... for the files after the first). A recommender takes no file: `--history
12,51,7` (item ids, oldest first: SASRec) or `--user 3` (two towers, DCN) calls its `recommend`
signature and prints the top item ids with their scores, the already-seen items left out.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

BYTES_SIGNATURES = (
    "predict_image_bytes",
    "detect_image_bytes",
    "classify_audio_bytes",
    "transcribe_audio_bytes",
)
DTYPES = {"DT_UINT8": np.uint8, "DT_INT32": np.int32, "DT_INT64": np.int64}
DEFAULT_SIGNATURE = "serving_default"


class ClientError(Exception):
    pass


# ---- signatures from metadata (the JSON form, as REST returns it) ------------------------------


def _inputs_of(signature: dict) -> dict:
    """{input name: (dtype, shape)} of one signature_def in metadata JSON."""
    out = {}
    for name, info in signature.get("inputs", {}).items():
        shape = info.get("tensor_shape", {})
        dims = None if shape.get("unknown_rank") else [int(d["size"]) for d in shape.get("dim", [])]
        out[name] = (info.get("dtype"), dims)
    return out


def choose_signature(signatures: dict, files, requested=None) -> str:
    if requested:
        if requested not in signatures:
            known = ", ".join(k for k in sorted(signatures) if not k.startswith("__"))
            raise ClientError(f"the model has no signature {requested!r} (it has: {known})")
        return requested
    encoded = all(Path(f).suffix.lower() != ".npy" for f in files)
    for name in BYTES_SIGNATURES:
        if encoded and name in signatures:
            return name
    if DEFAULT_SIGNATURE in signatures:
        return DEFAULT_SIGNATURE
    raise ClientError(
        f"the model has none of {', '.join(BYTES_SIGNATURES)} or serving_default; use --signature"
    )


def build_inputs(signature: dict, files) -> dict:
    """{input name: numpy batch} for the files, shaped for the signature's single input."""
    inputs = _inputs_of(signature)
    if len(inputs) != 1:
        raise ClientError(f"the signature takes {len(inputs)} inputs; this client sends one")
    ((name, (dtype, shape)),) = inputs.items()
    if dtype == "DT_STRING":
        return {name: np.array([Path(f).read_bytes() for f in files], dtype=object)}
    rows = []
    for f in files:
        if Path(f).suffix.lower() == ".npy":
            arr = np.load(f)
            if shape is not None and arr.ndim == len(shape):
                rows.extend(arr)  # already a batch
                continue
            rows.append(arr)
        else:
            rows.append(_decode_image(f, shape))
    return {name: np.stack(rows).astype(DTYPES.get(dtype, np.float32))}


def _decode_image(path, shape):
    from PIL import Image

    if shape is None or len(shape) != 4:
        raise ClientError(f"cannot feed an image to an input of shape {shape}; pass a .npy file")
    _, height, width, channels = shape
    image = Image.open(path)
    image = image.convert("L" if channels == 1 else "RGB")
    if height > 0 and width > 0:
        image = image.resize((width, height))
    pixels = np.asarray(image, dtype=np.float32)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


def top_classes(probabilities, k: int):
    p = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(i), float(p[i])) for i in order]


# ---- transports --------------------------------------------------------------------------------


class RestClient:
    def __init__(self, host, port, timeout):
        self.base = f"http://{host}:{port}"
        self.timeout = timeout

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error", "")
            except ValueError:
                message = err.reason
            raise ClientError(f"server answered {err.code}: {message}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ClientError(
                f"cannot reach {self.base} ({reason}); is a server running?"
            ) from None

    def metadata(self, model, path_suffix) -> tuple[int, dict]:
        doc = self._call("GET", f"/v1/models/{model}{path_suffix}/metadata")
        signatures = doc["metadata"]["signature_def"]["signature_def"]
        return int(doc["model_spec"]["version"]), signatures

    def predict(self, model, path_suffix, signature, inputs) -> dict:
        columns = {}
        for name, arr in inputs.items():
            if arr.dtype == object:
                columns[name] = [{"b64": base64.b64encode(v).decode()} for v in arr]
            else:
                columns[name] = arr.tolist()
        doc = self._call(
            "POST",
            f"/v1/models/{model}{path_suffix}:predict",
            {"signature_name": signature, "inputs": columns},
        )
        outputs = doc["outputs"]
        if not isinstance(outputs, dict):
            outputs = {"output": outputs}
        return {k: np.asarray(v) if k != "labels" else v for k, v in outputs.items()}


class GrpcClient:
    def __init__(self, host, port, timeout, model):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.model = model
        self.target = f"{host}:{port}"
        self.timeout = timeout
        self.channel = grpc.insecure_channel(self.target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _spec(self, spec, version, label):
        spec.name = self.model
        if version is not None:
            spec.version.value = version
        elif label:
            spec.version_label = label

    def _rpc(self, method, request):
        import grpc

        try:
            return getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                raise ClientError(f"cannot reach {self.target}; is a server running?") from None
            raise ClientError(f"server answered {err.code().name}: {err.details()}") from None

    def metadata(self, version, label):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, version, label)
        response = self._rpc("GetModelMetadata", request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        doc = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        return response.model_spec.version.value, doc.get("signature_def", {})

    def predict(self, version, label, signature, inputs):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, version, label)
        request.model_spec.signature_name = signature
        for name, arr in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(arr))
        response = self._rpc("Predict", request)
        outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        for name, value in outputs.items():
            if value.dtype == object:  # strings
                text = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])
                outputs[name] = text(value).tolist()
        return response.model_spec.version.value, outputs


# ---- command line ------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving predict",
        description="Send files to a running TF Serving (or the embedded one); print top classes.",
    )
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="images (png/jpeg/...), .wav or .npy"
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--grpc", action="store_true", help="use gRPC (default: REST)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default 8501 (REST) / 8500 (gRPC)")
    parser.add_argument("--signature", default=None, help="default: predict_image_bytes if present")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--version", type=int, default=None)
    group.add_argument("--label", default=None)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument(
        "--min-score", type=float, default=0.3, help="a detector's boxes shown from this score"
    )
    parser.add_argument(
        "--draw", metavar="OUT.png", default=None, help="a detector's boxes drawn over the image"
    )
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--history", default=None, help="a recommender: item ids, e.g. 12,51,7")
    parser.add_argument("--user", type=int, default=None, help="a recommender: a user id")
    args = parser.parse_args(argv)
    if args.history is not None or args.user is not None:
        return _recommend(args)
    if not args.files:
        parser.error("give FILE(s), or --history/--user for a recommender")

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        version, signature, outputs = _ask(
            args, args.signature, lambda spec: build_inputs(spec, args.files)
        )
    except (ClientError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "detection_boxes" in outputs:
        try:
            _print_detections(args, version, signature, outputs)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.draw:
        print("error: --draw needs a detector (outputs detection_boxes)", file=sys.stderr)
        return 2
    _print(args, version, signature, outputs)
    return 0


def _ask(args, requested, make_inputs):
    """Read the model's metadata, choose the signature (`requested`, else by args.files) and
    call it with `make_inputs(its signature_def)`, over gRPC or REST: (version, signature,
    outputs)."""
    port = args.port or (8500 if args.grpc else 8501)
    if args.grpc:
        client = GrpcClient(args.host, port, args.timeout, args.model)
        version, signatures = client.metadata(args.version, args.label)
        signature = choose_signature(signatures, args.files, requested)
        inputs = make_inputs(signatures[signature])
        version, outputs = client.predict(args.version or version, args.label, signature, inputs)
        return version, signature, outputs
    client = RestClient(args.host, port, args.timeout)
    suffix = (
        f"/versions/{args.version}"
        if args.version is not None
        else (f"/labels/{args.label}" if args.label else "")
    )
    version, signatures = client.metadata(args.model, suffix)
    signature = choose_signature(signatures, args.files, requested)
    inputs = make_inputs(signatures[signature])
    return version, signature, client.predict(args.model, suffix, signature, inputs)


def _print_detections(args, version, signature, outputs):
    """Each file's boxes from `--min-score` up; with `--draw`, the boxes over the image."""
    from PIL import Image

    from boxkit import pictures

    transport = "gRPC" if args.grpc else "REST"
    labels = outputs.get("detection_labels")
    for i, path in enumerate(args.files):
        n = int(np.asarray(outputs["num_detections"][i]))
        boxes = np.asarray(outputs["detection_boxes"][i], np.float64)[:n]
        scores = np.asarray(outputs["detection_scores"][i], np.float64)[:n]
        classes = np.asarray(outputs["detection_classes"][i]).astype(np.int64)[:n]
        names = [str(labels[i][j]) if labels is not None else str(classes[j]) for j in range(n)]
        shown = scores >= args.min_score
        print(
            f"{path}  ({args.model} v{version}, {signature}, {transport}): {int(shown.sum())} "
            f"box(es) scoring >= {args.min_score:g} of {n}"
        )
        image = Image.open(path) if Path(path).suffix.lower() != ".npy" else None
        size = np.array([image.height, image.width] * 2) if image is not None else None
        for rank, j in enumerate(np.flatnonzero(shown), start=1):
            box = ", ".join(f"{v:.3f}" for v in boxes[j])
            pixels = ""
            if size is not None:
                pixels = "  pixels (" + ", ".join(f"{v:.0f}" for v in boxes[j] * size) + ")"
            print(f"  {rank}. {names[j]:<10} {scores[j]:.4f}  box ({box}){pixels}")
        if args.draw:
            if image is None:
                raise ValueError(f"--draw needs an image file, not {path}")
            out = Path(args.draw)
            if i:
                out = out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
            pixels_in = np.asarray(image.convert("RGB"))
            scale = 2 if max(image.height, image.width) < 256 else 1
            label_names = {c: names[j] for j, c in enumerate(classes)}
            drawn = pictures.draw_boxes(
                pixels_in, boxes[shown], classes[shown], label_names, scores[shown], scale=scale
            )
            Image.fromarray(drawn).save(out)
            print(f"  drawn: {out}")


def _print(args, version, signature, outputs):
    if "text" in outputs:  # a speech recognizer (transcribe_audio_bytes): the transcript
        transport = "gRPC" if args.grpc else "REST"
        for i, path in enumerate(args.files):
            print(f"{path}  ({args.model} v{version}, {signature}, {transport})")
            print(f"  text: {outputs['text'][i]}")
        return
    probabilities = outputs.get("probabilities")
    if probabilities is None:
        probabilities = next(iter(outputs.values()))
    labels = outputs.get("labels")
    transport = "gRPC" if args.grpc else "REST"
    for i, path in enumerate(args.files):
        print(f"{path}  ({args.model} v{version}, {signature}, {transport})")
        row = np.asarray(probabilities[i])
        if row.ndim != 1:
            print(f"  output: {np.array2string(row, precision=4, threshold=20)}")
            continue
        for rank, (cls, p) in enumerate(top_classes(row, args.top), start=1):
            label = labels[i] if labels is not None and rank == 1 else ""
            print(f"  {rank}. class {cls:<4} {p:8.4f}  {label}".rstrip())


def _recommend(args) -> int:
    """`--history` / `--user`: the `recommend` signature's item ids and scores, best first."""
    if args.files or (args.history is not None and args.user is not None):
        print("error: --history and --user take no FILE, and one of them only", file=sys.stderr)
        return 2
    if args.history is not None:
        try:
            ids = [int(v) for v in args.history.split(",")]
        except ValueError:
            ids = []
        if not ids or min(ids) < 0:
            print(
                f"error: --history takes item ids like 12,51,7, not {args.history!r}",
                file=sys.stderr,
            )
            return 2
        inputs, asked = {"history": np.array([ids], np.int32)}, f"history {args.history}"
    else:
        inputs, asked = {"user_id": np.array([args.user], np.int32)}, f"user {args.user}"
    try:
        version, signature, outputs = _ask(args, args.signature or "recommend", lambda _: inputs)
    except (ClientError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "item_ids" not in outputs:
        print(f"error: {signature} returned no item_ids (not a recommender?)", file=sys.stderr)
        return 1
    transport = "gRPC" if args.grpc else "REST"
    items, scores = np.asarray(outputs["item_ids"])[0], np.asarray(outputs["scores"])[0]
    print(f"{asked}  ({args.model} v{version}, {signature}, {transport}): top {len(items)}")
    for rank, (item, score) in enumerate(zip(items, scores), start=1):
        print(f"  {rank}. item {int(item):<6} {float(score):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
