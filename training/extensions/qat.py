"""Quantization-aware training for any functional zoo model, in the training loop (the `qat`
recipe section; off unless `start` or `start_step` is set).

TensorFlow Model Optimization's `quantize_model` rejects Keras 3 models (tfmot #1119), so the zoo
fake-quantizes by itself, the way tfmot's default 8-bit scheme and the TFLite converter quantize
(Jacob et al. 2018, "Quantization and training of neural networks for efficient
integer-arithmetic-only inference"): from `start_step` (or the fraction `start` of the run) on,
the chosen layers (`conv`, `dense`, or layer names) compute with

- their kernel fake-quantized to int8, symmetric in [-127, 127] per output channel (or per tensor),
  scaled by its largest magnitude: the grid the converter puts the weights on;
- their input fake-quantized to int8 per tensor (256 levels, asymmetric), between a moving average
  (`momentum`) of the training batches' min and max, always containing 0;
- their output the same way where TFLite keeps an int8 tensor that no next chosen layer takes in:
  before a softmax, sigmoid or tanh activation (the logits; tfmot does the same), or after the
  activation when the layer is an output of the model. A conv's output before BatchNormalization
  is not quantized: the converter folds the normalization (and a ReLU) into the conv.

Forward passes see 8-bit values; gradients pass straight through within the range
(`keras.quantizers.fake_quant_with_min_max_vars`, TensorFlow's FakeQuant ops). The ranges follow
the batches from the first step, so they are settled when quantization starts.

Training runs a copy of the functional model that shares its layers (`keras.models.clone_model`
calling the chosen ones through a fake-quantizing wrapper); validation measures that copy, with
quantization on once started. model.keras keeps the plain model with the trained float weights
(`Extension.unwrap`), so the export needs nothing of training/: its int8 TFLite variant,
calibrated on the run's representative sample, is the quantization the weights were trained for.
The ranges and the on/off flag are in the run's checkpoints (`--resume` keeps them).

    --set qat.start=0.75                 # the last quarter of the run

Fields: `start` (fraction of the run's steps before quantization; null = off), `start_step`
(a step count instead), `layers`, `per_channel` (kernels), `momentum` (tensor ranges).
"""

import keras
import tensorflow as tf
from keras import ops

from training.extensions import Extension

# activations TFLite quantizes before (their int8 output has a fixed range); others after
PRE_QUANTIZED = ("softmax", "sigmoid", "tanh")
KINDS = {
    "conv": (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D),
    "dense": (keras.layers.Dense,),
}


class QuantizationAwareTraining(Extension):
    section = "qat"
    defaults = {
        "start": None,
        "start_step": None,
        "layers": ["conv", "dense"],
        "per_channel": True,
        "momentum": 0.99,
    }

    @classmethod
    def enabled(cls, config):
        return config["start"] is not None or config["start_step"] is not None

    def __init__(self, config, total_steps):
        super().__init__(config, total_steps)
        if config["start_step"] is not None:
            self.start = int(config["start_step"])
        else:
            fraction = float(config["start"])
            if not 0 <= fraction < 1:
                raise ValueError(f"qat.start is a fraction of the run in [0, 1), not {fraction}")
            self.start = int(round(fraction * total_steps))
        if self.start < 0:
            raise ValueError(f"qat.start_step must be >= 0, not {self.start}")
        if not 0 <= float(config["momentum"]) < 1:
            raise ValueError("qat.momentum must be in [0, 1)")
        wanted = config["layers"]
        self.wanted = wanted.split(",") if isinstance(wanted, str) else list(wanted)

    def _chosen(self, layer) -> bool:
        return layer.name in self.wanted or any(
            isinstance(layer, KINDS[w]) for w in self.wanted if w in KINDS
        )

    # -- the training copy ----------------------------------------------------------------------
    def wrap(self, model):
        self.plain = model
        # on/off for every quantizer: off until `start`, in the checkpoints
        self.active = tf.Variable(self.start == 0, trainable=False, name="qat_active")
        self.wrappers = []
        momentum = float(self.config["momentum"])
        ends = set(model.output_names)

        def call(layer, *args, **kwargs):
            if not self._chosen(layer):
                return layer(*args, **kwargs)
            output = "post" if layer.name in ends else None  # which output TFLite keeps in int8
            if getattr(layer.activation, "__name__", "") in PRE_QUANTIZED:
                output = "pre"
            wrapper = FakeQuantized(
                layer, self.active, self.config["per_channel"], momentum, output=output
            )
            self.wrappers.append(wrapper)
            return wrapper(*args, **kwargs)

        try:
            copy = keras.models.clone_model(
                model, clone_function=lambda layer: layer, call_function=call, recursive=True
            )
        except ValueError as e:  # subclassed models cannot be cloned
            raise ValueError(f"qat needs a functional model: {e}") from None
        if not self.wrappers:
            raise ValueError(f"qat: no layer of {model.name} matches {self.config['layers']}")
        self.qat_model = copy
        return copy

    def unwrap(self, model):
        return self.plain if model is self.qat_model else model

    def checkpoint(self):
        module = tf.Module()
        module.active = self.active
        return module

    def after_step(self, model, step):
        self.active.assign(tf.cast(step, tf.int64) >= self.start)

    def epoch_scalars(self, model):
        return {"active": float(self.active.numpy())}


