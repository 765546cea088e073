"""tapegrad.optim: optimizers and schedulers against torch, NumPy references and eager runs."""
import warnings

import numpy as np
import pytest

import tapegrad as tg

RNG = np.random.default_rng(7)
XD, YD = RNG.standard_normal((16, 3)), RNG.standard_normal((16, 2))
W1, B1 = RNG.standard_normal((4, 3)) * 0.5, RNG.standard_normal(4) * 0.5
W2, B2 = RNG.standard_normal((2, 4)) * 0.5, RNG.standard_normal(2) * 0.5
RTOL_TORCH = 1e-5           # tapegrad vs torch, float64, over 100 steps
RTOL_REPLAY = 1e-12         # compiled vs eager tapegrad

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.4, 0.99), maximize=True)),  # lerp's other formula
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.45, centered=True, momentum=0.5, weight_decay=0.1,
                     maximize=True)),                                 # lerp's other formula
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, maximize=True)),
]
IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw in CASES]


def _cases(*rows):
    """Some rows of CASES, as parameters named like the full list's."""
    return [pytest.param(*CASES[i], id=IDS[i]) for i in rows]


def _net(lib, dtype="double"):
    net = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh(), lib.nn.Linear(4, 2))
    net = getattr(net, dtype)()
    with lib.no_grad():
        for p, v in zip(net.parameters(), (W1, B1, W2, B2)):
            p.copy_(lib.tensor(v, dtype=p.dtype))
    return net


def _groups(net, split):
    """All parameters in one group, or weights and biases in two groups with their own lr."""
    ps = list(net.parameters())
    if not split:
        return ps
    return [{"params": ps[0::2]}, {"params": ps[1::2], "lr": 0.02}]


