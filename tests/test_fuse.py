"""Large matrix products and the fused affine-then-loss pass of replayed programs.

Products above SMALL_MATMUL multiply-adds run the vectorized kernels; they are checked against
NumPy in float64, forward and both gradients. The fused pass (tapegrad.fuse, on by default) is
switched on here in any case: a replayed step must give what eager gives, and chains that are
not provably equivalent must not be fused.
"""
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import fuse
from tapegrad.interpret import P_AFFINE_BWD, P_AFFINE_FWD
from tapegrad.kernels import SMALL_MATMUL


# one column; several but at most k (dot products with B's columns), as many as k; more than k
# (B's rows added to the row's outputs); from STRIP_MIN columns and k the register tiles: rows
# in fours and a tail, columns in pairs of vectors then narrower tiles (45 = 32 + 8 + 4 + 1),
# A^T G over GB_BLOCK rows with a shorter last block, A's columns in fours and a tail
SHAPES = [(300, 8, 1), (2, 700, 1), (90, 7, 2), (200, 9, 3), (64, 40, 16), (40, 13, 13),
          (40, 13, 14), (20, 5, 96), (23, 5, 96), (130, 37, 45), (257, 6, 7), (301, 4, 40)]


@pytest.mark.parametrize("n,k,p", SHAPES)
@pytest.mark.parametrize("batch", [False, True])
def test_large_matmul_matches_numpy(n, k, p, batch):
    assert n * k * p > SMALL_MATMUL
    rng = np.random.default_rng(n + k + p)
    lead = (2,) if batch else ()
    A = rng.standard_normal(lead + (n, k))
    B = rng.standard_normal(lead + (k, p))
    G = rng.standard_normal(lead + (n, p))
    a = tg.tensor(A, requires_grad=True)
    b = tg.tensor(B, requires_grad=True)
    out = a @ b
    np.testing.assert_allclose(out.detach().numpy(), A @ B, rtol=1e-12, atol=1e-12)
    out.backward(tg.tensor(G))
    np.testing.assert_allclose(a.grad.numpy(), G @ np.swapaxes(B, -1, -2), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np.swapaxes(A, -1, -2) @ G, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("p", [1, 2, 31, 45, 64])
def test_large_matmul_float32_close_to_float64(p):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((500, 30)).astype(np.float32)
    w = rng.standard_normal((30, p)).astype(np.float32)
    a, b = tg.tensor(A, requires_grad=True), tg.tensor(w, requires_grad=True)
    out = a @ b
    out.sum().backward()
    A64, w64 = A.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(out.detach().numpy(), A64 @ w64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.grad.numpy(), np.ones((500, p)) @ w64.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.grad.numpy(), A64.T @ np.ones((500, p)), rtol=1e-4, atol=1e-3)


LOSSES = {
    "mse": lambda z, y: ((z - y) ** 2).mean(),
    "reversed sum": lambda z, y: ((y - z) ** 2).sum(),
    "l1 scaled": lambda z, y: (z - y).abs().mean() * 3.0,
    "tanh chain": lambda z, y: ((z * 0.5).tanh() - y).pow(2).sum() + 1.0,
}


def _step(w, loss_fn, lr=1e-3):
    def step(X, y):
        loss = loss_fn(X @ w, y)
        loss.backward()
        with tg.no_grad():
            w.sub_(lr * w.grad)
        w.grad.zero_()
        return loss
    return step


def _fused_rows(fn):
    """How many fused rows the recorded paths of compiled function fn hold."""
    return sum(int(np.isin(p.P[:, 0], (P_AFFINE_FWD, P_AFFINE_BWD)).sum())
               for paths in fn.paths.values() for p in paths)


def _runs_fused_code(fn):
    """Every recorded path of compiled function fn ran as specialized code with a fused pass:
    a code generation error falls back to the interpreter, which gives the same values, so
    only this tells it apart (as a slowdown it would go unseen)."""
    paths = [p for paths in fn.paths.values() for p in paths]
    assert paths and all(p.fast_ok and p.fused for p in paths), fn.explain()
    assert "stays interpreted" not in fn.explain()
    assert "with a fused pass" in fn.explain()


@pytest.fixture
def fusing(monkeypatch):
    monkeypatch.setattr(fuse, "ENABLED", True)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("p", [1, 3, 7])     # 7: the block pass on register tiles
def test_fused_replay_equals_eager(fusing, loss, p):
    rng = np.random.default_rng(p)
    X = tg.tensor(rng.standard_normal((400, 6)))
    y = tg.tensor(rng.standard_normal((400, p)))
    w0 = rng.standard_normal((6, p))
    we = tg.tensor(w0.copy(), requires_grad=True)
    wc = tg.tensor(w0.copy(), requires_grad=True)
    eager = _step(we, LOSSES[loss])
    compiled = tg.compile(_step(wc, LOSSES[loss]), specialize_after=0)
    for _ in range(4):
        le, lc = eager(X, y), compiled(X, y)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-12)
        np.testing.assert_allclose(wc.detach().numpy(), we.detach().numpy(), rtol=1e-12,
                                   atol=1e-15)
    hist = compiled.run(5, X, y)
    for h in hist:
        np.testing.assert_allclose(h, eager(X, y).item(), rtol=1e-12)
    np.testing.assert_allclose(wc.detach().numpy(), we.detach().numpy(), rtol=1e-12,
                               atol=1e-15)
    assert _fused_rows(compiled) == 2      # the chain was fused: its forward and backward
    _runs_fused_code(compiled)


