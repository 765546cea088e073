"""Record once, replay many: tapegrad.compile against eager torch, a jax.jit step and a fused
@njit loop of the same problem (the reference), measured in one run (compare ratios).

    pytest benchmarks/bench_compile.py --benchmark-enable --benchmark-group-by=group \
        --benchmark-columns=median,rounds

Every timed callable is warmed up first (JIT compilation and the first recordings are not
measured); bench_coldstart.py times compilation on its own. tapegrad runs each path two ways:
interpreted (run_program, what a path gets for its first replays) and specialized (the path
compiled to straight-line code, tapegrad.codegen, what it gets after SPECIALIZE_AFTER steps).
"""
import numpy as np
import pytest
from numba import njit

import tapegrad
from bench_eager import CHAIN, X_DATA, Y_DATA, _torch, chain

STEPS = 21001          # the seed program's loop
LR = 0.25


@njit(cache=True, nogil=True)
def fused_regression(X, Y, W, lr, steps, losses):
    """The seed's 3x3 regression by hand: loss = ||XW - Y||^2, dW = 2 X^T (XW - Y)."""
    n, k = X.shape
    p = W.shape[1]
    R = np.empty((n, p), W.dtype)
    for s in range(steps):
        loss = 0.0
        for i in range(n):
            for j in range(p):
                acc = W.dtype.type(0)
                for q in range(k):
                    acc += X[i, q] * W[q, j]
                R[i, j] = acc - Y[i, j]
                loss += R[i, j] * R[i, j]
        losses[s] = loss
        for q in range(k):
            for j in range(p):
                g = W.dtype.type(0)
                for i in range(n):
                    g += X[i, q] * R[i, j]
                W[q, j] -= lr * 2 * g


@njit(cache=True, nogil=True)
def fused_chain(x0, grad, saved, g):
    """The 100-op chain by hand, one op over all elements at a time: 33 times
    x = tanh(x * a + b), then loss = sum(x * a); backward d tanh(u) = (1 - tanh(u)^2) du,
    accumulated into grad. saved[k] holds the k-th tanh, g the running gradient."""
    a, b, one = x0.dtype.type(1.0001), x0.dtype.type(0.001), x0.dtype.type(1)
    n, m = x0.shape[0], saved.shape[0]
    for k in range(m):
        x = x0 if k == 0 else saved[k - 1]
        for i in range(n):
            saved[k, i] = np.tanh(x[i] * a + b)
    loss = x0.dtype.type(0)
    for i in range(n):
        loss += saved[m - 1, i] * a
        g[i] = a
    for k in range(m - 1, -1, -1):
        for i in range(n):
            g[i] *= (one - saved[k, i] * saved[k, i]) * a
    for i in range(n):
        grad[i] += g[i]
    return loss


