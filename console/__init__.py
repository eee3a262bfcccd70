"""What the command lines print: TensorFlow's native start-up notices filtered out.

TensorFlow's C++ side writes to file descriptor 2 before Python can configure anything: absl's
"All log messages before absl::InitializeLog()" warning, oneDNN and CUDA-stub notices at import
(TF_CPP_MIN_LOG_LEVEL no longer reaches them), "failed call to cuInit" when a CPU-only machine
first lists devices, and TFLite's "Created TensorFlow Lite XNNPACK delegate" line. `quiet()` runs a
block with descriptor 2 captured and replays what it printed without those; everything else,
real errors included, still shows. `TF_CPP_MIN_LOG_LEVEL=0` shows them all.

Used by `python -m training` and `python -m serving` alike, so it belongs to neither.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

NOTICE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"  # absl INFO/WARNING lines from C++
    r"|E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"
    r"|To enable the following instructions: .*"  # the second line of cpu_feature_guard's notice
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
)


def is_notice(line: str) -> bool:
    return NOTICE.fullmatch(line.rstrip("\r\n")) is not None


@contextlib.contextmanager
def quiet(drop=is_notice):
    """Capture descriptor 2 for the block, then write back the lines `drop` does not match (all of
    them under TF_CPP_MIN_LOG_LEVEL=0). `drop=lambda line: True` discards everything."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if not drop(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """`import tensorflow` without its start-up notices; returns the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet():
        import tensorflow as tf
    for name in ("tensorflow", "absl"):  # Python-side INFO/WARNING chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    return tf