def test_fused_gradient_matches_hand_derived(fusing):
    rng = np.random.default_rng(3)
    Xn, yn = rng.standard_normal((500, 4)), rng.standard_normal((500, 1))
    w = tg.zeros(4, 1, dtype=tg.float64, requires_grad=True)

    @tg.compile
    def grad_of(X, y):
        loss = ((X @ w - y) ** 2).mean()
        loss.backward()
        g = w.grad.clone()
        w.grad = None
        return g
    for _ in range(3):
        g = grad_of(tg.tensor(Xn), tg.tensor(yn)).numpy()
    np.testing.assert_allclose(g, 2 / 500 * Xn.T @ (Xn @ np.zeros((4, 1)) - yn), rtol=1e-12)


@pytest.mark.parametrize("case", ["X requires grad", "residual returned", "y requires grad"])
def test_unfusable_chains_stay_correct(fusing, case):
    rng = np.random.default_rng(4)
    Xn, yn, w0 = rng.standard_normal((300, 5)), rng.standard_normal((300, 1)), np.ones((5, 1))
    results = []
    for mode in ("eager", "compiled"):
        X = tg.tensor(Xn, requires_grad=case == "X requires grad")
        y = tg.tensor(yn, requires_grad=case == "y requires grad")
        w = tg.tensor(w0.copy(), requires_grad=True)

        def step(X, y):
            r = X @ w - y
            loss = (r ** 2).sum()
            loss.backward()
            return (loss, r) if case == "residual returned" else loss
        fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
        for _ in range(3):
            out = fn(X, y)
        results.append((w.grad.numpy().copy(), (out[0] if isinstance(out, tuple) else
                                                 out).item()))
        if mode == "compiled":
            assert _fused_rows(fn) == 0
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-12)


def test_small_products_are_not_fused(fusing):
    X, y = tg.randn(10, 3, dtype=tg.float64), tg.randn(10, 1, dtype=tg.float64)
    w = tg.zeros(3, 1, dtype=tg.float64, requires_grad=True)
    f = tg.compile(_step(w, LOSSES["mse"]))
    for _ in range(3):
        f(X, y)
    assert _fused_rows(f) == 0


