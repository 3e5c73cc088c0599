"""Native thread pools sized for a service's work, in one place for every service.

The services do their numeric work on their own Python threads: the encoder on one worker thread
(it scales by processes, one per partition or more), the recommender on its gRPC handler threads
(requests already run in parallel). Left to their defaults, onnxruntime gives every session an
intra-op pool of one thread per core whose threads spin-wait after each run, and OpenBLAS (numpy)
starts a pool of one thread per core at import. On a few shared cores those pools burned more CPU
than the work itself (issue 18: 370 µs per item in the pools against 205 µs on the encoder's worker
thread), and they compete with the processes beside them.

- `limit_native_threads(n)` sizes BLAS / OpenMP through their environment variables. OpenBLAS reads
  them once, when numpy is first imported, so the services' command handlers call it right after
  reading their settings and before importing anything that imports numpy (tested:
  tests/unit/test_threads.py). If numpy is already loaded it also resizes the loaded pools with
  threadpoolctl when that is installed.
- `onnx_session_options(n)` is how every onnxruntime session in vitrine is configured: `n` intra-op
  threads (0 = one per core), one inter-op thread, sequential execution, and no spin-waiting.

`n` is the services' `model_threads` setting (VITRINE_ENCODER_MODEL_THREADS,
VITRINE_RECOMMENDER_MODEL_THREADS; default 1).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

log = logging.getLogger(__name__)

# Read at library load by OpenBLAS, OpenMP runtimes (incl. the one torch and scikit-learn bring), MKL,
# BLIS, Apple Accelerate and numexpr.
THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
SPINNING_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def limit_native_threads(threads: int, environ: MutableMapping[str, str] | None = None) -> None:
    """Let BLAS and OpenMP use `threads` threads in this process (0: leave their defaults alone).
    Call before numpy is imported; the setting overrides the variables' values from outside, so the
    service's one setting decides."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads == 0:
        return
    env = os.environ if environ is None else environ
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    if environ is None and "numpy" in sys.modules:
        # too late for the environment: resize the pools already loaded, if threadpoolctl is there
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            log.warning(
                "numpy was imported before its threads were limited to %d; it keeps its pool", threads
            )
            return
        threadpool_limits(limits=threads)


def onnx_session_options(threads: int) -> Any:
    """onnxruntime SessionOptions: `threads` intra-op threads (0 = one per core), one inter-op
    thread, sequential execution, spin-waiting off (idle pool threads sleep instead of burning a
    core between runs)."""
    import onnxruntime as ort

    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    for key in SPINNING_KEYS:
        options.add_session_config_entry(key, "0")
    return options