def _setup(lib, cls, kw, split=False, dtype="double", set_to_none=True):
    """(step, net, opt): step(X, Y) does one training step and returns the loss."""
    net = _net(lib, dtype)
    opt = getattr(lib.optim, cls)(_groups(net, split), **kw)
    sign = -1.0 if kw.get("maximize") else 1.0      # maximize -mse: still a regression

    def step(X, Y):
        opt.zero_grad(set_to_none)
        loss = sign * ((net(X) - Y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return step, net, opt


def _data(lib, dtype=np.float64):
    return lib.tensor(XD.astype(dtype)), lib.tensor(YD.astype(dtype))


def _params(net):
    return [p.detach().numpy().copy() for p in net.parameters()]


def _close(a, b, rtol, atol=1e-12):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _run(step, X, Y, n):
    return np.array([float(step(X, Y).item()) for _ in range(n)])


# ---- against torch ----
@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_trajectory_matches_torch(cls, kw):
    torch = pytest.importorskip("torch")
    s_tg, n_tg, _ = _setup(tg, cls, kw)
    s_th, n_th, _ = _setup(torch, cls, kw)
    h_tg, h_th = _run(s_tg, *_data(tg), 100), _run(s_th, *_data(torch), 100)
    np.testing.assert_allclose(h_tg, h_th, rtol=RTOL_TORCH)
    _close(_params(n_tg), _params(n_th), RTOL_TORCH, 1e-8)


@pytest.mark.parametrize("cls,kw", _cases(1, 6, 10, 16, 18))
def test_param_groups_with_different_lrs_match_torch(cls, kw):
    torch = pytest.importorskip("torch")
    s_tg, n_tg, o_tg = _setup(tg, cls, kw, split=True)
    s_th, n_th, o_th = _setup(torch, cls, kw, split=True)
    assert [g["lr"] for g in o_tg.param_groups] == [kw["lr"], 0.02]
    h_tg, h_th = _run(s_tg, *_data(tg), 60), _run(s_th, *_data(torch), 60)
    np.testing.assert_allclose(h_tg, h_th, rtol=RTOL_TORCH)
    _close(_params(n_tg), _params(n_th), RTOL_TORCH, 1e-8)


@pytest.mark.parametrize("cls", ["Adam", "Adagrad", "RMSprop"])
def test_float32_matches_torch(cls):
    """The float32 step counter is read as float64 for the bias corrections, as torch does."""
    torch = pytest.importorskip("torch")
    kw = dict(lr=0.01, lr_decay=0.05) if cls == "Adagrad" else dict(lr=0.01)
    s_tg, n_tg, o_tg = _setup(tg, cls, kw, dtype="float")
    s_th, n_th, o_th = _setup(torch, cls, kw, dtype="float")
    h_tg = _run(s_tg, *_data(tg, np.float32), 100)
    h_th = _run(s_th, *_data(torch, np.float32), 100)
    np.testing.assert_allclose(h_tg, h_th, rtol=1e-4)
    p_tg, p_th = next(iter(o_tg.state)), next(iter(o_th.state))
    assert o_tg.state[p_tg]["step"].dtype == tg.float32
    assert o_tg.state[p_tg]["step"].item() == o_th.state[p_th]["step"].item() == 100


def test_defaults_and_state_dict_layout_match_torch():
    torch = pytest.importorskip("torch")
    options = {"SGD": dict(momentum=0.9), "Adam": dict(amsgrad=True),
               "AdamW": dict(amsgrad=True), "RMSprop": dict(momentum=0.9, centered=True),
               "Adagrad": {}}
    for cls, kw in options.items():
        sds = []
        for lib in (tg, torch):
            step, net, opt = _setup(lib, cls, kw, split=True)
            step(*_data(lib))
            sds.append(opt.state_dict())
        a, b = sds
        assert a["param_groups"] == b["param_groups"]
        assert sorted(a["state"]) == sorted(b["state"])
        for k in b["state"]:
            assert sorted(a["state"][k]) == sorted(b["state"][k])
            for name, v in b["state"][k].items():
                np.testing.assert_allclose(a["state"][k][name].numpy(), v.numpy(), rtol=1e-12)


# ---- tapegrad.compile ----
@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_compiled_equals_eager(cls, kw):
    s_c, n_c, _ = _setup(tg, cls, kw)
    s_e, n_e, _ = _setup(tg, cls, kw)
    X, Y = _data(tg)
    c = tg.compile(s_c)
    h_c = np.concatenate([_run(c, X, Y, 20), c.run(100, X, Y)])
    h_e = _run(s_e, X, Y, 120)
    np.testing.assert_allclose(h_c, h_e, rtol=RTOL_REPLAY)
    _close(_params(n_c), _params(n_e), RTOL_REPLAY)
    assert c.n_records == 2 and len(c.paths) == 1, c.explain()


def test_compiled_adam_does_not_re_record_like_sgd():
    """Adam's step count advances inside the replays: the path recorded at call 2 is replayed
    for every later call, as SGD's is."""
    counts = {}
    for cls in ("SGD", "Adam"):
        step, net, opt = _setup(tg, cls, dict(lr=0.01, momentum=0.9) if cls == "SGD" else {})
        c = tg.compile(step)
        _run(c, *_data(tg), 30)
        counts[cls] = (c.n_records, len(c.paths), c.explain().count("recorded"))
    assert counts["Adam"] == counts["SGD"] == (2, 1, 2)
    assert opt.state[next(iter(opt.state))]["step"].item() == 30


def test_compiled_float32_adam_equals_eager():
    s_c, n_c, _ = _setup(tg, "Adam", dict(lr=0.01, amsgrad=True), dtype="float")
    s_e, n_e, _ = _setup(tg, "Adam", dict(lr=0.01, amsgrad=True), dtype="float")
    X, Y = _data(tg, np.float32)
    c = tg.compile(s_c)
    np.testing.assert_array_equal(c.run(100, X, Y), _run(s_e, X, Y, 100))
    _close(_params(n_c), _params(n_e), 0)


def test_compiled_specialized_path_equals_eager():
    s_c, n_c, _ = _setup(tg, "Adam", dict(lr=0.01, weight_decay=0.1))
    s_e, n_e, _ = _setup(tg, "Adam", dict(lr=0.01, weight_decay=0.1))
    X, Y = _data(tg)
    c = tg.compile(s_c, specialize_after=0)
    h_c = np.concatenate([_run(c, X, Y, 5), c.run(50, X, Y)])
    np.testing.assert_allclose(h_c, _run(s_e, X, Y, 55), rtol=RTOL_REPLAY)
    assert c.n_records == 2


@pytest.mark.parametrize("sched", ["StepLR", "ExponentialLR", "manual"])
def test_lr_changed_between_calls_takes_effect_in_replays(sched):
    runs = []
    for compiled in (True, False):
        step, net, opt = _setup(tg, "Adam", dict(lr=0.05), split=True)
        fn = tg.compile(step) if compiled else step
        if sched == "StepLR":
            s = tg.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        elif sched == "ExponentialLR":
            s = tg.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
        hist = []
        for k in range(15):
            hist.append(fn(*_data(tg)).item())
            if sched == "manual":
                opt.param_groups[k % 2]["lr"] *= 0.7
            else:
                s.step()
        runs.append((np.array(hist), _params(net), fn))
    (h_c, p_c, c), (h_e, p_e, _) = runs
    np.testing.assert_allclose(h_c, h_e, rtol=RTOL_REPLAY)
    _close(p_c, p_e, RTOL_REPLAY)
    assert c.n_records == 2 and len(c.paths) == 1, c.explain()


@pytest.mark.parametrize("cls", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_tensor_lr_filled_by_a_scheduler(cls):
    """A Tensor lr is read where it lives: a scheduler fills it between compiled calls."""
    runs = []
    for compiled in (True, False):
        net = _net(tg)
        opt = getattr(tg.optim, cls)(net.parameters(), lr=tg.tensor(0.01, dtype=tg.float64))
        s = tg.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)

        def step(X, Y):
            opt.zero_grad()
            loss = ((net(X) - Y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = tg.compile(step) if compiled else step
        hist = []
        for _ in range(12):
            hist.append(fn(*_data(tg)).item())
            s.step()
        runs.append((hist, _params(net), fn))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=RTOL_REPLAY)
    _close(runs[0][1], runs[1][1], RTOL_REPLAY)
    assert runs[0][2].n_records == 2
    assert isinstance(opt.param_groups[0]["lr"], tg.Tensor)
    np.testing.assert_allclose(opt.param_groups[0]["lr"].item(), 0.01 * 0.9 ** 12, rtol=1e-12)


def test_other_hyperparameters_are_guarded():
    runs = []
    for compiled in (True, False):
        step, net, opt = _setup(tg, "RMSprop", dict(lr=0.01, momentum=0.5))
        fn = tg.compile(step) if compiled else step
        hist = []
        for k in range(12):
            if k == 6:
                opt.param_groups[0]["alpha"] = 0.5
                opt.param_groups[0]["momentum"] = 0.8
            hist.append(fn(*_data(tg)).item())
        runs.append((hist, _params(net), fn))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=RTOL_REPLAY)
    _close(runs[0][1], runs[1][1], RTOL_REPLAY)
    assert runs[0][2].n_records == 3 and "RMSprop state" in runs[0][2].explain()


@pytest.mark.parametrize("sched", ["StepLR", "ExponentialLR"])
def test_scheduler_step_inside_compiled_function_runs_eagerly(sched):
    runs = []
    for compiled in (True, False):
        step, net, opt = _setup(tg, "SGD", dict(lr=0.1, momentum=0.5))
        s = getattr(tg.optim.lr_scheduler, sched)(opt, *((2,) if sched == "StepLR" else ()),
                                                  gamma=0.5)

        def fn(X, Y):
            loss = step(X, Y)
            s.step()
            return loss
        f = tg.compile(fn) if compiled else fn
        runs.append((_run(f, *_data(tg), 8), _params(net), s.get_last_lr(), f))
    (h_c, p_c, lr_c, c), (h_e, p_e, lr_e, _) = runs
    np.testing.assert_allclose(h_c, h_e, rtol=RTOL_REPLAY)
    _close(p_c, p_e, RTOL_REPLAY)
    assert lr_c == lr_e == [0.1 * 0.5 ** (4 if sched == "StepLR" else 8)]
    assert not c.paths and f"{sched}.step()" in c.explain()


@pytest.mark.parametrize("set_to_none", [False, True])
def test_load_state_dict_between_compiled_calls_records_again(set_to_none):
    """Loading a state_dict (new state tensors) between compiled calls records again."""
    step, net, opt = _setup(tg, "Adam", dict(lr=0.02, amsgrad=True), set_to_none=set_to_none)
    X, Y = _data(tg)
    c = tg.compile(step)
    _run(c, X, Y, 10)
    saved, w = _clone_sd(opt.state_dict()), _params(net)
    ref = _run(c, X, Y, 10)
    opt.load_state_dict(saved)
    with tg.no_grad():
        for p, v in zip(net.parameters(), w):
            p.copy_(tg.tensor(v))
    np.testing.assert_allclose(_run(c, X, Y, 10), ref, rtol=RTOL_REPLAY)
    assert "Adam state" in c.explain()


# ---- state_dict ----
def _clone_sd(sd):
    """What torch.save + torch.load would give: the same structure with new tensors."""
    if isinstance(sd, dict):
        return {k: _clone_sd(v) for k, v in sd.items()}
    if isinstance(sd, list):
        return [_clone_sd(v) for v in sd]
    return sd.clone() if isinstance(sd, tg.Tensor) else sd


@pytest.mark.parametrize("cls,kw", _cases(2, 6, 12, 16, 19))
def test_state_dict_round_trip_continues_identically(cls, kw):
    X, Y = _data(tg)
    s_a, n_a, o_a = _setup(tg, cls, kw, split=True)
    _run(s_a, X, Y, 25)
    o_a.param_groups[1]["lr"] = 0.015            # saved with the groups
    sd = _clone_sd(o_a.state_dict())
    s_b, n_b, o_b = _setup(tg, cls, dict(kw, lr=0.5), split=True)
    with tg.no_grad():
        for p, v in zip(n_b.parameters(), _params(n_a)):
            p.copy_(tg.tensor(v))
    o_b.load_state_dict(sd)
    assert [g["lr"] for g in o_b.param_groups] == [kw["lr"], 0.015]
    assert all(p is q for p, q in zip(o_b.param_groups[0]["params"], [n_b[0].weight,
                                                                      n_b[2].weight]))
    np.testing.assert_array_equal(_run(s_a, X, Y, 25), _run(s_b, X, Y, 25))
    _close(_params(n_a), _params(n_b), 0)


def test_state_dict_layout():
    step, net, opt = _setup(tg, "Adam", {}, split=True)
    step(*_data(tg))
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    st = sd["state"][0]
    assert sorted(st) == ["exp_avg", "exp_avg_sq", "step"]
    assert st["step"].shape == () and st["step"].item() == 1.0
    assert st["exp_avg"] is opt.state[net[0].weight]["exp_avg"]     # not a copy, as torch


def test_load_state_dict_errors():
    _, _, opt = _setup(tg, "Adam", {}, split=True)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict(dict(sd, param_groups=sd["param_groups"][:1]))
    bad = [dict(g, params=g["params"][:1]) for g in sd["param_groups"]]
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(dict(sd, param_groups=bad))


def test_load_state_dict_with_python_number_step():
    """Old checkpoints keep `step` as a number: loading makes it a tensor, as torch does."""
    X, Y = _data(tg)
    s_a, n_a, o_a = _setup(tg, "Adam", {})
    _run(s_a, X, Y, 3)
    sd = _clone_sd(o_a.state_dict())
    for st in sd["state"].values():
        st["step"] = st["step"].item()
    s_b, n_b, o_b = _setup(tg, "Adam", {})
    with tg.no_grad():
        for p, v in zip(n_b.parameters(), _params(n_a)):
            p.copy_(tg.tensor(v))
    o_b.load_state_dict(sd)
    assert isinstance(o_b.state[n_b[0].weight]["step"], tg.Tensor)
    np.testing.assert_array_equal(_run(s_a, X, Y, 5), _run(s_b, X, Y, 5))


# ---- against NumPy references of the update formulas (no torch) ----
def _sgd_ref(w, g, st, t, lr=0.05, momentum=0.9, weight_decay=0.1):
    g = g + weight_decay * w
    st["buf"] = g.copy() if t == 1 else momentum * st["buf"] + g
    return w - lr * st["buf"]


def _adam_ref(w, g, st, t, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, amsgrad=False):
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
    v = st["vmax"] = np.maximum(st.get("vmax", 0), st["v"]) if amsgrad else st["v"]
    return w - lr * (st["m"] / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


def _adamw_ref(w, g, st, t, lr=0.01, weight_decay=0.1):
    return _adam_ref(w * (1 - lr * weight_decay), g, st, t, lr)


def _rmsprop_ref(w, g, st, t, lr=0.01, alpha=0.9, eps=1e-8, momentum=0.5):
    st["v"] = alpha * st.get("v", 0) + (1 - alpha) * g * g
    st["gm"] = alpha * st.get("gm", 0) + (1 - alpha) * g
    st["buf"] = momentum * st.get("buf", 0) + g / (np.sqrt(st["v"] - st["gm"] ** 2) + eps)
    return w - lr * st["buf"]


def _adagrad_ref(w, g, st, t, lr=0.1, lr_decay=0.05, init=0.2, eps=1e-10):
    st["s"] = st.get("s", init) + g * g
    return w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(st["s"]) + eps)


NUMPY_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.1), _sgd_ref),
    ("Adam", dict(lr=0.01), _adam_ref),
    ("Adam", dict(lr=0.01, amsgrad=True), lambda *a: _adam_ref(*a, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1), _adamw_ref),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True), _rmsprop_ref),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.2), _adagrad_ref),
]


