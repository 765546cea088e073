import os
import shlex
from importlib import metadata

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
LIBRARIES = ("tapegrad", "numpy", "numba", "torch", "jax")

# One thread everywhere: reference libraries must not spin pools that fight each other.
for var in THREAD_VARS:
    os.environ.setdefault(var, "1")


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pytest_benchmark_update_machine_info(config, machine_info):
    """Library versions, thread settings and the command line go into the JSON report, for
    python -m tapegrad.bench."""
    machine_info["libraries"] = {name: _version(name) for name in LIBRARIES}
    machine_info["threads"] = {var: os.environ.get(var) for var in THREAD_VARS}
    args = [a for a in config.invocation_params.args if not a.startswith("--benchmark-json")]
    machine_info["command"] = "python -m pytest " + shlex.join(args)
