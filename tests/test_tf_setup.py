"""cifar_pack.training.tf_setup: oneDNN on by default before TensorFlow starts, the user's setting wins,
TensorFlow's early log lines obey TF_CPP_MIN_LOG_LEVEL. Each case is forced (an environment
passed in, or a fresh process with the variable set or removed), never read from the host's CPU."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from cifar_pack.training.tf_setup import ONEDNN_VARIABLE, configure_environment, filter_early_log

X86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.mark.parametrize("machine", ["x86_64", "AMD64"])
def test_onednn_turned_on_where_the_user_said_nothing(machine):
    environ = {}
    setting = configure_environment(environ, machine)
    assert environ == {ONEDNN_VARIABLE: "1"}
    assert setting == {"variable": ONEDNN_VARIABLE, "value": "1", "source": "cifar-pack default"}


@pytest.mark.parametrize("value", ["0", "1", ""])
def test_the_users_setting_wins(value):
    environ = {ONEDNN_VARIABLE: value}
    assert configure_environment(environ, "x86_64") == {
        "variable": ONEDNN_VARIABLE,
        "value": value,
        "source": "environment",
    }
    assert environ == {ONEDNN_VARIABLE: value}


def test_left_to_tensorflow_off_x86():
    environ = {}
    assert configure_environment(environ, "aarch64")["source"] == "tensorflow default"
    assert environ == {}


EARLY = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1795725123.743161   29056 port.cc:153] oneDNN custom operations are on.\n"
    b"W0000 00:00:1795725123.743200   29056 cpu_feature_guard.cc:227] a warning\n"
    b"E0000 00:00:1795725123.743300   29056 some_file.cc:12] an error\n"
    b"Fatal Python error: something else\n"
)


@pytest.mark.parametrize(
    "level, kept",
    [
        (0, ["WARNING: All log", "I0000", "W0000", "E0000", "Fatal"]),
        (1, ["W0000", "E0000", "Fatal"]),
        (2, ["E0000", "Fatal"]),
        (3, ["Fatal"]),
    ],
)
def test_early_log_lines_obey_the_level(level, kept):
    lines = filter_early_log(EARLY, level).decode().splitlines()
    assert [
        next(k for k in ("WARNING: All log", "I0000", "W0000", "E0000", "Fatal") if line.startswith(k))
        for line in lines
    ] == kept


PROBE = (
    "import json, cifar_pack.training.pipeline as t; "
    "print(json.dumps({'runtime': t.tensorflow_runtime(), 'line': t.describe_kernels()}))"
)


def _probe(**env_changes) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_VARIABLE}
    env.update(env_changes)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.skipif(not X86, reason="cifar-pack's oneDNN default applies to x86-64 only")
def test_a_fresh_process_trains_with_onednn_by_default_and_quietly():
    result, stderr = _probe(TF_CPP_MIN_LOG_LEVEL="3")
    assert result["runtime"]["onednn"] is True  # TensorFlow's own answer, on AVX2 and AVX-512 CPUs alike
    assert result["runtime"]["onednn_setting"]["source"] == "cifar-pack default"
    assert "oneDNN kernels on (cifar-pack default; TF_ENABLE_ONEDNN_OPTS=0 turns them off)" == result["line"]
    assert "oneDNN custom operations" not in stderr and "absl::InitializeLog" not in stderr


def test_a_user_who_turned_onednn_off_gets_eigen():
    result, _ = _probe(TF_CPP_MIN_LOG_LEVEL="3", **{ONEDNN_VARIABLE: "0"})
    assert result["runtime"]["onednn"] is False
    assert result["runtime"]["onednn_setting"] == {"variable": ONEDNN_VARIABLE, "value": "0", "source": "environment"}
    assert result["line"] == "Eigen kernels (oneDNN off) (TF_ENABLE_ONEDNN_OPTS=0 from the environment)"


@pytest.mark.skipif(not X86, reason="TensorFlow prints its oneDNN notice on x86-64 only")
def test_level_zero_keeps_tensorflows_notice():
    _, stderr = _probe(TF_CPP_MIN_LOG_LEVEL="0")
    assert "oneDNN custom operations are on" in stderr  # the filter only applies the user's level


ASK = "import json, {module} as m; print(json.dumps(m.onednn_enabled() if hasattr(m, 'onednn_enabled') else {bare}))"
BARE = "bool(__import__('tensorflow.python.util._pywrap_util_port', fromlist=['x']).IsMklEnabled())"


def test_on_an_emulated_avx2_cpu_tensorflow_alone_runs_eigen_and_cifar_pack_runs_onednn():
    """The reason for the default, on the CPU it is for: QEMU reports AMD Zen 3's CPUID (AVX2, no
    AVX-512) to TensorFlow, which then leaves oneDNN off by itself; cifar-pack's import turns it on."""
    from .cpu_emulation import emulated_environment, emulated_python, qemu_unavailable_reason

    if qemu_unavailable_reason():
        pytest.skip(qemu_unavailable_reason())
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_VARIABLE} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    probes = {
        "tensorflow alone": ASK.format(module="tensorflow", bare=BARE),
        "cifar-pack": ASK.format(module="cifar_pack.training.tf_setup", bare=BARE),
    }
    # Both at once: importing TensorFlow under emulation takes about a minute each.
    procs = {
        name: subprocess.Popen(
            emulated_python("avx2") + ["-c", code],
            env=emulated_environment("avx2", env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, code in probes.items()
    }
    answers = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        answers[name] = json.loads(out.strip().splitlines()[-1])
    assert answers == {"tensorflow alone": False, "cifar-pack": True}
