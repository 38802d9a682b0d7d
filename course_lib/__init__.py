"""course_lib: the small helper library of "The classical ImageNet CNNs, rebuilt in Keras".

One module per concern: `config` (profiles, `setup()`), `data` (datasets), `imagenet`
(WordNet and ILSVRC metadata), `models` and `layers` (the papers' networks), `analysis`
(parameters, multiply-adds, receptive fields), `train` (a thin layer over `model.fit`) and
`plots` (static figures).
"""

import contextlib
import os
import sys

# TensorFlow's C++ start-up lines (cuInit on a CPU machine, oneDNN, absl) would land in the
# first cell of every notebook. TF_CPP_MIN_LOG_LEVEL=0 in the environment shows them again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@contextlib.contextmanager
def quiet_native_logs():
    """Send what C++ code writes to this process's stderr to /dev/null, for one import.

    TensorFlow 2.19 and later print their start-up lines before they read
    TF_CPP_MIN_LOG_LEVEL (tensorflow/tensorflow#100442), so the variable alone cannot stop
    them. Python errors still reach you: they are raised after the block, once stderr is back.
    """
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # no file descriptor 2 to borrow
        yield
        return
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3":
        os.dup2(devnull, 2)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Keras imports TensorFlow on its TensorFlow backend, and on the others setup() does
# (keras.utils.set_random_seed seeds TensorFlow wherever it is installed): import it here.
with quiet_native_logs():
    import keras  # noqa: E402, F401

    with contextlib.suppress(ImportError):
        import tensorflow  # noqa: F401

from course_lib.config import setup  # noqa: E402

__all__ = ["quiet_native_logs", "setup"]
__version__ = "0.1.0"
