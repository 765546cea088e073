"""Eager-mode speed against torch eager and NumPy, measured in one run (compare ratios).

    pytest benchmarks/ --benchmark-enable --benchmark-group-by=group --benchmark-columns=median

Each callable is warmed up before timing, so JIT compilation is not measured.
"""
import numpy as np
import pytest

import tapegrad

X_DATA = np.array([0.2, 0.5, 0.7, 0.4, 0.6, 0.8, 0.3, 0.6, 0.9], np.float32).reshape(3, 3)
Y_DATA = np.array([0.8, 0.8, 0.7, 0.9, 0.9, 0.9], np.float32).reshape(3, 2)
STEPS = 100          # regression steps per timed call
CHAIN = 100          # ops in the elementwise chain


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def regression_loop(lib):
    """The seed's loop: norm(X@W - Y)**2, backward, W.data update, grad.zero_()."""
    X, Y = lib.tensor(X_DATA), lib.tensor(Y_DATA)
    lib.manual_seed(0)
    W = lib.randn(3, 2, requires_grad=True)

    def run():
        for _ in range(STEPS):
            loss = lib.norm(lib.matmul(X, W) - Y) ** 2
            loss.backward()
            W.data = W.data - 0.25 * W.grad
            W.grad.zero_()
    return run


def regression_numpy():
    """The same steps with the gradient by hand: loss = ||XW - Y||^2, dW = 2 X^T (XW - Y)."""
    W = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)

    def run():
        nonlocal W
        for _ in range(STEPS):
            r = X_DATA @ W - Y_DATA
            (r * r).sum()                       # the loss, as the other loops compute it
            W = W - 0.25 * (2 * X_DATA.T @ r)
    return run


def chain(lib):
    """x = x*1.0001 + 0.001 alternating with tanh: 100 ops on 16 floats, forward and backward."""
    x0 = lib.ones(16, requires_grad=True)

    def run():
        x = x0
        for k in range(CHAIN // 3):
            x = (x * 1.0001 + 0.001).tanh()
        x = x * 1.0001
        x.sum().backward()
    return run


IMPLS = ["tapegrad", "torch", "numpy"]
REPORT_IMPL = {"tapegrad": "tapegrad eager", "torch": "torch eager", "numpy": "numpy"}


@pytest.mark.parametrize("impl", IMPLS)
def test_regression_step(benchmark, impl):
    benchmark.group = f"3x3 regression, {STEPS} eager steps"
    benchmark.extra_info.update(workload="S", impl=REPORT_IMPL[impl], steps=STEPS, unit="step")
    run = {"tapegrad": lambda: regression_loop(tapegrad), "torch": lambda: regression_loop(
        _torch()), "numpy": regression_numpy}[impl]()
    run()                                       # warm-up: compile, caches
    benchmark(run)


@pytest.mark.parametrize("impl", ["tapegrad", "torch"])
def test_elementwise_chain(benchmark, impl):
    benchmark.group = f"{CHAIN}-op elementwise chain, forward+backward"
    benchmark.extra_info.update(workload="D", impl=REPORT_IMPL[impl], steps=CHAIN, unit="op")
    lib = tapegrad if impl == "tapegrad" else _torch()
    run = chain(lib)
    run()
    benchmark(run)
