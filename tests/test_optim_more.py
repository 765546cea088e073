"""NAdam, RAdam, Adamax, Adadelta, Rprop and LBFGS: against torch, NumPy references of their
update rules, compiled runs and the least-squares solution."""
import numpy as np
import pytest

import tapegrad as tg

RNG = np.random.default_rng(11)
XD = RNG.standard_normal((16, 3))
YD = XD @ RNG.standard_normal((3, 2)) + 0.1 * RNG.standard_normal((16, 2))
W0, B0 = RNG.standard_normal((2, 3)) * 0.5, RNG.standard_normal(2) * 0.5
RTOL_TORCH = 1e-10          # float64, tapegrad vs torch over 100 steps
RTOL_TORCH32 = 1e-4         # float32
RTOL_REPLAY = 1e-12         # compiled vs eager tapegrad

CASES = [
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.01, betas=(0.4, 0.99), momentum_decay=0.01, maximize=True)),
    ("RAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.2))),                # rho_inf <= 5: never rectified
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1, eps=1e-3)),
    ("Adamax", dict(lr=0.01, betas=(0.4, 0.99), maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.3, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1))),
    ("Rprop", dict(lr=0.02, maximize=True)),
]
IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw in CASES]


def _model(lib, dtype):
    m = lib.nn.Linear(3, 2)
    m = m.double() if dtype == "double" else m.float()
    with lib.no_grad():
        m.weight.copy_(lib.tensor(W0, dtype=m.weight.dtype))
        m.bias.copy_(lib.tensor(B0, dtype=m.weight.dtype))
    return m


