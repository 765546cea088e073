"""tapegrad.linear_model: SGDRegressor.fit (compiled steps) against the same steps in a torch
loop and in a NumPy loop, and against the closed form (LinearRegression, numpy lstsq), in one
run (compare ratios).

    pytest benchmarks/bench_linear_model.py --benchmark-enable --benchmark-group-by=group \
        --benchmark-columns=median,rounds

fit is warmed up first: the step is recorded and compiled (also to specialized code) before
timing, and later fits of the same shapes replay it. Loops from Python (torch, NumPy) time
SHORT steps; per-step time = median / STEPS or / SHORT.
"""
import numpy as np
import pytest

import tapegrad.linear_model as lm
from bench_eager import X_DATA, Y_DATA, _torch

STEPS = 21001          # the seed program's loop
SHORT = 1000           # steps per timed call of the Python loops
LR = 0.5


def lr(batch):
    return LR if batch is None else LR / 5


def problem(name):
    if name == "seed 3x3 -> 2":
        return X_DATA.astype(np.float64), Y_DATA.astype(np.float64)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 10))
    return X, X @ rng.standard_normal(10) + 0.1 * rng.standard_normal(1000)


def torch_loop(X, y, batch, steps):
    """Minibatch (or full-batch) SGD on mean(r^2) / 2, the steps SGDRegressor takes."""
    torch = _torch()
    Xt, Yt = torch.tensor(X), torch.tensor(y.reshape(len(y), -1))
    lin = torch.nn.Linear(X.shape[1], Yt.shape[1], dtype=torch.float64)
    opt = torch.optim.SGD(lin.parameters(), lr=lr(batch))
    B = batch or len(X)

    def run():
        for k in range(steps):
            s = k * B % len(X)
            xb, yb = Xt[s:s + B], Yt[s:s + B]
            opt.zero_grad()
            loss = 0.5 * ((lin(xb) - yb) ** 2).sum() / len(xb)
            loss.backward()
            opt.step()
    return run


def numpy_loop(X, y, batch, steps):
    Y = y.reshape(len(y), -1)
    W, b = np.zeros((X.shape[1], Y.shape[1])), np.zeros(Y.shape[1])
    B = batch or len(X)

    def run():
        nonlocal W, b
        for k in range(steps):
            s = k * B % len(X)
            xb, yb = X[s:s + B], Y[s:s + B]
            r = (xb @ W + b - yb) / len(xb)
            W, b = W - lr(batch) * (xb.T @ r), b - lr(batch) * r.sum(axis=0)
    return run


CLOSED = ["LinearRegression.fit", "numpy lstsq"]           # full batch only
CASES = [(name, batch, impl)
         for name, batch in [("seed 3x3 -> 2", None), ("1000x10", None), ("1000x10", 32)]
         for impl in ["SGDRegressor.fit", "torch loop", "numpy loop"] + CLOSED
         if batch is None or impl not in CLOSED]


REPORT_IMPL = {"SGDRegressor.fit": "tapegrad run()", "torch loop": "torch eager",
               "numpy loop": "numpy", "LinearRegression.fit": "tapegrad LinearRegression.fit"}


def report_info(name, batch, impl, n):
    """The report's labels (tapegrad.bench): closed forms are a workload of their own, timed
    per fit; the others per step."""
    size = "3x3" if name.startswith("seed") else name
    if impl in CLOSED:
        return dict(workload=f"LinearRegression {size}", impl=REPORT_IMPL.get(impl, impl),
                    steps=1, unit="fit")
    batches = 1 if batch is None else -(-n // batch)          # steps per epoch
    return dict(workload=f"SGDRegressor {size}" + (f" batch {batch}" if batch else ""),
                impl=REPORT_IMPL[impl], unit="step",
                steps=STEPS // batches * batches if impl == "SGDRegressor.fit" else SHORT)


@pytest.mark.parametrize("name,batch,impl", CASES)
def test_fit(benchmark, name, batch, impl):
    X, y = problem(name)
    how = "full batch" if batch is None else f"batch_size={batch}"
    benchmark.group = f"{name} regression, {how}: fit ({STEPS} steps), loops ({SHORT} steps)"
    benchmark.extra_info.update(report_info(name, batch, impl, len(X)))
    if impl == "SGDRegressor.fit":
        epochs = STEPS if batch is None else STEPS // -(-len(X) // batch)
        reg = lm.SGDRegressor(learning_rate=lr(batch), tol=None, max_iter=epochs,
                              batch_size=batch, random_state=0)
        reg.fit(X, y)
        benchmark(reg.fit, X, y)
        return
    if impl in CLOSED:
        if impl == "numpy lstsq":
            A = np.c_[X, np.ones(len(X))]
            benchmark(np.linalg.lstsq, A, y, rcond=None)
        else:
            benchmark(lm.LinearRegression().fit, X, y)
        return
    run = (torch_loop if impl == "torch loop" else numpy_loop)(X, y, batch, SHORT)
    run()
    benchmark(run)