@pytest.mark.parametrize("loss", ["mse", "tanh chain"])
@pytest.mark.parametrize("p", [1, 2])
def test_fused_specialized_code_equals_the_interpreted_chain(fusing, loss, p):
    """The interpreter runs a fused chain's records as recorded; the specialized code runs the
    fused pass (a row at a time for one column, its values in variables rounded as the arena
    would round them; a block at a time for several). Same losses (summed in the same order),
    parameters within float32 rounding."""
    rng = np.random.default_rng(5)
    X = tg.tensor(rng.standard_normal((700, 7)).astype(np.float32))
    y = tg.tensor(rng.standard_normal((700, p)).astype(np.float32))
    w0 = rng.standard_normal((7, p)).astype(np.float32)
    out = []
    for specialize_after in (0, 10**9):
        w = tg.tensor(w0.copy(), requires_grad=True)
        f = tg.compile(_step(w, LOSSES[loss]), specialize_after=specialize_after)
        hist = f.run(6, X, y)
        assert _fused_rows(f) == 2
        assert "stays interpreted" not in f.explain()
        out.append((hist, w.detach().numpy()))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-6)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_pass_split_over_threads_equals_eager(fusing, threads):
    """Several runs of blocks (one per thread) sum their parts in order: eager's values within
    rounding, whatever the thread count."""
    rng = np.random.default_rng(6)
    X = tg.tensor(rng.standard_normal((5000, 8)))      # 512 rows a block: 10 blocks
    y = tg.tensor(rng.standard_normal((5000, 1)))
    w0 = rng.standard_normal((8, 1))
    we = tg.tensor(w0.copy(), requires_grad=True)
    wc = tg.tensor(w0.copy(), requires_grad=True)
    before = tg.get_num_threads()
    tg.set_num_threads(threads)
    try:
        eager = _step(we, LOSSES["mse"])
        compiled = tg.compile(_step(wc, LOSSES["mse"]), specialize_after=0)
        hist = compiled.run(5, X, y)
        for h in hist:
            np.testing.assert_allclose(h, eager(X, y).item(), rtol=1e-12)
        np.testing.assert_allclose(wc.detach().numpy(), we.detach().numpy(), rtol=1e-12)
        assert _fused_rows(compiled) == 2
    finally:
        tg.set_num_threads(before)


def test_thread_count_changes_under_a_specialized_path(fusing):
    """A fused pass is written for one thread or for several (codegen); when the count goes
    from one to more and back, the path's module is made again, and the values stay eager's."""
    rng = np.random.default_rng(16)
    X = tg.tensor(rng.standard_normal((5000, 8)))
    y = tg.tensor(rng.standard_normal((5000, 1)))
    w0 = rng.standard_normal((8, 1))
    we = tg.tensor(w0.copy(), requires_grad=True)
    wc = tg.tensor(w0.copy(), requires_grad=True)
    eager = _step(we, LOSSES["mse"])
    compiled = tg.compile(_step(wc, LOSSES["mse"]), specialize_after=0)
    before = tg.get_num_threads()
    serial = []
    try:
        for threads in (1, 2, 1, 3):
            tg.set_num_threads(threads)
            hist = list(compiled.run(3, X, y)) + [compiled(X, y).item()]
            for h in hist:
                np.testing.assert_allclose(h, eager(X, y).item(), rtol=1e-12)
            serial.append(compiled.last.serial)
    finally:
        tg.set_num_threads(before)
    np.testing.assert_allclose(wc.detach().numpy(), we.detach().numpy(), rtol=1e-12)
    assert serial == [True, False, True, False]
    assert _fused_rows(compiled) == 2


FORKED = """
import multiprocessing as mp, numpy as np, tapegrad as tg
rng = np.random.default_rng(0)
X = tg.tensor(rng.standard_normal((3000, 16)).astype(np.float32))
y = tg.tensor(rng.standard_normal((3000, 1)).astype(np.float32))
w = tg.tensor(np.zeros((16, 1), np.float32), requires_grad=True)
tg.set_num_threads(2)

@tg.compile
def step(X, y):
    loss = ((X @ w - y) ** 2).mean()
    loss.backward()
    g = w.grad.clone()
    w.grad = None
    return loss
step.specialize_after = 0
parent = [step(X, y).item() for _ in range(3)]

def child(q):
    q.put((tg.get_num_threads(), step(X, y).item()))
ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
p.join(120)
assert p.exitcode == 0, p.exitcode
threads, loss = q.get()
assert threads == 1 and loss == parent[-1], (threads, loss, parent)
print("ok")
"""


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_child_runs_the_fused_pass():
    """A child forked after the fused pass ran on two threads runs it on one (GNU OpenMP's
    thread pool does not survive a fork: Numba would kill the child)."""
    out = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


