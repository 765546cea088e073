"""Public PyTorch programs (tests/programs/) run unchanged with tapegrad standing in for torch.

Each copy ends with added checks that any correct run satisfies, whatever its random numbers,
and prints the checked quantities as one ``CHECK {json}`` line. Where torch is installed, the same
program also runs under PyTorch and the two CHECK lines are compared within tolerances fitted
to each program's randomness. The runs are subprocesses, started together on a small pool.
"""
import concurrent.futures
import importlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent / "programs"
TIMEOUT = 120                       # seconds per run; the slowest takes ~20 s alone

# program -> ((module, name) it needs from tapegrad, {CHECK key: absolute tolerance})
#   sin fits: any run ends with loss in [8.8, 40), so coefficients within 0.2 of the
#   least-squares cubic; the stiff error components vanish (1e-4)
SIN_FIT = {"loss": 32, "last_printed_loss": 32, "coef": 0.4, "stiff_error": 2e-4}
#   linear regressions, noise std 0.01 on 1000 samples: weights within ~1e-3 of the truth, loss
#   about sigma^2 / 2 (scratch) or sigma^2 (MSELoss), give or take 10 %
PROGRAMS = {
    "polynomial_tensor": ((), SIN_FIT),
    "polynomial_autograd": ((), SIN_FIT),
    "polynomial_nn": ((), SIN_FIT),
    "polynomial_optim": ((("tapegrad.optim", "RMSprop"),), SIN_FIT),
    "polynomial_module": ((), SIN_FIT),
    "dynamic_net": ((), {"last_printed_loss": 32, "coef": 0.4}),
    "regression": ((), {"final_loss": 1e-3, "gap_on_unit_interval": 0.2}),
    "d2l_linear_regression_scratch": ((), {"final_loss": 3e-5, "w": 5e-3, "b": 5e-3}),
    "d2l_linear_regression_concise": (
        (("tapegrad.utils.data", "TensorDataset"), ("tapegrad.utils.data", "DataLoader")),
        {"final_loss": 6e-5, "w": 5e-3, "b": 5e-3}),
    "d2l_autograd": ((), {"shown": 0}),
}
SLOW = {"dynamic_net"}                 # 30000 steps: ~15 s under tapegrad and under PyTorch
CASES = [pytest.param(p, marks=pytest.mark.slow) if p in SLOW else p for p in sorted(PROGRAMS)]


def _have_torch():
    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:                  # torch blocked by a None entry in sys.modules
        return False


def _missing(needs):
    """Why a program can't run yet: a tapegrad module or name it uses is not there."""
    for module, name in needs:
        try:
            m = importlib.import_module(module)
        except ImportError:
            return f"{module} is not there yet"
        if not hasattr(m, name):
            return f"{module}.{name} is not there yet"
    return None


def _run(program, under):
    cmd = [sys.executable, str(HERE / f"{program}.py")]
    if under == "tapegrad":
        cmd.insert(1, str(HERE / "_as_tapegrad.py"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=HERE, env=env)


@pytest.fixture(scope="module")
def runs(request):
    """Start every run the selected tests of this module need, slowest first, on a pool."""
    wanted = set()
    for item in request.session.items:
        if item.module.__name__ == __name__ and hasattr(item, "callspec"):
            program = item.callspec.params["program"]
            wanted.add((program, "tapegrad"))
            if item.originalname == "test_program_agrees_with_pytorch":
                wanted.add((program, "torch"))
    wanted = sorted(wanted, key=lambda w: (w[0] not in SLOW, w))
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        yield {w: pool.submit(_run, *w) for w in wanted
               if _missing(PROGRAMS[w[0]][0]) is None and
               (w[1] == "tapegrad" or _have_torch())}


def _check_line(r, program, under):
    assert r.returncode == 0, f"{program} under {under}:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    lines = [line for line in r.stdout.splitlines() if line.startswith("CHECK ")]
    assert len(lines) == 1, r.stdout[-2000:]
    return json.loads(lines[0][len("CHECK "):])


def _skip_if_missing(program):
    reason = _missing(PROGRAMS[program][0])
    if reason:
        pytest.skip(f"{program} needs {reason}")


@pytest.mark.parametrize("program", CASES)
def test_program_runs_under_tapegrad(runs, program):
    _skip_if_missing(program)
    _check_line(runs[program, "tapegrad"].result(), program, "tapegrad")


def _close(a, b, tol):
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, str):
        return a == b
    return abs(a - b) <= tol


@pytest.mark.parametrize("program", CASES)
def test_program_agrees_with_pytorch(runs, program):
    if not _have_torch():
        pytest.skip("torch is not installed")
    _skip_if_missing(program)
    ours = _check_line(runs[program, "tapegrad"].result(), program, "tapegrad")
    theirs = _check_line(runs[program, "torch"].result(), program, "torch")
    tolerances = PROGRAMS[program][1]
    assert set(ours) == set(theirs) == set(tolerances)
    for key, tol in tolerances.items():
        assert _close(ours[key], theirs[key], tol), (key, ours[key], theirs[key])


def test_every_program_is_listed():
    on_disk = {p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == set(PROGRAMS)
