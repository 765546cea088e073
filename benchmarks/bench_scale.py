"""Speed at scale: full-batch linear regression, MSE gradient descent, float32, 1 thread.

    pytest benchmarks/bench_scale.py --benchmark-enable --benchmark-group-by=group \
        --benchmark-columns=median,rounds

M: n=10,000 x d=100, 200 steps; L: n=1,000,000 x d=32, 20 steps (X is 128 MB); L2: L's X with
two targets (w and y have two columns), 5 steps, which runs the several-column kernels. Each
implementation runs the same steps from w = 0: tapegrad compiled (run(), and one call per
step, each after a warm-up that records and compiles the step), tapegrad eager, a hand-derived
NumPy gradient, a one-pass fused @njit loop (the reference: it reads X once per step), and torch
eager / a jax.jit step when installed. Per-step time = median / steps. With benchmarks disabled
(the test run) each runs once, as a check that it still works. test_peak_memory checks memory.
"""
import numpy as np
import pytest
from numba import njit

import tapegrad
from bench_eager import _torch

SIZES = {"M": (10_000, 100, 200), "L": (1_000_000, 32, 20), "L2": (1_000_000, 32, 5)}
COLUMNS = {"L2": 2}             # columns of w and y (1 when not listed)
LR = 0.05


def problem(size):
    n, d, steps = SIZES[size]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    p = COLUMNS.get(size, 1)
    y = (X @ rng.standard_normal((d, p), dtype=np.float32)
         + 0.1 * rng.standard_normal((n, p), dtype=np.float32))
    return X, y, steps


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def fused_descent(X, y, w, lr, steps):
    """Gradient descent on mean((X w - y)^2), reading X once per step: each row gives its
    residual and its contribution to the gradient in the same pass. Rows are taken as slices
    and sums may be reordered, so the inner loops vectorize."""
    n, d = X.shape
    g = np.empty(d, X.dtype)
    v = w[:, 0].copy()
    for _ in range(steps):
        g[:] = 0
        for i in range(n):
            x = X[i]
            r = -y[i, 0]
            for j in range(d):
                r += x[j] * v[j]
            for j in range(d):
                g[j] += r * x[j]
        for j in range(d):
            v[j] -= lr * 2 * g[j] / n
    w[:, 0] = v


def numpy_descent(X, y, w, lr, steps):
    for _ in range(steps):
        w -= lr * (2 / y.size) * (X.T @ (X @ w - y))


def tapegrad_step(lib, X, y, compiled):
    w = lib.zeros(X.shape[1], y.shape[1], requires_grad=True)

    def step(X, y):
        loss = ((X @ w - y) ** 2).mean()
        loss.backward()
        with lib.no_grad():
            w.sub_(LR * w.grad)
        w.grad.zero_()
        return loss
    return (lib.compile(step, specialize_after=0) if compiled else step), w


def jax_descent(X, y, steps):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    @jax.jit
    def step(w):
        g = jax.grad(lambda w: jnp.mean((Xj @ w - yj) ** 2))(w)
        return w - LR * g

    def run():
        w = jnp.zeros((X.shape[1], y.shape[1]), jnp.float32)
        for _ in range(steps):
            w = step(w)
        return w.block_until_ready()
    step(jnp.zeros((X.shape[1], y.shape[1]), jnp.float32)).block_until_ready()     # compile
    return run


@pytest.mark.parametrize("size", ["M"] + [pytest.param(s, marks=pytest.mark.slow)
                                          for s in ("L", "L2")])
@pytest.mark.parametrize("impl", ["tapegrad run()", "tapegrad call", "tapegrad eager", "numpy",
                                  "fused njit", "torch eager", "jax.jit step"])