CACHED = """
import numpy as np, tapegrad as tg
rng = np.random.default_rng(0)
X = tg.tensor(rng.standard_normal((3000, 16)).astype(np.float32))
y = tg.tensor(rng.standard_normal((3000, 1)).astype(np.float32))
tg.manual_seed(0)
model = tg.nn.Linear(16, 1)
opt = tg.optim.SGD(model.parameters(), lr=0.1)
loss_fn = tg.nn.MSELoss()

def step(X, y):
    opt.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    opt.step()
    return loss
step = tg.compile(step, specialize_after=0)
losses = [step(X, y).item() for _ in range(3)] + list(step.run(3, X, y))
assert "with a fused pass" in step.explain(), step.explain()
print(repr(losses))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_a_fused_program_from_the_disk_cache_runs_in_a_new_process(tmp_path, threads):
    """The first process compiles the program (on two threads: its block pass too) and
    caches it; the second loads it from the cache and gives the same losses (a program
    loaded from the cache once ran its parallel pass before Numba had started its threads,
    and crashed)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), NUMBA_NUM_THREADS=str(threads))
    env.pop("NUMBA_CACHE_DIR", None)
    out = [subprocess.run([sys.executable, "-c", CACHED], capture_output=True, text=True,
                          env=env, timeout=600) for _ in range(2)]
    for o in out:
        assert o.returncode == 0, o.stdout + o.stderr
    assert os.listdir(tmp_path / "tapegrad" / "programs")
    assert out[0].stdout == out[1].stdout


def test_a_constant_without_a_literal_still_specializes(fusing):
    """1e39 is inf in float32: the fused loop takes it from the immediates, not as a literal."""
    rng = np.random.default_rng(8)
    X = tg.tensor(rng.standard_normal((3000, 16)).astype(np.float32))
    y = tg.tensor(rng.standard_normal((3000, 1)).astype(np.float32))
    loss = lambda z, y: ((z - y) / 1e39 + 1.0).pow(2).mean()      # noqa: E731
    w0 = rng.standard_normal((16, 1)).astype(np.float32)
    we = tg.tensor(w0.copy(), requires_grad=True)
    wc = tg.tensor(w0.copy(), requires_grad=True)
    eager, compiled = _step(we, loss), tg.compile(_step(wc, loss), specialize_after=0)
    for _ in range(3):
        assert compiled(X, y).item() == eager(X, y).item() == 1.0
    np.testing.assert_array_equal(wc.detach().numpy(), we.detach().numpy())
    assert _fused_rows(compiled) == 2
    assert all(p.fast_ok for paths in compiled.paths.values() for p in paths)


# What nn.Linear and the loss modules record: W.t() (a strided view), the bias added with its
# gradient, d * d, the branches of Huber's loss; then the optimizer's records.
MODULE_LOSSES = {
    "MSELoss": lambda: tg.nn.MSELoss(),
    "L1Loss": lambda: tg.nn.L1Loss(),
    "HuberLoss": lambda: tg.nn.HuberLoss(delta=0.5),
    "SmoothL1Loss": lambda: tg.nn.SmoothL1Loss(),
    "MSELoss sum": lambda: tg.nn.MSELoss(reduction="sum"),
}


def _module_step(model, loss_fn, opt):
    def step(X, y):
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        return loss
    return step


def _linear(d, seed, dtype=tg.float64, bias=True):
    tg.manual_seed(seed)
    return tg.nn.Linear(d, 1, bias=bias, dtype=dtype)


