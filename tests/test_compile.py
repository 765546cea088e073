"""tapegrad.compile: replay equals eager; guards, re-records, inputs, state, run()."""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from test_fuse import _module_step
from test_ops import CASES, IDS

X3 = np.array([[0.2, 0.5, 0.7], [0.4, 0.6, 0.8], [0.3, 0.6, 0.9]])
Y3 = np.array([[0.8, 0.8], [0.7, 0.9], [0.9, 0.9]])


def _regression(dtype=tg.float64, seed=0):
    rng = np.random.default_rng(seed)
    W = tg.tensor(rng.standard_normal((3, 2)), dtype=dtype, requires_grad=True)

    def step(X, Y, lr):
        loss = tg.norm(X @ W - Y) ** 2
        loss.backward()
        W.data = W.data - lr * W.grad
        W.grad.zero_()
        return loss
    return W, step


def _compiled_and_eager():
    """The seed data, and twin regressions: one step compiled, the other eager."""
    W1, s1 = _regression()
    W2, s2 = _regression()
    return tg.tensor(X3), tg.tensor(Y3), W1, W2, tg.compile(s1), s2


def _close(a, b, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol,
                               atol=1e-300)


def test_training_step_replay_equals_eager():
    X, Y, W1, W2, c, s2 = _compiled_and_eager()
    for _ in range(6):
        _close(c(X, Y, 0.25).item(), s2(X, Y, 0.25).item())
        _close(W1.detach().numpy(), W2.detach().numpy())
        _close(W1.grad.numpy(), W2.grad.numpy())
    assert len(c.paths) == 1 and c.n_records == 2     # first call: .grad did not exist yet
    assert "recorded path 1" in c.explain()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_op_replays_like_eager(case):
    """A training step through each op of the table: losses, gradients and parameters."""
    op, f_tg, _, shapes = case
    rng = np.random.default_rng(len(shapes))
    lims = op.lims
    data = [rng.uniform(lims[0], lims[1], s) for s in shapes]
    twins = [[tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in data]
             for _ in range(2)]

    def make(ps):
        def step(weight):
            loss = (f_tg(*ps) * weight).sum()
            loss.backward()
            with tg.no_grad():
                for p in ps:
                    p -= 1e-3 * p.grad
                    p.grad.zero_()
            return loss
        return step
    compiled, eager = tg.compile(make(twins[0])), make(twins[1])
    out_shape = f_tg(*twins[1]).shape
    for k in range(4):
        w = tg.tensor(rng.uniform(0.5, 1.5, tuple(out_shape)), dtype=tg.float64)
        _close(compiled(w).item(), eager(w).item())
        for p, q in zip(*twins):
            _close(p.detach().numpy(), q.detach().numpy())
    assert compiled.n_records == 2, compiled.explain()