def _setup(lib, cls, kw, dtype="double", split=False):
    """(step, model, opt): step(X, Y) does one training step and returns the loss."""
    m = _model(lib, dtype)
    ps = [{"params": [m.weight]}, {"params": [m.bias], "lr": 0.02}] if split else m.parameters()
    opt = getattr(lib.optim, cls)(ps, **kw)
    sign = -1.0 if kw.get("maximize") else 1.0      # maximize -mse: still a regression

    def step(X, Y):
        opt.zero_grad()
        loss = sign * ((m(X) - Y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step, m, opt


def _data(lib, dtype=np.float64):
    return lib.tensor(XD.astype(dtype)), lib.tensor(YD.astype(dtype))


def _params(m):
    return [p.detach().numpy().copy() for p in m.parameters()]


def _close(a, b, rtol, atol):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _run(step, X, Y, n):
    return np.array([float(step(X, Y).item()) for _ in range(n)])


def _clone_sd(sd):
    """What saving and loading would give: the same structure with new tensors."""
    if isinstance(sd, dict):
        return {k: _clone_sd(v) for k, v in sd.items()}
    if isinstance(sd, (list, tuple)):
        return type(sd)(_clone_sd(v) for v in sd)
    return sd.clone() if isinstance(sd, tg.Tensor) else sd


# ---- against torch ----
@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_trajectory_matches_torch(cls, kw):
    torch = pytest.importorskip("torch")
    s_tg, m_tg, _ = _setup(tg, cls, kw)
    s_th, m_th, _ = _setup(torch, cls, kw)
    h_tg, h_th = _run(s_tg, *_data(tg), 100), _run(s_th, *_data(torch), 100)
    np.testing.assert_allclose(h_tg, h_th, rtol=RTOL_TORCH, atol=1e-14)
    _close(_params(m_tg), _params(m_th), RTOL_TORCH, 1e-14)


@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_float32_trajectory_matches_torch(cls, kw):
    torch = pytest.importorskip("torch")
    s_tg, m_tg, o_tg = _setup(tg, cls, kw, dtype="float")
    s_th, m_th, o_th = _setup(torch, cls, kw, dtype="float")
    h_tg = _run(s_tg, *_data(tg, np.float32), 100)
    h_th = _run(s_th, *_data(torch, np.float32), 100)
    np.testing.assert_allclose(h_tg, h_th, rtol=RTOL_TORCH32, atol=1e-6)
    _close(_params(m_tg), _params(m_th), RTOL_TORCH32, 1e-5)
    st_tg, st_th = o_tg.state[m_tg.weight], o_th.state[m_th.weight]
    assert st_tg["step"].dtype == tg.float32 and st_tg["step"].item() == 100
    assert st_th["step"].item() == 100


@pytest.mark.parametrize("cls,kw", [CASES[i] for i in (2, 5, 9, 12, 15)],
                         ids=[IDS[i] for i in (2, 5, 9, 12, 15)])
def test_param_groups_with_different_lrs_match_torch(cls, kw):
    torch = pytest.importorskip("torch")
    s_tg, m_tg, o_tg = _setup(tg, cls, kw, split=True)
    s_th, m_th, _ = _setup(torch, cls, kw, split=True)
    assert o_tg.param_groups[1]["lr"] == 0.02
    np.testing.assert_allclose(_run(s_tg, *_data(tg), 60), _run(s_th, *_data(torch), 60),
                               rtol=RTOL_TORCH, atol=1e-14)
    _close(_params(m_tg), _params(m_th), RTOL_TORCH, 1e-14)


@pytest.mark.parametrize("cls", ["NAdam", "RAdam", "Adamax", "Adadelta", "Rprop", "LBFGS"])
def test_defaults_and_state_dict_layout_match_torch(cls):
    torch = pytest.importorskip("torch")
    sds = []
    for lib in (tg, torch):
        m = _model(lib, "double")
        opt = getattr(lib.optim, cls)(m.parameters())
        X, Y = _data(lib)

        def closure():
            opt.zero_grad()
            loss = ((m(X) - Y) ** 2).mean()
            loss.backward()
            return loss
        for _ in range(3):
            opt.step(closure)
        sds.append(opt.state_dict())
    a, b = sds
    assert a["param_groups"] == b["param_groups"]
    assert list(a["param_groups"][0]) == list(b["param_groups"][0])
    assert sorted(a["state"]) == sorted(b["state"])
    for k, st in b["state"].items():
        assert sorted(a["state"][k]) == sorted(st)
        for name, v in st.items():
            mine = a["state"][k][name]
            if isinstance(v, list):
                assert len(mine) == len(v)
                pairs = [(x, y) for x, y in zip(mine, v) if y is not None]
            else:
                pairs = [(mine, v)]
            for x, y in pairs:
                assert isinstance(x, tg.Tensor) == isinstance(y, torch.Tensor), name
                xv, yv = (x.numpy(), y.numpy()) if isinstance(y, torch.Tensor) else (x, y)
                np.testing.assert_allclose(xv, yv, rtol=1e-10, atol=1e-14, err_msg=name)


# ---- against NumPy references of the update rules (no torch) ----
def _nadam_ref(w, g, st, t, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, wd=0.1, psi=0.01,
               decoupled=False):
    if decoupled:
        w = w * (1 - lr * wd)
    else:
        g = g + wd * w
    mu_t = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    # the product of the mu_t is a tensor of the default dtype (float32 here), as torch's
    st["prod"] = np.float32(st.get("prod", np.float32(1)) * np.float32(mu_t))
    prod = float(st["prod"])
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
    denom = np.sqrt(st["v"] / (1 - b2 ** t)) + eps
    return (w - lr * (1 - mu_t) / (1 - prod) * g / denom
            - lr * mu_next / (1 - prod * mu_next) * st["m"] / denom)


def _radam_ref(w, g, st, t, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    if decoupled:
        w = w * (1 - lr * wd)
    else:
        g = g + wd * w
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
    m_hat = st["m"] / (1 - b1 ** t)
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    if rho_t <= 5:
        return w - lr * m_hat
    r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    return w - lr * m_hat * r * np.sqrt(1 - b2 ** t) / (np.sqrt(st["v"]) + eps)


def _adamax_ref(w, g, st, t, lr=0.01, b1=0.9, b2=0.99, eps=1e-8, wd=0.1):
    g = g + wd * w
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    st["u"] = np.maximum(b2 * st.get("u", 0), np.abs(g) + eps)
    return w - lr / (1 - b1 ** t) * st["m"] / st["u"]


def _adadelta_ref(w, g, st, t, lr=0.5, rho=0.8, eps=1e-6, wd=0.1):
    g = g + wd * w
    st["v"] = rho * st.get("v", 0) + (1 - rho) * g * g
    delta = np.sqrt(st.get("u", 0) + eps) / np.sqrt(st["v"] + eps) * g
    st["u"] = rho * st.get("u", 0) + (1 - rho) * delta * delta
    return w - lr * delta


def _rprop_ref(w, g, st, t, lr=0.05, etas=(0.4, 1.3), sizes=(1e-4, 0.2)):
    prev = st.get("prev", np.zeros_like(w))
    s = np.sign(g * prev)
    factor = np.where(s > 0, etas[1], np.where(s < 0, etas[0], 1.0))
    st["size"] = np.clip(st.get("size", np.full_like(w, lr)) * factor, *sizes)
    g = np.where(s < 0, 0.0, g)
    st["prev"] = g
    return w - np.sign(g) * st["size"]


NUMPY_CASES = [
    ("NAdam", dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01), _nadam_ref),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01,
                   decoupled_weight_decay=True, maximize=True),
     lambda *a: _nadam_ref(*a, decoupled=True)),
    ("RAdam", dict(lr=0.01), _radam_ref),
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.9), weight_decay=0.1, decoupled_weight_decay=True),
     lambda *a: _radam_ref(*a, b2=0.9, wd=0.1, decoupled=True)),
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.3), weight_decay=0.1, maximize=True),
     lambda *a: _radam_ref(*a, b2=0.3, wd=0.1)),
    ("Adamax", dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1), _adamax_ref),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.1), _adadelta_ref),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.1, maximize=True), _adadelta_ref),
    ("Rprop", dict(lr=0.05, etas=(0.4, 1.3), step_sizes=(1e-4, 0.2)), _rprop_ref),
    ("Rprop", dict(lr=0.05, etas=(0.4, 1.3), step_sizes=(1e-4, 0.2), maximize=True),
     _rprop_ref),
]