class FakeQuant(keras.layers.Layer):
    """A tensor fake-quantized to int8 (256 levels) between a moving min and max that always
    contain 0, once `active` is true; the range follows the training batches all along."""

    def __init__(self, active, momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        self._active = [active]  # in a list: the flag belongs to the extension, not the layer
        self.momentum = momentum

    def build(self, input_shape):
        self.range_min = self.add_weight(
            shape=(), initializer="zeros", trainable=False, autocast=False, name="range_min"
        )
        self.range_max = self.add_weight(
            shape=(), initializer="zeros", trainable=False, autocast=False, name="range_max"
        )

    def call(self, x, training=None):
        if training:
            low = ops.minimum(ops.min(ops.cast(x, "float32")), 0.0)
            high = ops.maximum(ops.max(ops.cast(x, "float32")), 0.0)
            fresh = ops.logical_not(self.range_max > self.range_min)  # the first batch sets it
            m = self.momentum
            self.range_min.assign(ops.where(fresh, low, m * self.range_min + (1 - m) * low))
            self.range_max.assign(ops.where(fresh, high, m * self.range_max + (1 - m) * high))
        # a range of width 0 (nothing seen yet) would divide by zero
        high = ops.maximum(self.range_max, self.range_min + 1e-6)
        quantized = keras.quantizers.fake_quant_with_min_max_vars(x, self.range_min, high)
        return ops.where(self._active[0], quantized, x)


class FakeQuantized(keras.layers.Layer):
    """A Conv or Dense layer called with its input and its kernel fake-quantized (int8) once
    `active` is true, and its output when `output` is "pre" (before the activation) or "post"
    (after). It computes what the layer's own `call` does, with the layer's variables."""

    def __init__(self, layer, active, per_channel=True, momentum=0.99, output=None):
        super().__init__(name=f"{layer.name}_qat", dtype=layer.dtype_policy)
        self.layer = layer
        self._active = [active]
        self.per_channel = bool(per_channel)
        self.output_at = output
        self.input_quantizer = FakeQuant(active, momentum, name=f"{layer.name}_input_quant")
        self.output_quantizer = None
        if output is not None:
            self.output_quantizer = FakeQuant(active, momentum, name=f"{layer.name}_output_quant")

    def build(self, input_shape):
        self.input_quantizer.build(input_shape)
        if self.output_quantizer is not None:
            self.output_quantizer.build(None)

    def quantized_kernel(self):
        """The kernel on the int8 grid TFLite stores it on (its gradient passes straight)."""
        kernel = self.layer.kernel
        if self.per_channel:
            axes = tuple(range(len(kernel.shape) - 1))
            bound = ops.max(ops.abs(ops.cast(kernel, "float32")), axis=axes)
            axis = -1
        else:
            bound = ops.max(ops.abs(ops.cast(kernel, "float32")))
            axis = None
        bound = ops.stop_gradient(ops.maximum(bound, 1e-8))
        quantized = keras.quantizers.fake_quant_with_min_max_vars(
            kernel, -bound, bound, num_bits=8, narrow_range=True, axis=axis
        )
        return ops.cast(ops.where(self._active[0], quantized, kernel), self.compute_dtype)

    def call(self, x, training=None):
        layer = self.layer
        x = self.input_quantizer(x, training=training)
        kernel = self.quantized_kernel()
        if isinstance(layer, keras.layers.Dense):
            y = ops.matmul(x, kernel)
            bias = layer.bias
        else:
            y = layer.convolution_op(x, kernel)
            bias = layer.bias if layer.use_bias else None
            if bias is not None and layer.data_format == "channels_first":
                bias = ops.reshape(bias, (1, -1) + (1,) * layer.rank)
        if bias is not None:
            y = ops.add(y, bias)
        if self.output_at == "pre":
            y = self.output_quantizer(y, training=training)
        if layer.activation is not None:
            y = layer.activation(y)
        if self.output_at == "post":
            y = self.output_quantizer(y, training=training)
        return y

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)
