"""Specialized replay (tapegrad.codegen): a path compiled to straight-line code computes
exactly what the interpreter computes, for every op, in both layouts of the generated code."""
import os

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import codegen
from tapegrad.compile import _MISS
from test_compile import X3, Y3, _branchy, _close, _regression
from test_ops import CASES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(params=["straight", "table"])
def layout(request, monkeypatch):
    """Straight-line code, or a loop over a table of distinct pieces (long programs)."""
    monkeypatch.setattr(codegen, "STRAIGHT", 10**9 if request.param == "straight" else 0)
    return request.param


def _selected():
    """Per op, its first and last case of the op table: between them they take every branch
    of the code writer (same-shape and size-1 operands, broadcasting, full and per-dim
    reductions, matrix and batched products, data movement)."""
    first, last = {}, {}
    for i, (op, _, _, _) in enumerate(CASES):
        first.setdefault(op.name, i)
        last[op.name] = i
    chosen = sorted(set(first.values()) | set(last.values()))
    return [chosen[k:k + 6] for k in range(0, len(chosen), 6)]


GROUPS = _selected()


def _all_ops_step(cases, params, weights):
    """One training step through several cases of the op table at once."""
    def step():
        loss = 0.0
        for (op, f_tg, _, _), ps, w in zip(cases, params, weights):
            loss = loss + (f_tg(*ps) * w).sum()
        loss.backward()
        with tg.no_grad():
            for ps in params:
                for p in ps:
                    p -= 1e-3 * p.grad
                    p.grad.zero_()
        return loss
    return step


def _twins(cases, n, dtype=tg.float64):
    rng = np.random.default_rng(0)
    data = [[rng.uniform(*op.lims, s) for s in shapes] for op, _, _, shapes in cases]
    params = [[[tg.tensor(a, dtype=dtype, requires_grad=True) for a in case] for case in data]
              for _ in range(n)]
    weights = [tg.tensor(rng.uniform(0.5, 1.5, tuple(f(*ps).shape)), dtype=dtype)
               for (_, f, _, _), ps in zip(cases, params[0])]
    return params, weights


def _values(params):
    return [p.detach().numpy().copy() for case in params for p in case]


@pytest.mark.parametrize("group", GROUPS, ids=[
    "+".join(CASES[i][0].name for i in g) for g in GROUPS])
def test_every_op_specialized_equals_interpreted_and_eager(group, monkeypatch):
    monkeypatch.setattr(codegen, "STRAIGHT", 0)     # the table layout (straight: run tests)
    cases = [CASES[i] for i in group]
    (p1, p2, p3), weights = _twins(cases, 3)
    fast = tg.compile(_all_ops_step(cases, p1, weights), specialize_after=0)
    slow = tg.compile(_all_ops_step(cases, p2, weights), specialize_after=None)
    eager = _all_ops_step(cases, p3, weights)
    for _ in range(4):
        a, b, c = fast().item(), slow().item(), eager().item()
        assert a == b                                   # the same kernels in the same order
        _close(a, c)
        for x, y, z in zip(_values(p1), _values(p2), _values(p3)):
            np.testing.assert_array_equal(x, y)
            _close(x, z)
    assert fast.last.fast and not slow.last.fast, fast.explain()
    assert fast.n_records == 2


def test_too_large_a_program_stays_interpreted(monkeypatch):
    monkeypatch.setattr(codegen, "MAX_PIECES", 3)
    X, Y = tg.tensor(X3), tg.tensor(Y3)
    (W1, s1), (W2, s2) = _regression(), _regression()
    c = tg.compile(s1, specialize_after=0)
    _close(c.run(20, X, Y, 0.1), [s2(X, Y, 0.1).item() for _ in range(20)])
    _close(W1.detach().numpy(), W2.detach().numpy())
    assert "stays interpreted" in c.explain() and "distinct" in c.explain()
    assert c.last.fast is False


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_run_specialized_equals_interpreted(dtype, layout):
    X, Y = tg.tensor(X3, dtype=dtype), tg.tensor(Y3, dtype=dtype)
    (W1, s1), (W2, s2) = _regression(dtype), _regression(dtype)
    fast = tg.compile(s1, specialize_after=0)
    slow = tg.compile(s2, specialize_after=None)
    h1, h2 = fast.run(500, X, Y, 0.1), slow.run(500, X, Y, 0.1)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(W1.detach().numpy(), W2.detach().numpy())
    for _ in range(3):                                  # single calls return fresh results
        assert fast(X, Y, 0.05).item() == slow(X, Y, 0.05).item()
    np.testing.assert_array_equal(W1.detach().numpy(), W2.detach().numpy())
    np.testing.assert_array_equal(W1.grad.numpy(), W2.grad.numpy())
    assert fast.last.fast