@pytest.mark.parametrize("cls,kw,ref", NUMPY_CASES,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(NUMPY_CASES)])
def test_update_matches_numpy_reference(cls, kw, ref):
    """0.5 ||A w - b||^2 has gradient A^T (A w - b) (maximize: of its negative): the update
    rule, written out in NumPy."""
    A, b, w0 = RNG.standard_normal((8, 5)), RNG.standard_normal(8), RNG.standard_normal(5)
    w = tg.tensor(w0, requires_grad=True)
    opt = getattr(tg.optim, cls)([w], **kw)
    At, bt = tg.tensor(A), tg.tensor(b)
    sign = -1.0 if kw.get("maximize") else 1.0
    v, st = w0.copy(), {}
    for t in range(1, 61):
        opt.zero_grad()
        (sign * 0.5 * ((At @ w - bt) ** 2).sum()).backward()
        opt.step()
        v = ref(v, A.T @ (A @ v - b), st, t)
        np.testing.assert_allclose(w.detach().numpy(), v, rtol=1e-9, atol=1e-12)


def test_radam_takes_both_branches_in_the_reference_range():
    """With beta2 = 0.999 the rectification starts at step 6: the reference test above (60
    steps) and the compiled test below (120 steps) cross it."""
    b2 = 0.999
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2 ** t / (1 - b2 ** t) for t in range(1, 61)]
    assert max(rho[:5]) <= 5 < min(rho[5:])


# ---- tapegrad.compile ----
@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_compiled_equals_eager(cls, kw):
    """The step recorded at call 2 replays for every later step (the step count, NAdam's
    mu_product, RAdam's branch and Rprop's sign tests are tensor ops)."""
    s_c, m_c, _ = _setup(tg, cls, kw)
    s_e, m_e, _ = _setup(tg, cls, kw)
    X, Y = _data(tg)
    c = tg.compile(s_c)
    h_c = np.concatenate([_run(c, X, Y, 20), c.run(100, X, Y)])
    h_e = _run(s_e, X, Y, 120)
    np.testing.assert_allclose(h_c, h_e, rtol=RTOL_REPLAY)
    _close(_params(m_c), _params(m_e), RTOL_REPLAY, 1e-14)
    assert c.n_records == 2 and len(c.paths) == 1, c.explain()


@pytest.mark.parametrize("cls,kw", [CASES[i] for i in (0, 4, 8, 11, 14)],
                         ids=[IDS[i] for i in (0, 4, 8, 11, 14)])
def test_compiled_float32_equals_eager(cls, kw):
    s_c, m_c, _ = _setup(tg, cls, kw, dtype="float")
    s_e, m_e, _ = _setup(tg, cls, kw, dtype="float")
    X, Y = _data(tg, np.float32)
    c = tg.compile(s_c)
    np.testing.assert_array_equal(c.run(60, X, Y), _run(s_e, X, Y, 60))
    _close(_params(m_c), _params(m_e), 0, 0)