@pytest.mark.parametrize("cls,kw,ref", NUMPY_CASES, ids=[f"{c}-{i}" for i, (c, _, _)
                                                         in enumerate(NUMPY_CASES)])
def test_update_matches_numpy_reference(cls, kw, ref):
    """0.5 ||A w - b||^2 has gradient A^T (A w - b): the update formula, written out."""
    A, b, w0 = RNG.standard_normal((8, 5)), RNG.standard_normal(8), RNG.standard_normal(5)
    w = tg.tensor(w0, requires_grad=True)
    opt = getattr(tg.optim, cls)([w], **kw)
    At, bt = tg.tensor(A), tg.tensor(b)
    v, st = w0.copy(), {}
    for t in range(1, 51):
        opt.zero_grad()
        (0.5 * ((At @ w - bt) ** 2).sum()).backward()
        opt.step()
        v = ref(v, A.T @ (A @ v - b), st, t)
        np.testing.assert_allclose(w.detach().numpy(), v, rtol=1e-10, atol=1e-12)


# ---- schedulers ----
SCHEDULERS = [("StepLR", dict(step_size=3, gamma=0.5)), ("StepLR", dict(step_size=1)),
              ("ExponentialLR", dict(gamma=0.9))]


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[f"{n}-{kw}" for n, kw in SCHEDULERS])
def test_scheduler_lrs_match_torch(name, kw):
    torch = pytest.importorskip("torch")
    lrs = []
    for lib in (tg, torch):
        _, _, opt = _setup(lib, "SGD", dict(lr=0.3, momentum=0.9), split=True)
        s = getattr(lib.optim.lr_scheduler, name)(opt, **kw)
        seq = [s.get_last_lr()]
        for _ in range(60):
            opt.step()
            s.step()
            seq.append(s.get_last_lr() + [g["lr"] for g in opt.param_groups])
        lrs.append((seq, [g["initial_lr"] for g in opt.param_groups], s.last_epoch))
    assert lrs[0] == lrs[1]


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[f"{n}-{kw}" for n, kw in SCHEDULERS])
def test_scheduler_follows_closed_form(name, kw):
    _, _, opt = _setup(tg, "SGD", dict(lr=0.3), split=True)
    s = getattr(tg.optim.lr_scheduler, name)(opt, **kw)
    assert [g["initial_lr"] for g in opt.param_groups] == s.base_lrs == [0.3, 0.02]
    g = kw.get("gamma", 0.1)
    for epoch in range(1, 40):
        opt.step()
        s.step()
        k = epoch // kw["step_size"] if name == "StepLR" else epoch
        np.testing.assert_allclose(s.get_last_lr(), [0.3 * g ** k, 0.02 * g ** k], rtol=1e-12)
        assert s.last_epoch == epoch