@pytest.mark.parametrize("n,batch", [(10, 4), (100, 37)])   # below and above GATHER_AHEAD
def test_minibatch_run_specialized_equals_interpreted(n, batch):
    rng = np.random.default_rng(1)
    Xd, Yd = tg.tensor(rng.standard_normal((n, 3))), tg.tensor(rng.standard_normal((n, 2)))
    (W1, s1), (W2, s2) = _regression(), _regression()
    fast = tg.compile(s1, specialize_after=0)
    slow = tg.compile(s2, specialize_after=None)
    kw = dict(batch_size=batch, shuffle=True, seed=3)
    np.testing.assert_array_equal(fast.run(40, Xd, Yd, 0.05, **kw),
                                  slow.run(40, Xd, Yd, 0.05, **kw))
    np.testing.assert_array_equal(W1.detach().numpy(), W2.detach().numpy())


def test_specialized_guards_flip_and_record_again():
    f = tg.compile(_branchy, specialize_after=0)
    for v in [[1.0, 2.0], [1.0, 3.0], [-1.0, 0.5], [-2.0, 0.5], [1e4, 1e5], [1.0, 2.0]]:
        a = tg.tensor(v, dtype=tg.float64)
        _close(f(a).numpy(), _branchy(a).numpy())
    assert "guard failed" in f.explain()
    assert any(p.fast for paths in f.paths.values() for p in paths)


def test_specialized_chain_is_one_piece_per_kind(monkeypatch):
    """A long repetitive program compiles as a table: its pieces are the distinct records."""
    monkeypatch.setattr(codegen, "STRAIGHT", 8)
    x0 = tg.ones(5, dtype=tg.float64, requires_grad=True)
    x1 = tg.ones(5, dtype=tg.float64, requires_grad=True)

    def chain(x0):
        def run():
            x = x0
            for k in range(30):
                x = (x * 1.001 + 0.01).tanh()
            x.sum().backward()
        return run
    fast = tg.compile(chain(x0), specialize_after=0)
    eager = chain(x1)
    for _ in range(4):
        fast()
        eager()
        _close(x0.grad.numpy(), x1.grad.numpy())
    text = codegen.source(fast.last, tg.tape.TAPE.size, tg.tape.TAPE.dt)
    assert "TABLE" in text and text.count("elif t ==") < 15     # of 185 pieces


def test_failed_specialization_falls_back(monkeypatch):
    def broken(*args):
        raise RuntimeError("no code for you")
    monkeypatch.setattr(codegen, "source", broken)
    X, Y = tg.tensor(X3), tg.tensor(Y3)
    (W1, s1), (W2, s2) = _regression(), _regression()
    c = tg.compile(s1, specialize_after=0)
    _close(c.run(20, X, Y, 0.1), [s2(X, Y, 0.1).item() for _ in range(20)])
    _close(W1.detach().numpy(), W2.detach().numpy())
    assert "stays interpreted" in c.explain() and "no code for you" in c.explain()