def jax_chain():
    """The chain's gradient as one jax.jit call."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def loss(x):
        for k in range(CHAIN // 3):
            x = jnp.tanh(x * 1.0001 + 0.001)
        return jnp.sum(x * 1.0001)
    grad = jax.jit(jax.grad(loss))
    x0 = jnp.ones(16, jnp.float32)
    return lambda: grad(x0).block_until_ready()


def tapegrad_step(specialized=True):
    X, Y = tapegrad.tensor(X_DATA), tapegrad.tensor(Y_DATA)
    tapegrad.manual_seed(0)
    W = tapegrad.randn(3, 2, requires_grad=True)

    @tapegrad.compile(specialize_after=0 if specialized else None)
    def step(X, Y):
        loss = tapegrad.norm(tapegrad.matmul(X, W) - Y) ** 2
        loss.backward()
        W.data = W.data - LR * W.grad
        W.grad.zero_()
        return loss
    for _ in range(3):
        step(X, Y)                              # record (a first .grad, then the steady step)
    step.run(10, X, Y)                          # and compile its code (specialized)
    return step, X, Y


def torch_loop(steps):
    torch = _torch()
    X, Y = torch.tensor(X_DATA), torch.tensor(Y_DATA)
    W = torch.randn(3, 2, requires_grad=True)

    def run():
        for _ in range(steps):
            loss = torch.norm(torch.matmul(X, W) - Y) ** 2
            loss.backward()
            W.data = W.data - LR * W.grad
            W.grad.zero_()
    return run


def jax_step():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    X, Y = jnp.asarray(X_DATA), jnp.asarray(Y_DATA)

    @jax.jit
    def step(W):
        loss, g = jax.value_and_grad(lambda W: jnp.sum((X @ W - Y) ** 2))(W)
        return W - LR * g, loss
    W = jnp.asarray(np.random.default_rng(0).standard_normal((3, 2)), jnp.float32)
    W, loss = step(W)
    loss.block_until_ready()
    return step, W


SHORT = 1000           # steps per timed call for the per-step-from-Python variants


# the names the report (tapegrad.bench) gives the parametrized implementations
REPORT_IMPL = {"tapegrad run() interpreted": "tapegrad run() (interpreted)",
               "tapegrad replay": "tapegrad call",
               "tapegrad replay interpreted": "tapegrad call (interpreted)"}


@pytest.mark.parametrize("impl", ["tapegrad run()", "tapegrad run() interpreted", "fused njit",
                                  "torch eager", "jax.jit step"])
def test_regression_many_steps(benchmark, impl):
    """21001 steps of the seed regression; per-step time = median / STEPS (or / SHORT)."""
    benchmark.group = f"3x3 regression: whole loop ({STEPS} steps) and per-step loops ({SHORT})"
    steps = SHORT if impl in ("torch eager", "jax.jit step") else STEPS
    benchmark.extra_info.update(workload="S", impl=REPORT_IMPL.get(impl, impl), steps=steps,
                                unit="step")
    if impl.startswith("tapegrad"):
        step, X, Y = tapegrad_step(specialized="interpreted" not in impl)
        benchmark(step.run, STEPS, X, Y)
    elif impl == "fused njit":
        W = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
        losses = np.empty(STEPS, np.float32)
        fused_regression(X_DATA, Y_DATA, W, np.float32(LR), 10, losses)
        benchmark(fused_regression, X_DATA, Y_DATA, W, np.float32(LR), STEPS, losses)
    elif impl == "torch eager":
        run = torch_loop(SHORT)
        run()
        benchmark(run)
    else:
        step, W0 = jax_step()

        def run():
            W = W0
            for _ in range(SHORT):
                W, loss = step(W)
            loss.block_until_ready()
        run()
        benchmark(run)


@pytest.mark.parametrize("impl", ["tapegrad replay", "tapegrad replay interpreted",
                                  "tapegrad eager"])
def test_regression_replay_per_call(benchmark, impl):
    """One compiled call per step from a Python loop."""
    benchmark.group = f"3x3 regression: {SHORT} steps, one Python call each"
    benchmark.extra_info.update(workload="S", impl=REPORT_IMPL.get(impl, impl), steps=SHORT,
                                unit="step")
    if impl.startswith("tapegrad replay"):
        step, X, Y = tapegrad_step(specialized="interpreted" not in impl)

        def run():
            for _ in range(SHORT):
                step(X, Y)
    else:
        from bench_eager import regression_loop
        import bench_eager
        inner = regression_loop(tapegrad)

        def run():
            for _ in range(SHORT // bench_eager.STEPS):
                inner()
    run()
    benchmark(run)


@pytest.mark.parametrize("impl", ["tapegrad replay", "tapegrad replay interpreted",
                                  "tapegrad eager", "torch eager", "fused njit",
                                  "jax.jit step"])
def test_chain_replayed(benchmark, impl):
    """The 100-op elementwise chain, forward and backward, per call; per-op time = median /
    CHAIN."""
    benchmark.group = f"{CHAIN}-op elementwise chain replayed"
    benchmark.extra_info.update(workload="D", impl=REPORT_IMPL.get(impl, impl), steps=CHAIN,
                                unit="op")
    if impl.startswith("tapegrad replay"):
        x0 = tapegrad.ones(16, requires_grad=True)

        @tapegrad.compile(specialize_after=None if "interpreted" in impl else 0)
        def run_chain():
            x = x0
            for k in range(CHAIN // 3):
                x = (x * 1.0001 + 0.001).tanh()
            x = x * 1.0001
            x.sum().backward()
        for _ in range(3):
            run_chain()
        run = run_chain
    elif impl == "fused njit":
        x0, grad, g = np.ones(16, np.float32), np.zeros(16, np.float32), np.empty(16, np.float32)
        saved = np.empty((CHAIN // 3, 16), np.float32)

        def run():
            fused_chain(x0, grad, saved, g)
    elif impl == "jax.jit step":
        run = jax_chain()
    else:
        run = chain(tapegrad if impl == "tapegrad eager" else _torch())
    run()
    benchmark(run)


def optimizer_step(lib, opt_name, compiled):
    """One training step of a Linear(3, 2) on a batch of 8 rows with zero_grad(), backward()
    and an optimizer step (the usual PyTorch loop body)."""
    lib.manual_seed(0)
    net = lib.nn.Linear(3, 2)
    opt = getattr(lib.optim, opt_name)(net.parameters(), lr=0.01,
                                       **({"momentum": 0.9} if opt_name == "SGD" else {}))
    rng = np.random.default_rng(0)
    X = lib.tensor(rng.standard_normal((8, 3)).astype(np.float32))
    Y = lib.tensor(rng.standard_normal((8, 2)).astype(np.float32))

    def step(X, Y):
        opt.zero_grad()
        loss = ((net(X) - Y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    if compiled:
        step = lib.compile(step, specialize_after=0)
    for _ in range(5):
        step(X, Y)
    return lambda: step(X, Y)


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@pytest.mark.parametrize("impl", ["tapegrad replay", "tapegrad eager", "torch eager"])
def test_optimizer_step_per_call(benchmark, impl, opt_name):
    """nn.Linear + loss + backward + optimizer step, one Python call per step."""
    benchmark.group = f"Linear(3, 2) training step with {opt_name}, one call each"
    benchmark.extra_info.update(workload=f"Linear step {opt_name}",
                                impl=REPORT_IMPL.get(impl, impl), steps=1, unit="step")
    lib = _torch() if impl == "torch eager" else tapegrad
    benchmark(optimizer_step(lib, opt_name, impl == "tapegrad replay"))
