import os
import subprocess

import keras
import numpy as np
import pytest

from course_lib import config


def test_profile_from_environment(monkeypatch):
    for name in config.PROFILES:
        monkeypatch.setenv("COURSE_PROFILE", name)
        assert config.active_profile() == name


def test_default_profile_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    expected = "full" if config.gpu_name() else "quick"
    assert config.active_profile() == expected


def test_bad_profile_says_what_to_do(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="smoke, quick, full"):
        config.active_profile()


def test_setup_reports_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    cfg = config.setup(seed=3)
    printed = capsys.readouterr().out
    assert f"backend={keras.backend.backend()}" in printed and "profile=smoke" in printed
    assert cfg.profile == "smoke" and cfg.pick(1, 2, 3) == 1
    first = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.uniform((3,)))
    config.setup(seed=3, verbose=False)
    second = np.random.rand(3), keras.ops.convert_to_numpy(keras.random.uniform((3,)))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_setup_refuses_a_bad_seed_or_course_offline(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    for seed in (1.5, -1, None, "3"):
        with pytest.raises(ValueError, match="seed must be a whole number of at least 0"):
            config.setup(seed=seed, verbose=False)
    monkeypatch.setenv("COURSE_OFFLINE", "2")
    with pytest.raises(ValueError, match="COURSE_OFFLINE='2' is not understood"):
        config.setup(verbose=False)


def test_cpu_runs_float32(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    cfg = config.setup(verbose=False)
    if not cfg.gpu:
        assert cfg.precision == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("device,expected", [
    ("NVIDIA H100 80GB HBM3", True), ("NVIDIA A100-SXM4-40GB", True),
    ("Tesla T4", False), ("Tesla V100-SXM2-16GB", False), (None, False),
])
def test_bf16_only_where_the_hardware_has_it(device, expected):
    assert config.bf16_supported(device) is expected


@pytest.mark.parametrize("backend,command", [
    ("jax", 'pip install -U "jax[cuda12]"'), ("tensorflow", 'pip install "tensorflow[and-cuda]"'),
])
def test_setup_says_what_to_install_when_the_backend_misses_the_gpu(
    monkeypatch, capsys, backend, command
):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setattr(config, "gpu_name", lambda: None)
    monkeypatch.setattr(config, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    config.setup(verbose=False)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and "NVIDIA GPU" in printed[0] and printed[0].endswith(command)


@pytest.mark.parametrize("device,nvidia", [(None, False), ("NVIDIA H100 80GB HBM3", True)])
def test_no_gpu_warning_without_a_gpu_or_when_the_backend_sees_it(
    monkeypatch, capsys, device, nvidia
):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setattr(config, "gpu_name", lambda: device)
    monkeypatch.setattr(config, "nvidia_gpu_present", lambda: nvidia)
    cfg = config.setup(verbose=False)
    keras.mixed_precision.set_global_policy("float32")  # the H100 case chose bfloat16
    assert capsys.readouterr().out == "" and cfg.device == (device or "cpu")


def test_nvidia_gpu_found_by_nvidia_smi_or_not_at_all(monkeypatch):
    monkeypatch.setattr(config.os.path, "exists", lambda path: False)

    def nvidia_smi(returncode):
        return lambda *args, **kwargs: subprocess.CompletedProcess(args, returncode)

    monkeypatch.setattr(config.subprocess, "run", nvidia_smi(0))
    assert config.nvidia_gpu_present()
    monkeypatch.setattr(config.subprocess, "run", nvidia_smi(9))
    assert not config.nvidia_gpu_present()

    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(config.subprocess, "run", missing)
    assert not config.nvidia_gpu_present()
    monkeypatch.setattr(config.os.path, "exists", lambda path: path == "/dev/nvidia0")
    assert config.nvidia_gpu_present()


def test_jax_keeps_what_it_compiles_in_the_course_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    if keras.backend.backend() != "jax":
        assert config.compilation_cache() is None  # TensorFlow has no such cache to set
        return
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    before = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
    try:
        compilation_cache.reset_cache()  # other tests compiled before: start the cache anew
        folder = config.compilation_cache()
        assert folder == str(tmp_path / "jax-compile")
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # keep even this
        step = jax.jit(lambda x: keras.ops.tanh(x) @ x.T + 0.5)
        np.testing.assert_allclose(step(np.ones((3, 3), "float32")), np.tanh(1) * 3 + 0.5,
                                   rtol=1e-6)
        assert os.listdir(folder), "nothing compiled was written to the cache"
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "elsewhere"))
        assert config.compilation_cache() == str(tmp_path / "elsewhere")
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
        compilation_cache.reset_cache()


def test_whole_file_replaces_the_file_only_when_the_writing_finished(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with config.whole_file(str(path)) as temporary:
        assert os.path.dirname(temporary) == str(tmp_path) and str(os.getpid()) in temporary
        with open(temporary, "w") as file:
            file.write("new")
        assert path.read_text() == "old"  # readers still see the old file, whole
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["results.json"]
    with pytest.raises(RuntimeError), config.whole_file(str(path)) as temporary:
        with open(temporary, "w") as file:
            file.write("half")
        raise RuntimeError("the writer failed half-way")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["results.json"]