def test_generated_module_is_named_by_its_source(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    text = codegen.HEADER + "ARRAYS = ()\n"
    a = codegen.load(text)
    assert codegen.load(text) is a
    files = os.listdir(tmp_path / "programs")
    assert files == [a.__name__ + ".py"]
    with open(tmp_path / "programs" / files[0]) as f:
        assert f.read() == text


# ---- one call at a time: a specialized path's call is unrolled in Python ----
def _twin_calls(calls):
    """Run `calls(f, W)` with a specialized compiled step and with an interpreted one; both
    return the list of what they produced; it must be identical."""
    out = []
    for spec in (0, None):
        W, s = _regression()
        f = tg.compile(s, specialize_after=spec)
        got = calls(f, W)
        out.append((got, W.detach().numpy().copy(), f))
    (a, wa, fast), (b, wb, slow) = out
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(wa, wb)
    assert fast._hot is not None and slow._hot is None
    return fast


def test_unrolled_call_rebinds_new_inputs_every_call():
    rng = np.random.default_rng(2)
    data = [(rng.standard_normal((3, 3)), rng.standard_normal((3, 2))) for _ in range(8)]
    big = tg.tensor(rng.standard_normal((6, 3)))

    def calls(f, W):
        got = [f(tg.tensor(x), tg.tensor(y), 0.1).item() for x, y in data]
        got += [f(big[1:4], tg.tensor(data[0][1]), 0.1).item()]     # a view as the input
        got += [f(x, y, 0.1).item() for x, y in data[:3]]           # NumPy arrays
        return got
    _twin_calls(calls)


def test_unrolled_call_sees_numbers_state_and_grad_changes():
    X, Y = tg.tensor(X3), tg.tensor(Y3)

    def calls(f, W):
        got = [f(X, Y, lr).item() for lr in (0.1, 0.1, 0.2, 0.05, 0.05)]
        W.data = W.data * 0.5                     # new storage: the path records again
        got += [f(X, Y, 0.1).item() for _ in range(3)]
        W.grad = None                             # the .grad guard
        got += [f(X, Y, 0.1).item() for _ in range(3)]
        with tg.no_grad():
            W.mul_(2.0)                           # in place: the replay reads the new values
        got += [f(X, Y, 0.1).item() for _ in range(3)] + [W.grad.numpy().copy()]
        return got
    _twin_calls(calls)


def test_unrolled_call_results_are_fresh_where_anyone_can_tell():
    X, Y = tg.tensor(X3), tg.tensor(Y3)
    W, s = _regression()
    f = tg.compile(s, specialize_after=0)
    for _ in range(3):
        f(X, Y, 0.1)
    assert f._hot[0]((X, Y, 0.1)) is not _MISS             # the unrolled call takes it
    kept = [f(X, Y, 0.1) for _ in range(4)]                 # held: all distinct
    assert len({id(t) for t in kept}) == 4
    assert len({t.item() for t in kept}) == 4
    marked = f(X, Y, 0.1)
    marked.note = "mine"                                    # an attribute: never reused
    ref = id(marked)
    del marked
    assert all(id(f(X, Y, 0.1)) != ref for _ in range(4))
    w = tg.tensor(2.0, dtype=tg.float64, requires_grad=True)
    first = f(X, Y, 0.1)
    value = first.item()
    z = first.detach() * w                      # the graph of z needs first's value
    del first
    for _ in range(4):
        f(X, Y, 0.1)
    z.backward()
    assert w.grad.item() == value


def test_unrolled_call_with_several_results_and_guards():
    def g(a):
        b = a * 3
        return (b.sum(), b) if b.sum() > 0 else (b.sum() * 2, -b)
    f = tg.compile(g, specialize_after=0)
    for v in [[1.0, 2.0], [1.0, 3.0], [-1.0, 0.5], [-2.0, 0.5], [2.0, 2.0], [2.0, 5.0]]:
        a = tg.tensor(v, dtype=tg.float64)
        (s1, b1), (s2, b2) = f(a), g(a)
        assert s1.item() == s2.item()
        np.testing.assert_array_equal(b1.numpy(), b2.numpy())
    assert f._hot is not None and "guard failed" in f.explain()


def test_unrolled_call_gives_new_grads_where_anyone_can_tell():
    """A step that starts with zero_grad() makes a new .grad every call; the unrolled call
    refills the old .grad tensor instead when nothing else holds it."""
    runs = []
    for spec in (0, None):
        tg.manual_seed(0)
        net = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.Tanh(), tg.nn.Linear(4, 2)).double()
        opt = tg.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
        X, Y = tg.tensor(X3), tg.tensor(Y3)

        def step(X, Y):
            opt.zero_grad()
            loss = ((net(X) - Y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        f = tg.compile(step, specialize_after=spec)
        losses = [f(X, Y).item() for _ in range(5)]
        held = net[0].weight.grad                       # held: never refilled
        before = held.numpy().copy()
        losses += [f(X, Y).item() for _ in range(5)]
        assert net[0].weight.grad is not held
        np.testing.assert_array_equal(held.numpy(), before)
        grads = [p.grad.numpy().copy() for p in net.parameters()]
        runs.append((losses, grads, [p.detach().numpy().copy() for p in net.parameters()], f))
    (l1, g1, p1, fast), (l2, g2, p2, _) = runs
    assert fast._hot is not None and l1 == l2
    for a, b in zip(g1 + p1, g2 + p2):
        np.testing.assert_array_equal(a, b)


def test_an_edited_source_drops_the_interpreters_cache(tmp_path):
    """Numba checks a cached function against its own file only: a cached run_steps would keep
    the kernels of an edited kernels.py. The cache of kernels and interpret goes when the
    sources' stamp changes, and only then."""
    from tapegrad.interpret import drop_stale_cache
    ours = ["kernels.mm_rows_bwd-572.py311.nbi", "kernels.mm_rows_bwd-572.py311.1.nbc",
            "interpret.run_steps-322.py311.nbi"]
    others = ["factory.x-1.py311.nbi", "kernels.py"]
    for name in ours + others:
        (tmp_path / name).write_text("x")
    assert drop_stale_cache(str(tmp_path), "aaaa") == 3          # no stamp yet
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + ["tapegrad-sources"])
    (tmp_path / ours[0]).write_text("x")
    assert drop_stale_cache(str(tmp_path), "aaaa") == 0          # the same sources
    assert (tmp_path / ours[0]).exists()
    assert drop_stale_cache(str(tmp_path), "bbbb") == 1          # an edited source
    assert not (tmp_path / ours[0]).exists()
    assert drop_stale_cache(str(tmp_path / "missing"), "cccc") == 0      # no folder: no error


def test_the_package_cache_carries_the_sources_stamp():
    from tapegrad import interpret
    folder = interpret.run_steps._cache.cache_path
    with open(os.path.join(folder, "tapegrad-sources")) as f:
        assert f.read() == interpret.sources_stamp()
