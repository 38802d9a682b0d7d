"""Profiles, seeding and the one `setup()` call that opens every notebook.

A *profile* says how much work a notebook does:

- ``smoke``: the tests. Tiny data and models; each notebook runs in under 60 s on 2 CPU cores.
- ``quick``: a CPU laptop. Minutes per notebook, results worth looking at.
- ``full``: a GPU. The paper-level run, with mixed precision and XLA.

Choose one with the ``COURSE_PROFILE`` environment variable. Without it the course uses
``full`` when a GPU is visible and ``quick`` otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import random
import subprocess
from dataclasses import dataclass

import keras
import numpy as np

PROFILES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Setup:
    """What `setup()` chose; notebooks read their sizes from ``profile``."""

    profile: str
    backend: str
    device: str
    precision: str
    seed: int

    @property
    def gpu(self) -> bool:
        return self.device != "cpu"

    def pick(self, smoke, quick, full):
        """Return the value for the active profile: ``cfg.pick(smoke=2, quick=10, full=90)``."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.profile]


def gpu_name() -> str | None:
    """The first GPU the active Keras backend can see, or None on a CPU-only machine."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        return details.get("device_name", "GPU")
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return None


# Where a CPU-only build of each backend gets its NVIDIA GPU build (the README says more).
GPU_BUILDS = {
    "jax": 'pip install -U "jax[cuda12]"',
    "tensorflow": 'pip install "tensorflow[and-cuda]"',
    "torch": "pip install torch (a CUDA build: see pytorch.org)",
}


def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU, whether or not the Keras backend can use it."""
    if os.path.exists("/proc/driver/nvidia/gpus") or os.path.exists("/dev/nvidia0"):
        return True
    try:
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no nvidia-smi, or it hangs
        return False
    return found.returncode == 0


def active_profile() -> str:
    """The profile named by ``COURSE_PROFILE``, else ``full`` on a GPU and ``quick`` on a CPU."""
    name = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if not name:
        return "full" if gpu_name() else "quick"
    if name not in PROFILES:
        raise ValueError(
            f"COURSE_PROFILE={name!r} is not a profile; choose one of {', '.join(PROFILES)} "
            "(for example: COURSE_PROFILE=smoke make run)"
        )
    return name


def bf16_supported(device: str | None) -> bool:
    """bfloat16 matrix units arrived with NVIDIA Ampere (A100, RTX 30xx) and later GPUs."""
    if not device:
        return False
    old = ("K80", "P100", "P4", "T4", "V100", "GTX", "RTX 20", "Tesla")
    return not any(tag in device for tag in old)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend so that reruns give the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    global_seed_generator(reset=True)  # Keras before 3.13 kept the old one


def global_seed_generator(create: bool = False, reset: bool = False):
    """Keras's global `SeedGenerator`, which random ops without a generator of their own
    draw from (None if none has needed it yet); `create` makes it, `reset` drops it so that
    it is made again from the seed just set.

    Keras offers no public way to reach it: this is the course's one read of that private
    state (`course_lib.train` saves it in checkpoints), and tests/test_train.py fails loudly
    if Keras moves it.
    """
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    name = getattr(seed_generator, "GLOBAL_SEED_GENERATOR", "global_seed_generator")
    if reset:
        global_state.set_global_attribute(name, None)
        return None
    if create:
        return seed_generator.global_seed_generator()
    return global_state.get_global_attribute(name)


def setup(seed: int = 0, verbose: bool = True) -> Setup:
    """Seed everything, choose the profile and precision, and print what was chosen.

    Mixed precision (bfloat16 compute, float32 weights) is switched on for GPUs that support
    it; CPUs stay in float32, where bfloat16 is slower, not faster.
    """
    seed = whole_number("seed", seed, minimum=0)
    profile = active_profile()
    offline()  # a misspelt COURSE_OFFLINE is an error here, not only when data is missing
    device = gpu_name()
    if device is None and nvidia_gpu_present():
        backend = keras.backend.backend()
        print(
            f"Warning: this machine has an NVIDIA GPU but {backend} cannot see it, so the "
            f"course runs on the CPU. For a GPU build: {GPU_BUILDS.get(backend, backend)}"
        )
    precision = "mixed_bfloat16" if bf16_supported(device) else "float32"
    keras.mixed_precision.set_global_policy(precision)
    compilation_cache()
    # TensorFlow warns at length when notebooks call predict on several models: say nothing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    seed_everything(seed)
    chosen = Setup(profile, keras.backend.backend(), device or "cpu", precision, seed)
    if verbose:
        print(
            f"profile={chosen.profile}  backend={chosen.backend}  "
            f"device={chosen.device}  precision={chosen.precision}  seed={seed}"
        )
    return chosen


def is_whole(value) -> bool:
    """Whether `value` is an int (NumPy's too): never True, 2.0 or "3"."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """Whether `value` is a real number (int or float, NumPy's too), never True or "0.1"."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def whole_number(name: str, value, minimum: int = 1) -> int:
    """`value` as an int, or a ValueError saying that `name` must be a whole number >= minimum
    (True, 2.5 and "3" are refused: a size or a count is never any of those)."""
    if not is_whole(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return int(value)


def flag(name: str, value) -> bool:
    """`value` if it is True or False (NumPy's too), else a ValueError: "no" and 0 are not
    switches, and a truthy string would silently mean yes."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def check_counts(parser, args, names) -> None:
    """A command's counts (`names`: argparse destinations such as "batch") must be at least 1
    where given: else `parser.error` names the option, e.g. "--batch must be at least 1"."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {value}")


@contextlib.contextmanager
def whole_file(path: str):
    """Write a file so that no reader ever sees half of it: the block writes to the name this
    yields (beside `path`, unique to this process, so two processes writing the same file
    at once both finish), which then replaces `path`, or is removed if the block fails."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        yield temporary
        os.replace(temporary, path)
    finally:  # after a failure; after os.replace there is nothing left to remove
        with contextlib.suppress(OSError):
            os.remove(temporary)


def cache_dir() -> str:
    """Where downloads and prepared data are kept: ``COURSE_CACHE`` or ~/.cache/course_lib.

    The folder is created when it can be; when it cannot (read-only, or COURSE_CACHE names
    a file) the path is still returned and whoever writes there says so, so that reading
    data never depends on the cache.
    """
    path = os.path.expanduser(os.environ.get("COURSE_CACHE") or "~/.cache/course_lib")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        pass  # data.load warns when it cannot write there, and carries on
    return path


def compilation_cache() -> str | None:
    """On JAX, keep what XLA compiles in the course cache (``jax-compile/``), so that a second
    run of a notebook loads its compiled steps instead of compiling them again; return the
    folder (None on other backends). ``JAX_COMPILATION_CACHE_DIR`` chooses another folder.
    """
    if keras.backend.backend() != "jax":
        return None
    import jax

    path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(cache_dir(), "jax-compile")
    jax.config.update("jax_compilation_cache_dir", path)
    # JAX keeps only compilations that took a second or more; on a CPU most take less
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return path


def offline() -> bool:
    """Whether ``COURSE_OFFLINE`` forbids downloads: 1, true, yes or on (any case) mean yes;
    0, false, no, off, empty or unset mean no; anything else is a ValueError."""
    value = os.environ.get("COURSE_OFFLINE", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"COURSE_OFFLINE={value!r} is not understood: use 1, true, yes or on to "
                     "work offline, and 0, false, no, off or nothing to allow downloads")


# The course's own small data files (tables from the papers, results), beside the notebooks.
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
