"""Native thread pools: onnxruntime sessions without spin-waiting, BLAS limited before numpy loads.

The defect these catch (issue 18): onnxruntime's intra-op pool (one thread per core, spinning after
every run) and OpenBLAS's pool (one thread per core, sized once when numpy is imported) burned more
CPU than the encoder's own work on shared cores. OpenBLAS reads OPENBLAS_NUM_THREADS only at import,
so setting it after anything imported numpy has no effect: the entry-point test records the variable
at the moment numpy is first imported by the real service commands. Control: before this change the
recommender's settings module imported numpy (through vitrine.serving), and this test recorded the
caller's OPENBLAS_NUM_THREADS=7 for both recommender commands instead of the setting's 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from vitrine.model.inference import load_inference_model
from vitrine.threads import SPINNING_KEYS, THREAD_VARIABLES, limit_native_threads, onnx_session_options


@pytest.mark.parametrize("threads", [1, 3])
def test_session_options_size_the_pool_and_turn_spinning_off(threads: int) -> None:
    options = onnx_session_options(threads)
    assert options.intra_op_num_threads == threads
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    for key in SPINNING_KEYS:
        assert options.get_session_config_entry(key) == "0"


def test_session_options_reject_negative_threads() -> None:
    with pytest.raises(ValueError, match="threads"):
        onnx_session_options(-1)


def test_serving_model_sessions_use_the_options(model_dir: Path) -> None:
    model = load_inference_model(model_dir, threads=1)
    options = model._item.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_limit_native_threads_sets_every_variable_and_overrides_the_callers() -> None:
    environ = {"OPENBLAS_NUM_THREADS": "8", "PATH": "/bin"}
    limit_native_threads(2, environ)
    assert {name: environ[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "2")
    assert environ["PATH"] == "/bin"


def test_zero_threads_leaves_the_libraries_defaults() -> None:
    environ = {"OPENBLAS_NUM_THREADS": "8"}
    limit_native_threads(0, environ)
    assert environ == {"OPENBLAS_NUM_THREADS": "8"}
    with pytest.raises(ValueError):
        limit_native_threads(-1, environ)


# Runs a service command in a fresh interpreter and prints OPENBLAS_NUM_THREADS as it is when numpy
# is first imported (a meta-path finder sees every import; it finds nothing itself). The command then
# fails on the missing model directory, which is fine: numpy is imported before that.
WATCH_NUMPY = """
import os, runpy, sys

class WatchNumpy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and "numpy" not in sys.modules:
            print("numpy imported with OPENBLAS_NUM_THREADS=" + str(os.environ.get("OPENBLAS_NUM_THREADS")), flush=True)
        return None

sys.meta_path.insert(0, WatchNumpy())
module, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = module
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "command",
    [
        ["vitrine_services.encoder"],
        ["vitrine.cli.main", "encoder"],
        ["vitrine_services.recommender"],
        ["vitrine.cli.main", "recommender"],
    ],
    ids=["encoder module", "vitrine encoder", "recommender module", "vitrine recommender"],
)
def test_service_commands_limit_blas_before_numpy_is_imported(command: list[str], tmp_path: Path) -> None:
    missing_model = tmp_path / "no-model"
    args = [*command, "--model", str(missing_model), "--bootstrap-servers", "127.0.0.1:1"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "7", "VITRINE_ENCODER_MODEL_THREADS": "1"}
    env["VITRINE_RECOMMENDER_MODEL_THREADS"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", WATCH_NUMPY, *args], capture_output=True, text=True, env=env, timeout=120
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("numpy imported")]
    assert lines, f"numpy was never imported:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert lines[0] == "numpy imported with OPENBLAS_NUM_THREADS=1", result.stderr[-2000:]
    assert result.returncode != 0  # and then it stopped at the missing model, as it should