def _branchy(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    if b.sum() > 0:
        c = b
    else:
        c = 100 * b
    return c


@pytest.mark.parametrize("grad", [False, True])
def test_guards_flip_both_ways(grad):
    f = tg.compile(_branchy)
    values = [[1.0, 2.0], [-1.0, 0.5], [1e-3, 1e-3], [1e4, 1e5], [3.0, 1.0], [-5.0, -1.0],
              [1.0, 2.0], [-1.0, 0.5], [1e-30, 2e-30], [0.9, 2.1]]
    for v in values:
        a1 = tg.tensor(v, dtype=tg.float64, requires_grad=grad)
        a2 = tg.tensor(v, dtype=tg.float64, requires_grad=grad)
        r1, r2 = f(a1), _branchy(a2)
        _close(r1.detach().numpy(), r2.detach().numpy())
        if grad:
            r1.sum().backward()
            r2.sum().backward()
            _close(a1.grad.numpy(), a2.grad.numpy())
    if not grad:
        assert "guard failed" in f.explain()
        assert 1 < f.n_records < len(values)          # paths are cached and reused


def test_shape_change_records_again():
    f = tg.compile(lambda x: (x * x).sum())
    for n in (3, 4, 3, 4):
        x = np.arange(n, dtype=np.float64)
        _close(f(tg.tensor(x)).item(), (x * x).sum())
    assert f.n_records == 2


def test_python_number_argument_is_an_input():
    X, Y, W1, W2, c, s2 = _compiled_and_eager()
    for lr in (0.25, 0.25, 0.1, 0.05, 0.3):
        _close(c(X, Y, lr).item(), s2(X, Y, lr).item())
        _close(W1.detach().numpy(), W2.detach().numpy())
    assert c.n_records == 2
    g = tg.compile(lambda x, k: x * (k / 2) + k)       # derived numbers stay inputs
    x = tg.tensor([1.0, 2.0])
    for k in (1.0, 3.0, -2.0):
        _close(g(x, k).numpy(), np.array([1.0, 2.0], np.float32) * (k / 2) + k, rtol=1e-6)
    assert g.n_records == 1


def test_number_in_python_control_flow_is_guarded():
    f = tg.compile(lambda x, n: x * 2 if n > 1 else x * 3)
    x = tg.tensor([1.0])
    assert f(x, 2).item() == 2.0 and f(x, 0).item() == 3.0 and f(x, 5).item() == 2.0


def test_state_changed_between_calls_is_seen():
    X, Y, W1, W2, c, s2 = _compiled_and_eager()
    for k in range(3):
        c(X, Y, 0.1)
        s2(X, Y, 0.1)
    new = np.random.default_rng(5).standard_normal((3, 2))
    for W in (W1, W2):
        W.data = tg.tensor(new)
    _close(c(X, Y, 0.1).item(), s2(X, Y, 0.1).item())
    tg.manual_seed(3)
    W1.data.normal_()
    tg.manual_seed(3)
    W2.data.normal_()
    _close(c(X, Y, 0.1).item(), s2(X, Y, 0.1).item())
    _close(W1.detach().numpy(), W2.detach().numpy())
    assert c.n_records == 2


def test_grad_set_to_none_between_calls():
    X, Y, W1, W2, c, s2 = _compiled_and_eager()
    for k in range(5):
        if k == 3:
            W1.grad = W2.grad = None
        _close(c(X, Y, 0.1).item(), s2(X, Y, 0.1).item())
        _close(W1.detach().numpy(), W2.detach().numpy())


def test_optimizer_step_and_zero_grad():
    def setup():
        tg.manual_seed(0)
        model = tg.nn.Linear(3, 2).double()
        return model, tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    (m1, o1), (m2, o2) = setup(), setup()
    X, Y = tg.tensor(X3), tg.tensor(Y3)

    def make(m, o):
        def step(X, Y):
            o.zero_grad()
            loss = ((m(X) - Y) ** 2).mean()
            loss.backward()
            o.step()
            return loss
        return step
    c, e = tg.compile(make(m1, o1)), make(m2, o2)
    for k in range(8):
        if k == 5:
            for o in (o1, o2):
                o.param_groups[0]["lr"] = 0.05
        _close(c(X, Y).item(), e(X, Y).item())
        for p, q in zip(m1.parameters(), m2.parameters()):
            _close(p.detach().numpy(), q.detach().numpy())
    assert len(c.paths) == 1


def test_run_equals_single_calls():
    X, Y, W1, W2, c, s2 = _compiled_and_eager()
    hist = c.run(300, X, Y, 0.25)
    ref = [s2(X, Y, 0.25).item() for _ in range(300)]
    _close(hist, ref)
    _close(W1.detach().numpy(), W2.detach().numpy())
    _close(W1.grad.numpy(), W2.grad.numpy())
    _close(c.run(10, X, Y, 0.25, every=5), [s2(X, Y, 0.25).item() for _ in range(10)][4::5])


def test_run_stops_at_a_failed_guard_and_continues():
    W = tg.tensor([4.0], dtype=tg.float64, requires_grad=True)
    V = tg.tensor([4.0], dtype=tg.float64, requires_grad=True)

    def make(p):
        def step():
            loss = (p * p).sum()
            lr = 0.05 if loss > 1 else 0.3      # flips mid-run, before any state is written
            loss.backward()
            with tg.no_grad():
                p.sub_(lr * p.grad)
                p.grad.zero_()
            return loss
        return step
    c, e = tg.compile(make(W)), make(V)
    _close(c.run(40, every=1), [e().item() for _ in range(40)])
    _close(W.detach().numpy(), V.detach().numpy())
    assert "run(): guard failed" in c.explain()


def test_guard_after_state_write_rolls_back():
    W = tg.tensor([4.0], dtype=tg.float64, requires_grad=True)
    V = tg.tensor([4.0], dtype=tg.float64, requires_grad=True)

    def make(p):
        def step():
            loss = (p * p).sum()
            loss.backward()                     # writes p.grad, then Python reads p
            with tg.no_grad():
                p.sub_((0.3 if p.sum() > 1 else 0.05) * p.grad)
                p.grad.zero_()
            return loss
        return step
    c, e = tg.compile(make(W)), make(V)
    _close(c.run(12), [e().item() for _ in range(12)])
    _close(W.detach().numpy(), V.detach().numpy())
    _close(W.grad.numpy(), V.grad.numpy())


def test_impure_function_runs_eagerly():
    f = tg.compile(lambda x: x + tg.randn(2, dtype=tg.float64))
    x = tg.zeros(2, dtype=tg.float64)
    tg.manual_seed(1)
    a = f(x).numpy()
    b = f(x).numpy()
    assert not np.array_equal(a, b)
    assert "not replayable" in f.explain()


def test_too_many_paths_warns_and_runs_eagerly():
    f = tg.compile(lambda x: x * 2 if float(x) > 0 else x * 3, max_paths=3)   # value guard
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for v in range(1, 8):
            assert f(tg.tensor([float(v)])).item() == 2.0 * v
    assert any("eagerly" in str(x.message) for x in w)
    assert f.eager


def test_inspection():
    X, Y = tg.tensor(X3), tg.tensor(Y3)
    fps = []
    for seed in (0, 1):
        W, s = _regression(seed=seed)
        c = tg.compile(s)
        for _ in range(3):
            c(X, Y, 0.25)
        text = c.tape.dump()
        assert "matmul" in text and "backward from record" in text
        assert c.tape.to_dot().startswith("digraph")
        fps.append(c.tape.fingerprint())
    assert fps[0] == fps[1]
    f = tg.compile(lambda x: x.sum())
    f(tg.tensor([1.0]))
    assert f.tape.fingerprint() != fps[0]


def test_result_that_requires_grad_takes_part_in_autograd():
    m = tg.compile(lambda x, w: (x @ w).tanh())
    rng = np.random.default_rng(0)
    w1 = tg.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    w2 = tg.tensor(w1.detach().numpy(), requires_grad=True)
    xs = [tg.tensor(rng.standard_normal((4, 3))) for _ in range(4)]
    outs = [m(x, w1) for x in xs]                   # several graphs alive at once
    assert outs[-1].grad_fn is not None and outs[-1].requires_grad
    sum(o.sum() for o in outs).backward()
    sum((x @ w2).tanh().sum() for x in xs).backward()
    _close(w1.grad.numpy(), w2.grad.numpy())
    assert m.n_records == 1 and "append" in m.explain()


@pytest.mark.parametrize("shuffle,drop_last", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("n,batch", [(10, 4), (100, 37)])   # fewer rows than are prefetched
def test_minibatch_run_equals_batches_by_hand(shuffle, drop_last, n, batch):  # ahead; more
    rng = np.random.default_rng(0)
    Xd, Yd = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    W1, s1 = _regression()
    W2, s2 = _regression()
    c = tg.compile(s1)
    hist = c.run(14, tg.tensor(Xd), Yd, 0.05, batch_size=batch, shuffle=shuffle, seed=7,
                 drop_last=drop_last)
    order, ref = np.random.default_rng(7), []
    while len(ref) < 14:
        perm = order.permutation(n) if shuffle else np.arange(n)
        for k in range(0, n - n % batch if drop_last else n, batch):
            if len(ref) < 14:
                ix = perm[k:k + batch]
                ref.append(s2(tg.tensor(Xd[ix]), tg.tensor(Yd[ix]), 0.05).item())
    _close(hist, ref)
    _close(W1.detach().numpy(), W2.detach().numpy())
    assert "compiled steps" not in c.explain() and c.n_records <= 4, c.explain()


def test_run_rejects_bad_arguments():
    f = tg.compile(lambda x: x.sum())
    with pytest.raises(ValueError):
        f.run(-1, tg.zeros(2))
    with pytest.raises(ValueError):
        f.run(3, tg.zeros(4), tg.zeros(5), batch_size=2)
    with pytest.raises(ValueError):
        f.run(3, 1.0, batch_size=2)


def test_compiled_training_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    Xd, Yd = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    W0, b0 = rng.standard_normal((2, 3)) * 0.3, rng.standard_normal(2) * 0.3

    def make(lib):
        model = lib.nn.Linear(3, 2).double()
        with lib.no_grad():
            model.weight.copy_(lib.tensor(W0))
            model.bias.copy_(lib.tensor(b0))
        opt = lib.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        X, Y = lib.tensor(Xd), lib.tensor(Yd)

        def step():
            opt.zero_grad()
            loss = lib.nn.functional.mse_loss(model(X), Y)
            loss.backward()
            opt.step()
            return loss
        return step, model
    s_tg, m_tg = make(tg)
    s_th, m_th = make(torch)
    hist = tg.compile(s_tg).run(100)
    ref = [s_th().item() for _ in range(100)]
    np.testing.assert_allclose(hist, ref, rtol=1e-9)
    np.testing.assert_allclose(m_tg.weight.detach().numpy(), m_th.weight.detach().numpy(),
                               rtol=1e-9)


def test_spliced_results_free_their_slots_once():
    from tapegrad.tape import TAPE
    m = tg.compile(lambda x, w: (x @ w).tanh())
    w = tg.tensor(np.ones((3, 2)), requires_grad=True)
    for k in range(6):
        m(tg.tensor(np.full((4, 3), float(k))), w).sum().backward()
    TAPE.flush()
    free = [s for lst in TAPE.free.values() for s in lst]
    assert len(free) == len(set(free))                  # no slot handed out twice
    assert all(TAPE.refs[s] == 0 for s in free)


def test_item_guards_its_uses_not_its_value():
    X, Y = tg.tensor(X3), tg.tensor(Y3)
    W1, s1 = _regression()
    W2, s2 = _regression()
    seen = []

    def step(X, Y):
        loss = s1(X, Y, 0.1)
        v = loss.item()
        seen.append(f"{v:.3f}")                 # printing: no guard
        return v if v > 1e-3 else -1.0          # a comparison: guarded by its outcome
    c = tg.compile(step)
    for k in range(5):
        _close(c(X, Y), s2(X, Y, 0.1).item())
    assert c.n_records == 2 and len(seen) == 2      # replays did not record again
    f = tg.compile(lambda x: x * x.sum().item())    # arithmetic: guarded by the value
    assert f(tg.tensor([1.0, 2.0])).tolist() == [3.0, 6.0]
    assert f(tg.tensor([2.0, 2.0])).tolist() == [8.0, 8.0]


def test_keyword_arguments_run_eagerly():
    f = tg.compile(lambda x, scale=2.0: x * scale)
    assert f(tg.tensor([1.0]), scale=3.0).item() == 3.0
    assert f(tg.tensor([1.0])).item() == 2.0 and "keyword" in f.explain()


def test_numbers_that_leave_the_tape_are_guarded():
    f = tg.compile(lambda x, lr: x * float(lr))         # float(): a Python value now
    x = tg.tensor([1.0, 2.0])
    assert f(x, 2.0).tolist() == [2.0, 4.0] and f(x, 3.0).tolist() == [3.0, 6.0]
    g = tg.compile(lambda x: x * x.sum().item())         # an .item() used as a constant
    assert g(tg.tensor([1.0, 2.0])).tolist() == [3.0, 6.0]
    assert g(tg.tensor([1.0, 3.0])).tolist() == [4.0, 12.0]


LR = 0.5


def test_python_numbers_in_closure_and_globals_are_guarded():
    global LR
    scale = 2.0
    f = tg.compile(lambda x: x * scale * LR)
    x = tg.tensor([1.0, 2.0])
    assert f(x).tolist() == [1.0, 2.0]
    scale = 3.0
    assert f(x).tolist() == [1.5, 3.0]
    LR = 1.0
    try:
        assert f(x).tolist() == [3.0, 6.0]
        assert "global LR" in f.explain() and "closure variable scale" in f.explain()
    finally:
        LR = 0.5


def test_tensor_made_between_calls_is_not_overwritten():
    """A replay copies the current .grad into the slot the .grad had when it recorded: the
    path holds that slot, so a tensor made between calls never lives there."""
    tg.manual_seed(0)
    net = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.ReLU(), tg.nn.Linear(4, 2)).double()
    opt = tg.optim.SGD(net.parameters(), lr=0.1)
    X, Y = tg.tensor(X3), tg.tensor(Y3)

    @tg.compile
    def step(X, Y):
        opt.zero_grad()
        loss = ((net(X) - Y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    made = []
    for _ in range(6):
        step(X, Y)
        made.append(tg.zeros(4, 3, dtype=tg.float64))
    assert all(float(z.abs().sum()) == 0.0 for z in made)


def test_outside_graph_alive_runs_eagerly_then_records_again():
    """While a graph recorded outside the function is alive the function runs eagerly (one
    explain() line for the run of calls); once it is gone, the function records again."""
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    X, Y, W1, W2, c, s2 = _compiled_and_eager()
    for _ in range(150):
        _close(c(X, Y, 0.1).item(), s2(X, Y, 0.1).item())
    assert c.explain().count("still alive") == 1 and c.explain().startswith("calls 1-150")
    del b
    for _ in range(110):
        _close(c(X, Y, 0.1).item(), s2(X, Y, 0.1).item())
    assert len(c.paths) == 1 and "recorded path 1" in c.explain()
    _close(W1.detach().numpy(), W2.detach().numpy())
    assert a.grad is None


def test_grad_replaced_between_calls_is_accumulated_into():
    """A step that accumulates into .grad reads the .grad it finds, also a new tensor."""
    def make():
        W = tg.tensor(np.linspace(-1, 1, 6).reshape(3, 2), requires_grad=True)

        def step(X, Y):
            loss = ((X @ W - Y) ** 2).sum()
            loss.backward()                     # no zero_grad: gradients accumulate
            return loss
        return W, step
    X, Y = tg.tensor(X3), tg.tensor(Y3)
    (W1, s1), (W2, s2) = make(), make()
    c = tg.compile(s1)
    for k in range(6):
        if k in (3, 4):
            for W in (W1, W2):
                W.grad = tg.full((3, 2), float(k), dtype=tg.float64)
        _close(c(X, Y).item(), s2(X, Y).item())
        _close(W1.grad.numpy(), W2.grad.numpy())


# ---- the tier: interpreted or specialized, chosen by cost ----

def _linear_program(seed, n=50):
    rng = np.random.default_rng(seed)
    X = tg.tensor(rng.standard_normal((n, 3)))
    y = tg.tensor(rng.standard_normal((n, 1)))
    tg.manual_seed(seed)
    model = tg.nn.Linear(3, 1, dtype=tg.float64)
    step = _module_step(model, tg.nn.MSELoss(), tg.optim.SGD(model.parameters(), lr=0.05))
    return step, model, X, y


def _fresh_cost(monkeypatch, program, steps):
    """Compiling costs `program` and `steps` seconds, and nothing is in the disk cache."""
    from tapegrad import codegen
    monkeypatch.setattr(codegen, "COMPILE_COST", {False: (program, steps), True: (program, steps)})
    monkeypatch.setattr(codegen, "_loaded", {})
    monkeypatch.setattr(codegen.glob, "glob", lambda *a, **k: [])


def test_default_tier_is_by_cost():
    assert tg.compile(lambda x: x).specialize_after == "auto"


def test_short_run_stays_interpreted_and_says_why(monkeypatch):
    _fresh_cost(monkeypatch, 1e6, 1e6)
    step, model, X, y = _linear_program(0)
    f = tg.compile(step)
    f.run(30, X, y)
    assert all(p.fast is None for ps in f.paths.values() for p in ps)
    assert "interpreted," in f.explain() and "compiling it would take" in f.explain()


def test_long_run_specializes_and_equals_interpreted(monkeypatch):
    # compiling "costs" 1 ns: any run with steps ahead pays for it
    _fresh_cost(monkeypatch, 1e-9, 1e-9)
    out = []
    for after in ("auto", None):
        step, model, X, y = _linear_program(1)
        f = tg.compile(step, specialize_after=after)
        hist = f.run(40, X, y)
        fast = [p.fast for ps in f.paths.values() for p in ps]
        assert any(fast) == (after == "auto"), f.explain()
        out.append((hist, [p.detach().numpy().copy() for p in model.parameters()]))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1], out[1][1]):
        np.testing.assert_array_equal(a, b)


def test_run_explains_the_specialization(monkeypatch):
    _fresh_cost(monkeypatch, 1e-9, 1e-9)
    step, model, X, y = _linear_program(2)
    f = tg.compile(step)
    f.run(10, X, y)
    assert "specialized, " in f.explain() and "take longer than compiling" in f.explain()


def test_single_calls_specialize_once_interpreted_time_exceeds_the_cost(monkeypatch):
    _fresh_cost(monkeypatch, 0.0, 0.0)
    step, model, X, y = _linear_program(3)
    f = tg.compile(step)
    for _ in range(6):
        f(X, y)
    assert f.last.fast, f.explain()
    assert "its interpreted steps have taken" in f.explain()


CACHED_PROGRAM = """
import sys
import numpy as np
import tapegrad as tg
X = tg.tensor(np.linspace(-1, 1, 60).reshape(20, 3))
y = tg.tensor(np.linspace(0, 2, 20).reshape(20, 1))
tg.manual_seed(0)
model = tg.nn.Linear(3, 1, dtype=tg.float64)
opt = tg.optim.SGD(model.parameters(), lr=0.05)

def step(X, y):
    opt.zero_grad()
    loss = ((model(X) - y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss
after = None if sys.argv[1] == "none" else "auto" if sys.argv[1] == "auto" else 0
f = tg.compile(step, specialize_after=after)
print(repr(f.run(5, X, y).tolist()))
print(f.explain())
"""


def test_code_in_the_disk_cache_loads_at_once(tmp_path):
    """A second process running the same program loads its compiled code at once (the
    interpreters' cache is the package's; the programs' is under XDG_CACHE_HOME)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    out = {}
    for mode in ("auto", "zero", "auto", "none"):
        r = subprocess.run([sys.executable, "-c", CACHED_PROGRAM, mode], env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        out.setdefault(mode, []).append(r.stdout)
    first, second = out["auto"]
    assert "disk cache" not in first and "specialized" not in first     # nothing cached yet
    assert "specialized, its compiled code is in the disk cache" in second
    # the same losses in every tier
    histories = {o.splitlines()[0] for runs in out.values() for o in runs}
    assert len(histories) == 1, histories


@pytest.mark.parametrize("pair", [False, True])
def test_results_kept_from_every_call_keep_their_values(pair):
    """losses.append(step(X, y)) and .item() later, as torch users write: the tensor the
    recording call returned is not the slot that later replays write again."""
    rng = np.random.default_rng(5)
    X = tg.tensor(rng.standard_normal((200, 3)))
    y = tg.tensor(rng.standard_normal((200, 1)))
    runs = []
    for mode in ("eager", "compiled"):
        tg.manual_seed(6)
        model = tg.nn.Linear(3, 1).to(tg.float64)
        opt = tg.optim.SGD(model.parameters(), lr=0.05)

        def step(X, y):
            opt.zero_grad()
            pred = model(X)
            loss = tg.nn.functional.mse_loss(pred, y)
            loss.backward()
            opt.step()
            return (loss, pred) if pair else loss
        fn = tg.compile(step) if mode == "compiled" else step
        kept = [fn(X, y) for _ in range(6)]
        if pair:
            runs.append(([l.item() for l, _ in kept], [p.detach().numpy().copy() for _, p in kept]))
        else:
            runs.append(([l.item() for l in kept], []))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-12)
    assert len(set(runs[1][0])) == 6                # every step's own loss
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