def _params(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("loss", list(MODULE_LOSSES))
@pytest.mark.parametrize("optimizer", ["SGD", "SGD momentum", "Adam"])
def test_fused_module_program_equals_eager(fusing, loss, optimizer):
    """nn.Linear (with its bias) + a loss module + an optimizer, as users write it: the fused
    pass covers the product, the bias and the loss; weights, bias and losses are eager's."""
    rng = np.random.default_rng(7)
    X = tg.tensor(rng.standard_normal((600, 9)))
    y = tg.tensor(rng.standard_normal((600, 1)))
    make_opt = {"SGD": lambda p: tg.optim.SGD(p, lr=0.01),
                "SGD momentum": lambda p: tg.optim.SGD(p, lr=0.01, momentum=0.9,
                                                       weight_decay=1e-3),
                "Adam": lambda p: tg.optim.Adam(p, lr=0.01)}[optimizer]
    runs = []
    for mode in ("eager", "compiled"):
        model = _linear(9, 11)
        step = _module_step(model, MODULE_LOSSES[loss](), make_opt(model.parameters()))
        fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
        losses = [fn(X, y).item() for _ in range(3)]
        if mode == "compiled":
            losses += list(fn.run(4, X, y))
            assert _fused_rows(fn) == 2
            _runs_fused_code(fn)
        else:
            losses += [fn(X, y).item() for _ in range(4)]
        runs.append((losses, _params(model)))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-11)
    for pc, pe in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(pc, pe, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("outputs", [3, 7])        # 7: the register tiles (k = 16)
@pytest.mark.parametrize("loss", ["MSELoss", "HuberLoss"])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_bias_of_several_outputs_equals_eager(fusing, outputs, loss, threads):
    """nn.Linear(d, k) with its bias of k: the bias is a row broadcast over the rows, fused
    with the product; its gradient summed over the rows by each run of blocks."""
    rng = np.random.default_rng(outputs)
    X = tg.tensor(rng.standard_normal((5000, 16)))
    y = tg.tensor(rng.standard_normal((5000, outputs)))
    before = tg.get_num_threads()
    tg.set_num_threads(threads)
    runs = []
    try:
        for mode in ("eager", "compiled"):
            tg.manual_seed(11)
            model = tg.nn.Linear(16, outputs, dtype=tg.float64)
            step = _module_step(model, MODULE_LOSSES[loss](),
                                tg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
            fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
            losses = [fn(X, y).item() for _ in range(3)]
            if mode == "compiled":
                losses += list(fn.run(3, X, y))
                assert _fused_rows(fn) == 2
                _runs_fused_code(fn)
            else:
                losses += [fn(X, y).item() for _ in range(3)]
            runs.append((losses, _params(model)))
    finally:
        tg.set_num_threads(before)
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-11)
    for pc, pe in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(pc, pe, rtol=1e-11, atol=1e-14)


def test_column_broadcast_is_not_a_bias(fusing):
    """(n, p) + (n, 1) with n == p has a row's size, but broadcasts down the columns: not
    fused as a bias, and the values are eager's."""
    rng = np.random.default_rng(3)
    X = tg.tensor(rng.standard_normal((40, 30)))
    c = tg.tensor(rng.standard_normal((40, 1)), requires_grad=True)
    runs = []
    for mode in ("eager", "compiled"):
        w = tg.tensor(np.linspace(-1, 1, 30 * 40).reshape(30, 40), requires_grad=True)

        def step(X):
            loss = ((X @ w + c) ** 2).mean()
            loss.backward()
            return loss
        fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
        losses = [fn(X).item() for _ in range(3)]
        if mode == "compiled":
            assert _fused_rows(fn) == 0
        runs.append((losses, w.grad.numpy().copy(), c.grad.numpy().copy()))
        c.grad = None
    for a, b in zip(runs[1], runs[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_fused_bias_only_gradient(fusing):
    """The weight frozen, only the bias learns. The product then needs no gradient and has no
    backward row, so nothing is fused (the region starts with a product that needs one); the
    replay is eager's all the same."""
    rng = np.random.default_rng(8)
    Xn, yn = rng.standard_normal((500, 6)), rng.standard_normal((500, 1)) + 3.0
    runs = []
    for mode in ("eager", "compiled"):
        model = _linear(6, 12)
        model.weight.requires_grad_(False)
        opt = tg.optim.SGD([model.bias], lr=0.1)
        step = _module_step(model, tg.nn.MSELoss(), opt)
        fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
        for _ in range(5):
            fn(tg.tensor(Xn), tg.tensor(yn))
        if mode == "compiled":
            assert _fused_rows(fn) == 0
        runs.append(_params(model))
    for pc, pe in zip(runs[1], runs[0]):
        np.testing.assert_allclose(pc, pe, rtol=1e-12)
    assert not np.allclose(runs[0][1], _params(_linear(6, 12))[1])    # the bias moved


def test_fused_module_gradients_match_numpy(fusing):
    """The gradients the fused pass gives for weight and bias, against NumPy's formulas."""
    rng = np.random.default_rng(9)
    Xn, yn = rng.standard_normal((800, 5)), rng.standard_normal((800, 1))
    model = _linear(5, 13)
    loss_fn = tg.nn.MSELoss()

    @tg.compile
    def grads(X, y):
        model.zero_grad()
        loss_fn(model(X), y).backward()
        return model.weight.grad.clone(), model.bias.grad.clone()
    for _ in range(3):
        gw, gb = grads(tg.tensor(Xn), tg.tensor(yn))
    W, b = (p.detach().numpy() for p in model.parameters())
    r = Xn @ W.T + b - yn
    np.testing.assert_allclose(gw.numpy(), 2 / 800 * r.T @ Xn, rtol=1e-12)
    np.testing.assert_allclose(gb.numpy(), 2 / 800 * r.sum(0), rtol=1e-12)


@pytest.mark.parametrize("loss", ["MSELoss", "HuberLoss"])
def test_fused_module_program_specialized_equals_interpreted_float32(fusing, loss):
    rng = np.random.default_rng(10)
    X = tg.tensor(rng.standard_normal((3000, 16)).astype(np.float32))
    y = tg.tensor(rng.standard_normal((3000, 1)).astype(np.float32))
    out = []
    for specialize_after in (0, None):
        model = _linear(16, 14, dtype=tg.float32)
        f = tg.compile(_module_step(model, MODULE_LOSSES[loss](),
                                    tg.optim.SGD(model.parameters(), lr=0.05)),
                       specialize_after=specialize_after)
        hist = f.run(8, X, y)
        assert _fused_rows(f) == 2
        if specialize_after == 0:
            _runs_fused_code(f)
        out.append((hist, _params(model)))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-5)
    for a, b in zip(out[0][1], out[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("outputs", [1, 6])
def test_fused_module_program_matches_torch(fusing, outputs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(15)
    Xn = rng.standard_normal((4000, 32)).astype(np.float32)
    yn = (Xn @ rng.standard_normal((32, outputs)) + 0.5).astype(np.float32)
    model = tg.nn.Linear(32, outputs)
    ref = torch.nn.Linear(32, outputs)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(model.weight.detach().numpy().copy()))
        ref.bias.copy_(torch.from_numpy(model.bias.detach().numpy().copy()))
    step = tg.compile(_module_step(model, tg.nn.MSELoss(),
                                   tg.optim.SGD(model.parameters(), lr=0.05)))
    hist = step.run(20, tg.tensor(Xn), tg.tensor(yn))
    assert _fused_rows(step) == 2
    opt, loss_fn = torch.optim.SGD(ref.parameters(), lr=0.05), torch.nn.MSELoss()
    Xt, yt = torch.from_numpy(Xn), torch.from_numpy(yn)
    ref_hist = []
    for _ in range(20):
        opt.zero_grad()
        loss = loss_fn(ref(Xt), yt)
        loss.backward()
        opt.step()
        ref_hist.append(loss.item())
    np.testing.assert_allclose(hist, ref_hist, rtol=1e-4)
    np.testing.assert_allclose(model.weight.detach().numpy(), ref.weight.detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.bias.detach().numpy(), ref.bias.detach().numpy(),
                               rtol=1e-4, atol=1e-5)


# Hidden layers: nn.Linear, an activation, nn.Linear: the second product reads a value of the
# region (the hidden layer's output), and the second layer's W.t() is recorded between them.
NETS = {
    "relu": lambda: [tg.nn.Linear(12, 16), tg.nn.ReLU(), tg.nn.Linear(16, 1)],
    "tanh 3 outputs": lambda: [tg.nn.Linear(12, 9), tg.nn.Tanh(), tg.nn.Linear(9, 3)],
    "two hidden layers": lambda: [tg.nn.Linear(12, 16), tg.nn.ReLU(), tg.nn.Linear(16, 8),
                                  tg.nn.Sigmoid(), tg.nn.Linear(8, 1)],
    "no biases": lambda: [tg.nn.Linear(12, 7, bias=False), tg.nn.ReLU(),
                          tg.nn.Linear(7, 1, bias=False)],
}


def _net(name, seed):
    tg.manual_seed(seed)
    return tg.nn.Sequential(*NETS[name]()).to(tg.float64)


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("loss", ["MSELoss", "HuberLoss"])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_hidden_layers_equal_eager(fusing, net, loss, threads):
    """An MLP as users write it: every layer's product, bias and activation and the loss in
    one fused pass, forward and back through the layers a block of rows at a time; weights,
    biases and losses are eager's."""
    rng = np.random.default_rng(len(net))
    X = tg.tensor(rng.standard_normal((3000, 12)))
    outputs = 3 if "3 outputs" in net else 1
    y = tg.tensor(rng.standard_normal((3000, outputs)))
    before = tg.get_num_threads()
    tg.set_num_threads(threads)
    runs = []
    try:
        for mode in ("eager", "compiled"):
            model = _net(net, 21)
            step = _module_step(model, MODULE_LOSSES[loss](),
                                tg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
            fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
            losses = [fn(X, y).item() for _ in range(3)]
            if mode == "compiled":
                losses += list(fn.run(3, X, y))
                assert _fused_rows(fn) == 2
                _runs_fused_code(fn)
            else:
                losses += [fn(X, y).item() for _ in range(3)]
            runs.append((losses, _params(model)))
    finally:
        tg.set_num_threads(before)
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-11)
    for pc, pe in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(pc, pe, rtol=1e-10, atol=1e-13)


def test_fused_hidden_layer_gradients_match_numpy(fusing):
    """The fused pass's gradients of both layers against backpropagation written in NumPy."""
    rng = np.random.default_rng(22)
    Xn, yn = rng.standard_normal((2500, 12)), rng.standard_normal((2500, 1))
    model = _net("relu", 23)
    loss_fn = tg.nn.MSELoss()

    @tg.compile
    def grads(X, y):
        model.zero_grad()
        loss_fn(model(X), y).backward()
        return tuple(p.grad.clone() for p in model.parameters())
    for _ in range(3):
        got = grads(tg.tensor(Xn), tg.tensor(yn))
    W1, b1, W2, b2 = (p.detach().numpy() for p in model.parameters())
    Z = Xn @ W1.T + b1
    H = np.maximum(Z, 0)
    dz2 = 2 / 2500 * (H @ W2.T + b2 - yn)
    dZ = (dz2 @ W2) * (Z > 0)
    want = (dZ.T @ Xn, dZ.sum(0), dz2.T @ H, dz2.sum(0))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("case", ["hidden returned", "hidden weight frozen"])
def test_hidden_layer_programs_outside_the_pass_stay_correct(fusing, case):
    """The hidden layer's output read outside the loss (returned): not fused into one pass;
    the first layer frozen: the pass starts at the second product. Values are eager's."""
    rng = np.random.default_rng(24)
    X = tg.tensor(rng.standard_normal((2000, 12)))
    y = tg.tensor(rng.standard_normal((2000, 1)))
    runs = []
    for mode in ("eager", "compiled"):
        model = _net("relu", 25)
        if case == "hidden weight frozen":
            model[0].weight.requires_grad_(False)
            model[0].bias.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = tg.optim.SGD(params, lr=0.05)

        def step(X, y):
            opt.zero_grad()
            h = model[1](model[0](X))
            loss = tg.nn.functional.mse_loss(model[2](h), y)
            loss.backward()
            opt.step()
            return (loss, h) if case == "hidden returned" else loss
        fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
        outs = [fn(X, y) for _ in range(4)]
        if case == "hidden returned":
            outs = [o[0].item() for o in outs] + [outs[-1][1].detach().numpy().copy()]
        else:
            outs = [o.item() for o in outs]
        if mode == "compiled":
            assert _fused_rows(fn) == (0 if case == "hidden returned" else 2)
        runs.append((outs, _params(model)))
    for a, b in zip(runs[1][0], runs[0][0]):
        np.testing.assert_allclose(a, b, rtol=1e-11)
    for pc, pe in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(pc, pe, rtol=1e-11, atol=1e-14)


def test_fused_hidden_layer_matches_torch(fusing):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(26)
    Xn = rng.standard_normal((4000, 32)).astype(np.float32)
    yn = (np.tanh(Xn @ rng.standard_normal((32, 1))) + 0.5).astype(np.float32)
    tg.manual_seed(27)
    model = tg.nn.Sequential(tg.nn.Linear(32, 64), tg.nn.ReLU(), tg.nn.Linear(64, 1))
    ref = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    with torch.no_grad():
        for r, p in zip(ref.parameters(), model.parameters()):
            r.copy_(torch.from_numpy(p.detach().numpy().copy()))
    step = tg.compile(_module_step(model, tg.nn.MSELoss(),
                                   tg.optim.SGD(model.parameters(), lr=0.05)),
                      specialize_after=0)
    hist = step.run(20, tg.tensor(Xn), tg.tensor(yn))
    assert _fused_rows(step) == 2
    _runs_fused_code(step)
    opt, loss_fn = torch.optim.SGD(ref.parameters(), lr=0.05), torch.nn.MSELoss()
    Xt, yt = torch.from_numpy(Xn), torch.from_numpy(yn)
    ref_hist = []
    for _ in range(20):
        opt.zero_grad()
        loss = loss_fn(ref(Xt), yt)
        loss.backward()
        opt.step()
        ref_hist.append(loss.item())
    np.testing.assert_allclose(hist, ref_hist, rtol=1e-4)
    for p, r in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), r.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_program_rows_count_only_their_slot_fields():
    """A region value in slot 0: the other fields of program rows (record numbers, indices of
    immediates, zeros) are not reads of slot 0, which would stop the region from fusing."""
    from tapegrad.interpret import P_ACC, P_BWD, P_CMP, P_COPY, P_FWD, P_SEED, P_ZERO
    from tapegrad.ops import OP_MUL
    R = np.array([[OP_MUL, 5, 5, 0, -1, 5, 0, 0], [OP_MUL, 0, 6, 7, -1, 5, 0, 0]], np.int64)
    rows = [(P_FWD, 0, 2, 0, 0, 0), (P_SEED, 7, 0, 0, 0, 0), (P_BWD, 1, 0, 0, 0, 0),
            (P_ACC, 8, 9, 0, 0, 0), (P_ZERO, 9, 0, 0, 0, 0), (P_CMP, 0, 6, -1, 0, 0),
            (P_COPY, 7, -1, 0, 0, 0)]
    count = fuse._readers(R, rows)
    assert count[0] == 2                # written by record 0, read by record 1
    assert (count[5], count[6], count[7], count[8], count[9]) == (2, 2, 3, 1, 2)


@pytest.mark.parametrize("p", [1, 3])
@pytest.mark.parametrize("case", ["target scaled", "learned scale"])
def test_side_records_run_before_the_pass(fusing, p, case):
    """Records between the product and the loss that read none of the pass's values (y * 2
    written after the model, exp of a learned scale): run before the pass, a learned one's
    backward after it; values and gradients are eager's."""
    rng = np.random.default_rng(30 + p)
    X = tg.tensor(rng.standard_normal((2000, 6)))
    y = tg.tensor(rng.standard_normal((2000, p)))
    runs = []
    for mode in ("eager", "compiled"):
        w = tg.tensor(np.linspace(-1, 1, 6 * p).reshape(6, p), requires_grad=True)
        s = tg.tensor([0.3], requires_grad=True)

        def step(X, y):
            z = X @ w
            if case == "target scaled":
                loss = ((z - y * 2.0) ** 2).mean()
            else:
                loss = ((z * s.exp() - y) ** 2).mean()
            loss.backward()
            with tg.no_grad():
                w.sub_(0.05 * w.grad)
                w.grad.zero_()
                if s.grad is not None:
                    s.sub_(0.05 * s.grad)
                    s.grad.zero_()
            return loss
        fn = tg.compile(step, specialize_after=0) if mode == "compiled" else step
        losses = [fn(X, y).item() for _ in range(5)]
        if mode == "compiled":
            assert _fused_rows(fn) == 2
            _runs_fused_code(fn)
        runs.append((losses, w.detach().numpy().copy(), s.detach().numpy().copy()))
    for a, b in zip(runs[1], runs[0]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    if case == "learned scale":
        assert runs[0][2][0] != 0.3              # the scale learned