def test_compiled_lr_changed_between_calls_takes_effect():
    runs = []
    for compiled in (True, False):
        step, m, opt = _setup(tg, "NAdam", dict(lr=0.05), split=True)
        fn = tg.compile(step) if compiled else step
        hist = []
        for k in range(12):
            hist.append(fn(*_data(tg)).item())
            opt.param_groups[k % 2]["lr"] *= 0.7
        runs.append((np.array(hist), _params(m), fn))
    (h_c, p_c, c), (h_e, p_e, _) = runs
    np.testing.assert_allclose(h_c, h_e, rtol=RTOL_REPLAY)
    _close(p_c, p_e, RTOL_REPLAY, 1e-14)
    assert c.n_records == 2 and len(c.paths) == 1, c.explain()


# ---- state_dict ----
@pytest.mark.parametrize("cls,kw", [CASES[i] for i in (3, 6, 10, 13, 16)],
                         ids=[IDS[i] for i in (3, 6, 10, 13, 16)])
def test_state_dict_round_trip_continues_identically(cls, kw):
    X, Y = _data(tg)
    s_a, m_a, o_a = _setup(tg, cls, kw, split=True)
    _run(s_a, X, Y, 25)
    o_a.param_groups[1]["lr"] = 0.015
    sd = _clone_sd(o_a.state_dict())
    s_b, m_b, o_b = _setup(tg, cls, dict(kw, lr=0.5), split=True)
    with tg.no_grad():
        for p, v in zip(m_b.parameters(), _params(m_a)):
            p.copy_(tg.tensor(v))
    o_b.load_state_dict(sd)
    assert [g["lr"] for g in o_b.param_groups] == [kw["lr"], 0.015]
    np.testing.assert_array_equal(_run(s_a, X, Y, 25), _run(s_b, X, Y, 25))
    _close(_params(m_a), _params(m_b), 0, 0)


def test_nadam_load_state_dict_with_python_numbers():
    """Old checkpoints keep `step` and `mu_product` as numbers: loading makes them tensors."""
    X, Y = _data(tg)
    s_a, m_a, o_a = _setup(tg, "NAdam", dict(lr=0.01))
    _run(s_a, X, Y, 3)
    sd = _clone_sd(o_a.state_dict())
    for st in sd["state"].values():
        st["step"], st["mu_product"] = st["step"].item(), st["mu_product"].item()
    s_b, m_b, o_b = _setup(tg, "NAdam", dict(lr=0.01))
    with tg.no_grad():
        for p, v in zip(m_b.parameters(), _params(m_a)):
            p.copy_(tg.tensor(v))
    o_b.load_state_dict(sd)
    assert all(isinstance(o_b.state[m_b.weight][k], tg.Tensor) for k in ("step", "mu_product"))
    np.testing.assert_array_equal(_run(s_a, X, Y, 5), _run(s_b, X, Y, 5))


# ---- LBFGS ----
AL = RNG.standard_normal((40, 4))
BL = AL @ RNG.standard_normal(4) + 0.5 + 0.3 * RNG.standard_normal(40)
LBFGS_CASES = [
    dict(),
    dict(line_search_fn="strong_wolfe"),
    dict(history_size=2, max_iter=5),
    dict(lr=0.5, max_iter=7, history_size=3, line_search_fn="strong_wolfe"),
    dict(lr=0.1, max_iter=4, max_eval=6, line_search_fn="strong_wolfe"),
]
LBFGS_IDS = ["-".join(f"{k}={v}" for k, v in kw.items()) or "defaults" for kw in LBFGS_CASES]


def _lbfgs(lib, kw, dtype="double"):
    """(step, model, opt) for least squares of nn.Linear(4, 1) on (AL, BL): step() is one
    opt.step(closure)."""
    m = lib.nn.Linear(4, 1)
    m = m.double() if dtype == "double" else m.float()
    with lib.no_grad():
        m.weight.zero_()
        m.bias.zero_()
    opt = lib.optim.LBFGS(m.parameters(), **kw)
    X = lib.tensor(AL, dtype=m.weight.dtype)
    Y = lib.tensor(BL[:, None], dtype=m.weight.dtype)

    def closure():
        opt.zero_grad()
        loss = ((m(X) - Y) ** 2).mean()
        loss.backward()
        return loss

    def step():
        return opt.step(closure)
    return step, m, opt


def _lbfgs_run(step, m, opt, n):
    """Per step: the first loss, the parameters and the evaluation and iteration counts."""
    out = []
    for _ in range(n):
        loss = float(step().detach().item())
        st = opt.state[next(iter(m.parameters()))]
        out.append((loss, np.concatenate([p.detach().numpy().ravel() for p in m.parameters()]),
                    st["func_evals"], st["n_iter"]))
    return out