def test_scheduler_state_dict_and_resume():
    _, _, opt = _setup(tg, "Adam", dict(lr=0.1))
    s = tg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(5):
        opt.step()
        s.step()
    sd = s.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 5 and sd["step_size"] == 2
    _, _, opt2 = _setup(tg, "Adam", dict(lr=0.1))
    s2 = tg.optim.lr_scheduler.StepLR(opt2, step_size=7, gamma=0.1)
    s2.load_state_dict(sd)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(6):
        for o, sc in ((opt, s), (opt2, s2)):
            o.step()
            sc.step()
        assert s.get_last_lr() == s2.get_last_lr()
    # a scheduler resumed with last_epoch needs initial_lr in the groups
    _, _, opt3 = _setup(tg, "Adam", dict(lr=0.1))
    with pytest.raises(KeyError, match="initial_lr"):
        tg.optim.lr_scheduler.ExponentialLR(opt3, gamma=0.9, last_epoch=3)


def test_scheduler_warnings_and_epoch_argument():
    torch = pytest.importorskip("torch")
    out = []
    for lib in (tg, torch):
        _, _, opt = _setup(lib, "SGD", dict(lr=0.3))
        s = lib.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
        with pytest.warns(UserWarning, match="before `optimizer.step"):
            s.step()
        with pytest.warns(UserWarning, match="get_last_lr"):
            s.get_lr()
        with pytest.warns(UserWarning, match="epoch parameter"):
            s.step(4)
        out.append(s.get_last_lr())
    assert out[0] == out[1]
    assert issubclass(tg.optim.lr_scheduler._LRScheduler, tg.optim.lr_scheduler.LRScheduler)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        tg.optim.lr_scheduler.StepLR(object(), 3)


