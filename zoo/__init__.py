"""The zoo: Keras 3 functional-API definitions of the classic architectures.

Pure Keras (keras, keras.ops): no TensorFlow import, so every definition runs on any backend.
Importing the package registers every family.
"""

from zoo import audio, generative, multimodal, recommend, rl, sequence, video, vision  # noqa: F401 (registers)
from zoo.registry import ModelSpec, UnknownModelError, build, get_spec, list_models, register
from zoo.tasks import TASK_KINDS, check_signatures, get_kind

__all__ = [
    "TASK_KINDS",
    "ModelSpec",
    "UnknownModelError",
    "build",
    "check_signatures",
    "get_kind",
    "get_spec",
    "list_models",
    "register",
]