def _lstsq():
    return np.linalg.lstsq(np.hstack([AL, np.ones((40, 1))]), BL, rcond=None)[0]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_converges_to_least_squares(line_search_fn):
    """No tolerance on changes (the loss of a quadratic changes by about the square of the
    step, so one stops short of the optimum); the line search brackets to its own 1e-9."""
    step, m, opt = _lbfgs(tg, dict(line_search_fn=line_search_fn, tolerance_grad=1e-13,
                                   tolerance_change=0.0))
    for _ in range(5):
        step()
    w = np.concatenate([m.weight.detach().numpy().ravel(), m.bias.detach().numpy()])
    np.testing.assert_allclose(w, _lstsq(), rtol=0, atol=1e-12 if line_search_fn is None
                               else 1e-7)
    assert opt.state[m.weight]["n_iter"] > 2


def test_lbfgs_first_iteration_is_a_scaled_gradient_step():
    """max_iter=1: p -= min(1, 1 / |g|_1) lr g, the first iteration's rule, in NumPy."""
    step, m, opt = _lbfgs(tg, dict(lr=0.7, max_iter=1))
    step()
    A1 = np.hstack([AL, np.ones((40, 1))])
    g = 2 * A1.T @ (A1 @ np.zeros(5) - BL) / len(BL)
    expect = -min(1.0, 1.0 / np.abs(g).sum()) * 0.7 * g
    w = np.concatenate([m.weight.detach().numpy().ravel(), m.bias.detach().numpy()])
    np.testing.assert_allclose(w, expect, rtol=1e-12)
    assert opt.state[m.weight]["func_evals"] == opt.state[m.weight]["n_iter"] == 1


@pytest.mark.parametrize("kw", LBFGS_CASES, ids=LBFGS_IDS)
def test_lbfgs_trajectory_matches_torch(kw):
    torch = pytest.importorskip("torch")
    a = _lbfgs_run(*_lbfgs(tg, kw), 4)
    b = _lbfgs_run(*_lbfgs(torch, kw), 4)
    for (la, wa, fa, na), (lb, wb, fb, nb) in zip(a, b):
        np.testing.assert_allclose(la, lb, rtol=1e-10)
        np.testing.assert_allclose(wa, wb, rtol=1e-9, atol=1e-12)
        assert (fa, na) == (fb, nb)


@pytest.mark.parametrize("kw", [dict(max_iter=4), dict(max_iter=4,
                                                       line_search_fn="strong_wolfe")])
def test_lbfgs_float32_first_step_matches_torch(kw):
    """float32: the first step, before rounding noise near the optimum decides the tests."""
    torch = pytest.importorskip("torch")
    (la, wa, fa, na), = _lbfgs_run(*_lbfgs(tg, kw, "float"), 1)
    (lb, wb, fb, nb), = _lbfgs_run(*_lbfgs(torch, kw, "float"), 1)
    np.testing.assert_allclose(la, lb, rtol=1e-6)
    np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    assert (fa, na) == (fb, nb)


def test_lbfgs_state_dict_round_trip_continues_identically():
    kw = dict(max_iter=3, history_size=2, line_search_fn="strong_wolfe")
    s_a, m_a, o_a = _lbfgs(tg, kw)
    _lbfgs_run(s_a, m_a, o_a, 2)
    sd = _clone_sd(o_a.state_dict())
    assert sorted(sd["state"][0]) == ["H_diag", "al", "d", "func_evals", "n_iter", "old_dirs",
                                      "old_stps", "prev_flat_grad", "prev_loss", "ro", "t"]
    s_b, m_b, o_b = _lbfgs(tg, dict(kw, max_iter=3))
    with tg.no_grad():
        for p, q in zip(m_b.parameters(), m_a.parameters()):
            p.copy_(q)
    o_b.load_state_dict(sd)
    ra, rb = _lbfgs_run(s_a, m_a, o_a, 2), _lbfgs_run(s_b, m_b, o_b, 2)
    for (la, wa, fa, na), (lb, wb, fb, nb) in zip(ra, rb):
        assert la == lb and (fa, na) == (fb, nb)
        np.testing.assert_array_equal(wa, wb)


