"""Programs as users write them: nn.Linear (with its bias), a loss module, an optimizer, default
arguments of tapegrad.compile; the same source runs on torch and on tapegrad, in one run.

    OMP_NUM_THREADS=1 pytest benchmarks/bench_programs.py --benchmark-enable \
        --benchmark-group-by=group --benchmark-columns=median,rounds

Workloads (float32, one thread):
- `nn.Linear M`: 10,000 x 100, MSELoss, SGD, 20 full-batch steps a timed call;
- `nn.Linear L`: 1,000,000 x 32, the same program (X is 128 MB);
- `nn.Linear M Adam`: M with optim.Adam;
- `minibatch 256`: 1,000,000 x 32, one epoch of shuffled batches of 256 (X[idx] by a
  permutation, as a torch loop draws them; `tapegrad run()` is run(n, X, y, batch_size=256,
  shuffle=True));
- `MLP 32-64-1`: Linear, ReLU, Linear on 100,000 rows, MSELoss, SGD, 20 steps.

Implementations: `torch eager` and `tapegrad eager` run the loop as written; `tapegrad run()`
is tapegrad.compile(step) with its defaults and `.run(steps, X, y)`; `tapegrad call` is the
compiled step called once a step from Python. `tapegrad eager` is warmed up until eager
recognition has compiled its step (or 20 s, where it does not apply), a compiled program until
its tier has settled (its first calls record it; with the defaults it is compiled to code of its own
once its interpreted steps have taken as long as compiling, or at once when that code is in
the disk cache), so the timings are those of a long training job; the first-ever compile is
timed by bench_coldstart.py and in the README. Per-step time = median / steps.
"""
import time

import numpy as np
import pytest

import tapegrad
from bench_eager import _torch

SIZES = {"nn.Linear M": (10_000, 100, 20), "nn.Linear L": (1_000_000, 32, 20),
         "nn.Linear M Adam": (10_000, 100, 20), "minibatch 256": (1_000_000, 32, None),
         "MLP 32-64-1": (100_000, 32, 20)}
BATCH = 256
LR = 0.01
IMPLS = ["torch eager", "tapegrad eager", "tapegrad run()", "tapegrad call"]


def _lib(impl):
    return _torch() if impl.startswith("torch") else tapegrad


def data(workload, lib):
    n, d, _ = SIZES[workload]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    y = X @ rng.standard_normal((d, 1), dtype=np.float32) + np.float32(0.1) * \
        rng.standard_normal((n, 1), dtype=np.float32)
    return lib.from_numpy(X), lib.from_numpy(y.astype(np.float32))


def program(workload, lib):
    """The model, loss and optimizer, and the training step a user writes."""
    lib.manual_seed(0)
    d = SIZES[workload][1]
    if workload.startswith("MLP"):
        model = lib.nn.Sequential(lib.nn.Linear(d, 64), lib.nn.ReLU(), lib.nn.Linear(64, 1))
    else:
        model = lib.nn.Linear(d, 1)
    loss_fn = lib.nn.MSELoss()
    opt = (lib.optim.Adam(model.parameters(), lr=LR) if workload.endswith("Adam") else
           lib.optim.SGD(model.parameters(), lr=LR))

    def step(X, y):
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        return loss
    return step, model


def settle(step, *args, **kwargs):
    """Run the compiled step until its tier has settled: specialized (with the defaults, once
    its interpreted steps have taken about as long as compiling), or a minute has passed."""
    start = time.perf_counter()
    while "specialized" not in step.explain() and time.perf_counter() - start < 60:
        step.run(*args, **kwargs)
    step.run(*args, **kwargs)
    if "stays interpreted" in step.explain():       # a fallback would time the interpreter
        raise RuntimeError(step.explain())
    if "with a fused pass" not in step.explain():   # each workload here is one it covers: a
        raise RuntimeError(step.explain())          # region left unfused is a regression


def settle_eager(run, budget=20):
    """Run an eager loop until recognition has compiled its step (tapegrad.eager: once its
    interpreted steps have taken about as long as compiling) or `budget` seconds have passed
    (a loop it does not apply to, e.g. batches drawn by index, stays interpreted)."""
    start = time.perf_counter()
    while ("compiled after" not in tapegrad.eager.explain()
           and time.perf_counter() - start < budget):
        run()


def epoch_loop(step, lib, X, y):
    """One shuffled epoch, batches drawn by index as in a hand-written torch loop."""
    def run():
        perm = lib.randperm(len(X))
        for k in range(0, len(X), BATCH):
            idx = perm[k:k + BATCH]
            step(X[idx], y[idx])
    return run


def case(workload, impl, warm=True):
    lib = _lib(impl)
    if impl == "tapegrad eager":
        tapegrad.eager.clear()          # what explain() says is this program's
    X, y = data(workload, lib)
    step, _ = program(workload, lib)
    steps = SIZES[workload][2]
    if impl != "tapegrad eager" and impl.startswith("tapegrad"):
        step = tapegrad.compile(step)
    if workload == "minibatch 256":
        n_batches = -(-len(X) // BATCH)
        if impl == "tapegrad run()" and warm:
            settle(step, n_batches, X, y, batch_size=BATCH, shuffle=True, seed=0)
            return (lambda: step.run(n_batches, X, y, batch_size=BATCH, shuffle=True)), \
                n_batches
        run = epoch_loop(step, lib, X, y)
        run()
        if impl == "tapegrad eager" and warm:
            settle_eager(run)
        return run, n_batches
    if impl == "tapegrad run()":
        if warm:
            settle(step, steps, X, y)
        return (lambda: step.run(steps, X, y)), steps

    def loop():
        for _ in range(steps):
            loss = step(X, y)
        return loss.item()
    if impl == "tapegrad call" and warm:
        settle(step, steps, X, y)
    loop()
    if impl == "tapegrad eager" and warm:
        settle_eager(loop)
    return loop, steps


CASES = [(w, i) for w in SIZES for i in IMPLS]


@pytest.mark.parametrize("workload,impl", CASES)
def test_program(benchmark, workload, impl):
    benchmark.group = f"{workload}: steps as users write them"
    fn, steps = case(workload, impl, warm=not benchmark.disabled)   # the test run: once
    benchmark.extra_info.update(workload=workload, impl=impl, steps=steps, unit="step")
    benchmark(fn)


def test_programs_agree_with_torch():
    """The compiled program with its defaults follows torch's trajectory (the benchmark's
    programs compute the same thing)."""
    torch = _torch()
    out, start = [], None
    for lib in (torch, tapegrad):
        X, y = data("nn.Linear M", lib)
        step, model = program("nn.Linear M", lib)
        if lib is tapegrad:             # torch's initial weights (the generators differ)
            step = tapegrad.compile(step)
            with tapegrad.no_grad():
                for p, v in zip(model.parameters(), start):
                    p.copy_(tapegrad.from_numpy(v))
        start = [p.detach().numpy().copy() for p in model.parameters()]
        out.append([step(X, y).item() for _ in range(30)])
    np.testing.assert_allclose(out[1], out[0], rtol=1e-4)