# ---- API ----
def _leaf():
    return tg.tensor(np.ones(3), requires_grad=True)


INVALID = [
    ("SGD", dict(lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    ("SGD", dict(momentum=-0.5), ValueError, "Invalid momentum value: -0.5"),
    ("SGD", dict(weight_decay=-1.0), ValueError, "Invalid weight_decay value: -1.0"),
    ("SGD", dict(nesterov=True), ValueError, "Nesterov momentum requires a momentum"),
    ("Adam", dict(lr=-1e-3), ValueError, "Invalid learning rate"),
    ("Adam", dict(eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    ("Adam", dict(betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", dict(betas=(0.9, -0.1)), ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", dict(betas=(0, 0.9)), ValueError, "betas must be either both floats or both"),
    ("Adam", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value"),
    ("AdamW", dict(betas=(0.9, 1.5)), ValueError, "Invalid beta parameter at index 1"),
    ("RMSprop", dict(alpha=-0.1), ValueError, "Invalid alpha value: -0.1"),
    ("RMSprop", dict(momentum=-0.1), ValueError, "Invalid momentum value"),
    ("RMSprop", dict(eps=-1e-8), ValueError, "Invalid epsilon value"),
    ("Adagrad", dict(lr_decay=-0.1), ValueError, "Invalid lr_decay value: -0.1"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), ValueError,
     "Invalid initial_accumulator_value value: -1.0"),
    ("Adagrad", dict(eps=-1.0), ValueError, "Invalid epsilon value"),
    ("Adam", dict(fused=True, foreach=True), RuntimeError, "cannot be `True` together"),
    ("SGD", dict(fused=True, differentiable=True), RuntimeError, "does not support"),
]


@pytest.mark.parametrize("cls,kw,exc,msg", INVALID, ids=[f"{c}-{kw}" for c, kw, _, _ in INVALID])
def test_invalid_hyperparameters(cls, kw, exc, msg):
    with pytest.raises(exc, match=msg.replace("(", r"\(")):
        getattr(tg.optim, cls)([_leaf()], **kw)


@pytest.mark.parametrize("cls,kw,exc,msg", INVALID, ids=[f"{c}-{kw}" for c, kw, _, _ in INVALID])
def test_invalid_hyperparameters_like_torch(cls, kw, exc, msg):
    torch = pytest.importorskip("torch")
    with pytest.raises(exc, match=msg.replace("(", r"\(")):
        getattr(torch.optim, cls)([torch.ones(3, requires_grad=True)], **kw)


@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW", "Adagrad"])
def test_unsupported_implementation_switches(cls):
    with pytest.raises(RuntimeError, match="fused=True is not supported"):
        getattr(tg.optim, cls)([_leaf()], fused=True)
    with pytest.raises(RuntimeError, match="differentiable=True is not supported"):
        getattr(tg.optim, cls)([_leaf()], differentiable=True)
    for kw in (dict(foreach=True), dict(foreach=False), dict(fused=False)):
        getattr(tg.optim, cls)([_leaf()], **kw)
    if cls.startswith("Adam"):
        tg.optim.Adam([_leaf()], capturable=True)


def test_bad_params():
    with pytest.raises(ValueError, match="empty parameter list"):
        tg.optim.Adam([])
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        tg.optim.Adam(_leaf())
    with pytest.raises(TypeError, match="can only optimize Tensors, but one of the params is "
                                        "int"):
        tg.optim.SGD([1])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        tg.optim.SGD([_leaf() * 2])
    with pytest.raises(TypeError, match="ordered collections"):
        tg.optim.SGD([{"params": {_leaf()}}])
    a = _leaf()
    opt = tg.optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": a})
    with pytest.warns(UserWarning, match="duplicate parameters"):
        tg.optim.SGD([a, a])


def test_param_groups_add_param_group_and_names():
    net = _net(tg)
    opt = tg.optim.Adam(net[0].parameters(), lr=0.1, betas=(0.8, 0.9))
    opt.add_param_group({"params": net[2].weight, "lr": 0.01})
    g0, g1 = opt.param_groups
    assert g1["params"] == [net[2].weight] and g1["lr"] == 0.01 and g1["betas"] == (0.8, 0.9)
    assert g0["amsgrad"] is False and g0["weight_decay"] == 0 and g0["eps"] == 1e-8
    named = tg.optim.SGD(net.named_parameters(), lr=0.1)
    assert named.param_groups[0]["param_names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert named.state_dict()["param_groups"][0]["param_names"][0] == "0.weight"
    assert "Parameter Group 1" in repr(opt) and "lr: 0.01" in repr(opt)
    assert isinstance(opt.state, dict) and opt.state[net[2].bias] == {}      # a defaultdict


def test_zero_grad_and_closure():
    step, net, opt = _setup(tg, "Adam", dict(lr=0.01))
    X, Y = _data(tg)
    step(X, Y)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())

    def closure():
        opt.zero_grad()
        loss = ((net(X) - Y) ** 2).mean()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert isinstance(loss, tg.Tensor) and loss.requires_grad
    assert opt.step() is None


def test_parameters_without_grad_are_skipped():
    a, b = _leaf(), _leaf()
    for cls in ("SGD", "Adam", "RMSprop", "Adagrad"):
        opt = getattr(tg.optim, cls)([a, b], lr=0.1)
        (a * a).sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opt.step()
        np.testing.assert_array_equal(b.detach().numpy(), np.ones(3))
        assert cls == "Adagrad" or b not in opt.state or not opt.state[b]
        a.grad = None