def test_full_batch_descent(benchmark, impl, size):
    if impl == "fused njit" and size in COLUMNS:
        pytest.skip("the fused loop has one column")
    X, y, steps = problem(size)
    n, d, _ = SIZES[size]
    cols = f", {y.shape[1]} columns" if size in COLUMNS else ""
    benchmark.group = f"{size}: {n} x {d} float32{cols}, {steps} full-batch steps"
    benchmark.extra_info.update(workload=size, impl=impl, steps=steps, unit="step")
    if impl.startswith("tapegrad"):
        Xt, yt = tapegrad.tensor(X), tapegrad.tensor(y)
        step, w = tapegrad_step(tapegrad, Xt, yt, impl != "tapegrad eager")
        if impl == "tapegrad run()":
            step.run(2, Xt, yt)                         # records the step
            step.run(steps, Xt, yt)                     # compiles what a long run() uses

            def run():
                step.run(steps, Xt, yt)
        elif impl == "tapegrad call":
            for _ in range(3):
                step(Xt, yt)                            # records and compiles the step

            def run():
                for _ in range(steps):
                    step(Xt, yt)
        else:
            def run():
                for _ in range(steps):
                    step(Xt, yt)
        result = lambda: w.detach().numpy()             # noqa: E731
    elif impl == "numpy":
        w = np.zeros((d, y.shape[1]), np.float32)
        run = lambda: numpy_descent(X, y, w, np.float32(LR), steps)     # noqa: E731
        result = lambda: w                              # noqa: E731
    elif impl == "fused njit":
        w = np.zeros((d, 1), np.float32)
        fused_descent(X[:10], y[:10], w.copy(), np.float32(LR), 1)      # compile
        run = lambda: fused_descent(X, y, w, np.float32(LR), steps)     # noqa: E731
        result = lambda: w                              # noqa: E731
    elif impl == "torch eager":
        torch = _torch()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        step, w = tapegrad_step(torch, Xt, yt, False)

        def run():
            for _ in range(steps):
                step(Xt, yt)
        result = lambda: w.detach().numpy()             # noqa: E731
    else:
        run = jax_descent(X, y, steps)
        result = None
    # the median of three rounds: with one round of L, a spike of this shared machine failed
    # the ratio gate
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    if result is not None:       # every implementation descends: the loss went down
        w = result()
        assert np.mean((X @ w - y) ** 2) < np.mean(y ** 2)


@pytest.mark.slow
@pytest.mark.parametrize("shift", [0, 4, 12, 28])
def test_x_placement(benchmark, shift):
    """L's run() with X a view `shift` floats into a larger tensor: its time should not depend
    on where X sits. Before the row pass prefetched, it took 8 to 20 ms a step by X's address
    (modulo 128 bytes, among others), and so by what the process had allocated before."""
    X, y, steps = problem("L")
    n, d, _ = SIZES["L"]
    benchmark.group = f"L: {n} x {d} float32, {steps} full-batch steps"
    benchmark.extra_info.update(workload="L", impl=f"tapegrad run(), X moved {4 * shift} B",
                                steps=steps, unit="step")
    big = tapegrad.empty(n * d + 32)
    Xt = big[shift:shift + n * d].view(n, d)
    Xt.copy_(tapegrad.from_numpy(X))
    yt = tapegrad.tensor(y)
    step, w = tapegrad_step(tapegrad, Xt, yt, True)
    step.run(2, Xt, yt)                                 # records the step
    step.run(steps, Xt, yt)                             # compiles what a long run() uses
    benchmark.pedantic(lambda: step.run(steps, Xt, yt), rounds=3, iterations=1, warmup_rounds=0)
    w = w.detach().numpy()
    assert np.mean((X @ w - y) ** 2) < np.mean(y ** 2)


PEAK = """
import sys
sys.path.insert(0, {here!r})
import tapegrad
from bench_scale import problem, tapegrad_step


def status(key):
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith(key + ":"))


X, y, steps = problem({size!r})
data = X.nbytes + y.nbytes
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                                   # the peak (VmHWM) starts again from here
Xt, yt = tapegrad.tensor(X), tapegrad.tensor(y)
del X, y
loading = status("VmHWM") - before
step, w = tapegrad_step(tapegrad, Xt, yt, True)
step.run(2, Xt, yt)                                # records and compiles the step
step.run(steps, Xt, yt)
loaded = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
step.run(steps, Xt, yt)
for _ in range(3):
    step(Xt, yt)
print(data, loading, status("VmHWM") - loaded)
"""


@pytest.mark.parametrize("size", ["M", pytest.param("L", marks=pytest.mark.slow)])
def test_peak_memory(size):
    """Peak memory of the workload in a fresh process, against the size of X and y: making the
    tensors costs one copy of the data (NumPy's arrays are then dropped), and the training
    steps (run() and single calls, after the first, which compiles) copy nothing of X."""
    import os
    import subprocess
    import sys
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak")
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", PEAK.format(here=here, size=size)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    data, loading, training = (int(v) for v in out.stdout.split())
    print(f"{size}: X and y {data / 2**20:.0f} MiB; making the tensors {loading / data:.2f}x; "
          f"training steps {training / data:.3f}x")
    assert loading <= 1.3 * data
    assert training <= 0.3 * data
