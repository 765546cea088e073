"""Eager recognition (tapegrad.eager): a repeated eager step runs as its compiled program.

Recognition is forced here (every step keyed, compiled at the second sighting) so that small
problems exercise it; results are compared with the interpreters (recognition off) and with
NumPy references in float64.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import eager


@pytest.fixture
def forced(monkeypatch):
    monkeypatch.setattr(eager, "MIN_STEP", 0.0)
    monkeypatch.setattr(eager, "COMPILE_AFTER", 0.0)
    eager.set_eager_compile(True)
    yield
    eager.set_eager_compile(True)
    eager.clear()


def _loop(X, y, steps, opt="sgd", hold=False, lr=0.05, bias=True, sched=False, hidden=0):
    tg.manual_seed(3)
    model = (tg.nn.Sequential(tg.nn.Linear(X.shape[1], hidden), tg.nn.ReLU(),
                              tg.nn.Linear(hidden, 1)) if hidden else
             tg.nn.Linear(X.shape[1], 1, bias=bias)).to(X.dtype)
    crit = tg.nn.MSELoss()
    o = (tg.optim.SGD(model.parameters(), lr=lr, momentum=0.9) if opt == "momentum" else
         tg.optim.Adam(model.parameters(), lr=lr) if opt == "adam" else
         tg.optim.SGD(model.parameters(), lr=lr))
    s = tg.optim.lr_scheduler.StepLR(o, 2, 0.5) if sched else None
    losses, preds = [], []
    for _ in range(steps):
        o.zero_grad()
        pred = model(X)
        loss = crit(pred, y)
        loss.backward()
        o.step()
        if s is not None:
            s.step()
        losses.append(loss.item())
        if hold:
            preds.append(pred.detach().numpy().copy())
    params = [p.detach().numpy().copy() for p in model.parameters()]
    return params, losses, preds


def _data(n, k, dtype):
    rng = np.random.default_rng(n + k)
    X = rng.standard_normal((n, k))
    y = X @ rng.standard_normal((k, 1)) + 0.1 * rng.standard_normal((n, 1))
    return tg.tensor(X, dtype=dtype), tg.tensor(y, dtype=dtype)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("n,k", [(50, 3), (3000, 8)])     # small: no fused region; fused
def test_recognised_loop_matches_interpreter(forced, opt, n, k):
    X, y = _data(n, k, tg.float32)
    eager.set_eager_compile(False)
    ref = _loop(X, y, 8, opt, hold=True)
    eager.set_eager_compile(True)
    got = _loop(X, y, 8, opt, hold=True)
    assert "compiled" in eager.explain()
    assert ("with a fused pass" in eager.explain()) == (n > 50), eager.explain()
    assert "stays interpreted" not in eager.explain()
    for a, b in zip(ref[0], got[0]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-5)
    for a, b in zip(ref[2], got[2]):          # held predictions: values as the arena has them
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("hold", [False, True])
def test_recognised_mlp_matches_interpreter(forced, hold):
    """A hidden layer: the eager step runs its fused pass through both layers; a held
    prediction is stored where the tensor reads it."""
    X, y = _data(3000, 8, tg.float32)
    eager.set_eager_compile(False)
    ref = _loop(X, y, 8, "momentum", hold=hold, hidden=16)
    eager.set_eager_compile(True)
    got = _loop(X, y, 8, "momentum", hold=hold, hidden=16)
    assert "with a fused pass" in eager.explain(), eager.explain()
    assert "stays interpreted" not in eager.explain()
    for a, b in zip(ref[0], got[0]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-5)
    for a, b in zip(ref[2], got[2]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def _minibatch_loop(X, y, epochs, batch=256):
    tg.manual_seed(4)
    model = tg.nn.Linear(X.shape[1], 1).to(X.dtype)
    crit, o = tg.nn.MSELoss(), tg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng, losses = np.random.default_rng(5), []
    for _ in range(epochs):
        perm = tg.from_numpy(rng.permutation(len(X)))
        for k in range(0, len(X), batch):
            idx = perm[k:k + batch]
            o.zero_grad()
            loss = crit(model(X[idx]), y[idx])
            loss.backward()
            o.step()
            losses.append(loss.item())
    return [p.detach().numpy().copy() for p in model.parameters()], losses


def test_minibatches_drawn_by_index_are_one_program(forced):
    """X[idx] puts each batch's rows in the metadata; the key leaves them out (the program
    reads them at run time), so every full batch of an epoch runs the one compiled step."""
    X, y = _data(3000, 8, tg.float32)
    eager.set_eager_compile(False)
    ref = _minibatch_loop(X, y, 2)
    eager.set_eager_compile(True)
    got = _minibatch_loop(X, y, 2)
    said = eager.explain()
    assert "with a fused pass: compiled" in said, said
    assert "stays interpreted" not in said, said
    assert said.count("compiled after") <= 2, said     # full batches; the last, shorter one
    for a, b in zip(ref[0], got[0]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4)


def test_unfused_program_is_bit_identical(forced):
    X, y = _data(40, 3, tg.float32)
    eager.set_eager_compile(False)
    ref = _loop(X, y, 6)
    eager.set_eager_compile(True)
    got = _loop(X, y, 6)
    assert "compiled" in eager.explain()
    for a, b in zip(ref[0], got[0]):
        np.testing.assert_array_equal(b, a)
    assert got[1] == ref[1]


def test_float64_matches_numpy_gradient_descent(forced):
    X, y = _data(2500, 6, tg.float64)
    params, losses, _ = _loop(X, y, 10, lr=0.1)
    tg.manual_seed(3)
    m = tg.nn.Linear(6, 1).to(tg.float64)
    W, b = m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()
    Xn, yn = X.numpy(), y.numpy()
    for step in range(10):
        r = Xn @ W.T + b - yn
        assert abs(losses[step] - np.mean(r ** 2)) < 1e-12 * max(1.0, losses[step])
        W = W - 0.1 * (2 / len(r)) * r.T @ Xn
        b = b - 0.1 * (2 / len(r)) * r.sum(0)
    np.testing.assert_allclose(params[0], W, rtol=1e-10)
    np.testing.assert_allclose(params[1], b, rtol=1e-10)


def test_scheduler_changes_lr_without_a_new_key(forced):
    X, y = _data(3000, 4, tg.float64)
    eager.set_eager_compile(False)
    ref = _loop(X, y, 8, sched=True)
    eager.set_eager_compile(True)
    got = _loop(X, y, 8, sched=True)
    for a, b in zip(ref[0], got[0]):
        np.testing.assert_allclose(b, a, rtol=1e-10)
    assert eager.explain().count("compiled") <= 2


def test_program_change_falls_back(forced):
    X, y = _data(3000, 4, tg.float64)
    X2, y2 = _data(1000, 4, tg.float64)
    tg.manual_seed(0)
    m = tg.nn.Linear(4, 1).to(tg.float64)
    o = tg.optim.SGD(m.parameters(), lr=0.1)
    crit = tg.nn.MSELoss()
    for step in range(12):
        Xi, yi = (X2, y2) if step % 5 == 4 else (X, y)     # another shape now and then
        o.zero_grad()
        loss = crit(m(Xi), yi)
        loss.backward()
        W, b = m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()
        r = Xi.numpy() @ W.T + b - yi.numpy()
        np.testing.assert_allclose(m.weight.grad.numpy(), (2 / len(r)) * r.T @ Xi.numpy(),
                                   rtol=1e-10)
        np.testing.assert_allclose(m.bias.grad.numpy(), (2 / len(r)) * r.sum(0), rtol=1e-10)
        o.step()


def test_errors_and_other_backwards_still_behave(forced):
    X, y = _data(3000, 4, tg.float64)
    tg.manual_seed(0)
    m = tg.nn.Linear(4, 1).to(tg.float64)
    crit = tg.nn.MSELoss()
    for _ in range(4):                  # recognised and compiled
        m.zero_grad()
        crit(m(X), y).backward()
    g = m.weight.grad.numpy().copy()
    loss = crit(m(X), y)
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    m.zero_grad()
    loss = crit(m(X), y)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), 2 * g, rtol=1e-10)
    (gw,) = tg.autograd.grad(crit(m(X), y), [m.weight])
    np.testing.assert_allclose(gw.numpy(), g, rtol=1e-10)
    w = tg.ones(4, 1, dtype=tg.float64, requires_grad=True)
    z = (X @ w).sigmoid()
    z.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_switch_off_gives_interpreter_results(forced):
    X, y = _data(3000, 8, tg.float32)
    eager.set_eager_compile(False)
    a = _loop(X, y, 5)
    b = _loop(X, y, 5)
    assert eager.explain() == "eager recognition: nothing recognised yet"
    for p, q in zip(a[0], b[0]):
        np.testing.assert_array_equal(p, q)


def test_matches_torch(forced):
    torch = pytest.importorskip("torch")
    X, y = _data(3000, 8, tg.float32)
    got = _loop(X, y, 20, lr=0.05)
    tg.manual_seed(3)
    ref = tg.nn.Linear(8, 1)
    tm = torch.nn.Linear(8, 1)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(ref.weight.detach().numpy()))
        tm.bias.copy_(torch.tensor(ref.bias.detach().numpy()))
    o = torch.optim.SGD(tm.parameters(), lr=0.05)
    Xt, yt = torch.tensor(X.numpy()), torch.tensor(y.numpy())
    for _ in range(20):
        o.zero_grad()
        torch.nn.functional.mse_loss(tm(Xt), yt).backward()
        o.step()
    np.testing.assert_allclose(got[0][0], tm.weight.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[0][1], tm.bias.detach().numpy(), rtol=1e-4, atol=1e-6)