def test_lbfgs_inside_compile_runs_eagerly_and_equals_eager():
    kw = dict(max_iter=3, line_search_fn="strong_wolfe")
    s_c, m_c, o_c = _lbfgs(tg, kw)
    s_e, m_e, o_e = _lbfgs(tg, kw)
    c = tg.compile(s_c)
    ra, rb = _lbfgs_run(c, m_c, o_c, 4), _lbfgs_run(s_e, m_e, o_e, 4)
    for (la, wa, fa, na), (lb, wb, fb, nb) in zip(ra, rb):
        assert la == lb and (fa, na) == (fb, nb)
        np.testing.assert_array_equal(wa, wb)
    assert not c.paths and "LBFGS.step()" in c.explain()


def test_lbfgs_stops_at_once_when_the_gradient_is_zero():
    step, m, opt = _lbfgs(tg, {})
    for _ in range(3):
        step()
    w = _params(m)
    loss = step()
    _close(_params(m), w, 0, 0)
    assert isinstance(loss, tg.Tensor) and loss.requires_grad


def test_lbfgs_options():
    m = _model(tg, "double")
    assert tg.optim.LBFGS(m.parameters(), max_iter=9).param_groups[0]["max_eval"] == 11
    with pytest.raises(ValueError, match=r"LBFGS doesn't support per-parameter options"):
        tg.optim.LBFGS([{"params": [m.weight]}, {"params": [m.bias]}])
    step, _, _ = _lbfgs(tg, dict(line_search_fn="wolfe"))
    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        step()


# ---- API ----
def _leaf(lib=tg):
    return lib.tensor(np.ones(3), requires_grad=True)


INVALID = [
    ("NAdam", dict(lr=-0.1), "Invalid learning rate: -0.1"),
    ("NAdam", dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("NAdam", dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    ("NAdam", dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    ("NAdam", dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ("NAdam", dict(momentum_decay=-0.1), "Invalid momentum_decay value: -0.1"),
    ("RAdam", dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    ("RAdam", dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("RAdam", dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    ("RAdam", dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    ("Adamax", dict(lr=-1.0), "Invalid learning rate: -1.0"),
    ("Adamax", dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    ("Adamax", dict(betas=(-0.1, 0.9)), "Invalid beta parameter at index 0: -0.1"),
    ("Adamax", dict(weight_decay=-0.5), "Invalid weight_decay value: -0.5"),
    ("Adadelta", dict(lr=-1.0), "Invalid learning rate: -1.0"),
    ("Adadelta", dict(rho=1.5), "Invalid rho value: 1.5"),
    ("Adadelta", dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("Adadelta", dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ("Rprop", dict(lr=-0.1), "Invalid learning rate: -0.1"),
    ("Rprop", dict(etas=(1.0, 1.2)), "Invalid eta values: 1.0, 1.2"),
    ("Rprop", dict(etas=(0.5, 0.9)), "Invalid eta values: 0.5, 0.9"),
    ("LBFGS", dict(lr=-1), "Invalid learning rate: -1"),
]
INVALID_IDS = [f"{c}-{kw}" for c, kw, _ in INVALID]


@pytest.mark.parametrize("cls,kw,msg", INVALID, ids=INVALID_IDS)
def test_invalid_hyperparameters(cls, kw, msg):
    with pytest.raises(ValueError, match="^" + msg.replace("(", r"\(") + "$"):
        getattr(tg.optim, cls)([_leaf()], **kw)


@pytest.mark.parametrize("cls,kw,msg", INVALID, ids=INVALID_IDS)
def test_invalid_hyperparameters_like_torch(cls, kw, msg):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="^" + msg.replace("(", r"\(") + "$"):
        getattr(torch.optim, cls)([_leaf(torch)], **kw)


@pytest.mark.parametrize("cls", ["NAdam", "RAdam", "Adamax", "Adadelta", "Rprop"])
def test_implementation_switches(cls):
    with pytest.raises(RuntimeError, match=f"{cls}: differentiable=True is not supported"):
        getattr(tg.optim, cls)([_leaf()], differentiable=True)
    with pytest.raises(TypeError):
        getattr(tg.optim, cls)([_leaf()], fused=True)       # no such argument, as in torch
    for kw in (dict(foreach=True), dict(foreach=False), dict(capturable=True)):
        opt = getattr(tg.optim, cls)([_leaf()], **kw)
        assert opt.param_groups[0][next(iter(kw))] == kw[next(iter(kw))]


def test_exported():
    names = ["NAdam", "RAdam", "Adamax", "Adadelta", "Rprop", "LBFGS"]
    assert set(names) <= set(tg.optim.__all__)
    assert all(issubclass(getattr(tg.optim, n), tg.optim.Optimizer) for n in names)
