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
