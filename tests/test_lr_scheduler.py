"""Learning-rate schedulers: the sequences of learning rates (and momenta) equal torch's over
many steps, bit for bit, when torch is installed; against closed forms written here
otherwise; step(epoch), state_dict, compile and the errors for bad arguments."""
import math
import warnings

import numpy as np
import pytest

import tapegrad as tg

S = tg.optim.lr_scheduler
LR0 = (0.3, 0.02)                 # two parameter groups


def _optimizer(lib, name="SGD", **kw):
    w = lib.nn.Parameter(lib.ones(2, dtype=lib.float64))
    b = lib.nn.Parameter(lib.ones(1, dtype=lib.float64))
    kw = kw or ({"momentum": 0.9} if name == "SGD" else {})
    return getattr(lib.optim, name)([{"params": [w]}, {"params": [b], "lr": LR0[1]}],
                                    lr=LR0[0], **kw)


def _lambda(epoch):
    return 0.95 ** epoch


class _Factor:
    """A callable object: its state goes into state_dict (a plain function's does not)."""

    def __init__(self, f):
        self.f = f

    def __call__(self, epoch):
        return self.f if epoch % 3 else 1.0


# name, constructor arguments (given the library), optimizer, steps
CONFIGS = [
    ("LambdaLR", lambda L, o: L.LambdaLR(o, _lambda), "SGD", 40),
    ("LambdaLR per group", lambda L, o: L.LambdaLR(o, [_lambda, lambda e: 1 / (e + 1)]),
     "SGD", 40),
    ("MultiplicativeLR", lambda L, o: L.MultiplicativeLR(o, _Factor(0.9)), "SGD", 40),
    ("StepLR", lambda L, o: L.StepLR(o, 7, gamma=0.5), "SGD", 40),
    ("MultiStepLR", lambda L, o: L.MultiStepLR(o, [3, 8, 8, 20], gamma=0.3), "SGD", 40),
    ("ConstantLR", lambda L, o: L.ConstantLR(o, factor=0.25, total_iters=6), "SGD", 20),
    ("LinearLR", lambda L, o: L.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=13),
     "SGD", 30),
    ("LinearLR decreasing", lambda L, o: L.LinearLR(o, 1.0, 0.05, 9), "SGD", 20),
    ("ExponentialLR", lambda L, o: L.ExponentialLR(o, 0.93), "SGD", 60),
    ("PolynomialLR", lambda L, o: L.PolynomialLR(o, total_iters=17, power=2.5), "SGD", 30),
    ("CosineAnnealingLR", lambda L, o: L.CosineAnnealingLR(o, T_max=11, eta_min=1e-3), "SGD",
     60),
    ("CosineAnnealingWarmRestarts", lambda L, o: L.CosineAnnealingWarmRestarts(o, 5),
     "SGD", 40),
    ("CosineAnnealingWarmRestarts T_mult", lambda L, o: L.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=0.001), "SGD", 60),
    ("OneCycleLR", lambda L, o: L.OneCycleLR(o, max_lr=[1.0, 0.1], total_steps=50), "SGD", 50),
    ("OneCycleLR linear three_phase Adam", lambda L, o: L.OneCycleLR(
        o, max_lr=0.5, epochs=4, steps_per_epoch=10, pct_start=0.25, anneal_strategy="linear",
        three_phase=True, div_factor=10.0), "Adam", 40),
    ("OneCycleLR no momentum", lambda L, o: L.OneCycleLR(
        o, 0.8, total_steps=30, cycle_momentum=False), "SGD", 30),
    ("SequentialLR", lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, 0.1, total_iters=5), L.ExponentialLR(o, 0.9),
            L.CosineAnnealingLR(o, 8)], milestones=[5, 12]), "SGD", 40),
    ("ChainedScheduler", lambda L, o: L.ChainedScheduler(
        [L.ConstantLR(o, 0.5, total_iters=4), L.ExponentialLR(o, 0.9)]), "SGD", 30),
]
IDS = [c[0] for c in CONFIGS]


def _sequence(lib, make, opt_name, steps):
    opt = _optimizer(lib, opt_name)
    sched = make(lib.optim.lr_scheduler, opt)
    key = "betas" if opt_name == "Adam" else "momentum"
    seq = []
    for _ in range(steps):
        seq.append((sched.get_last_lr(), [g["lr"] for g in opt.param_groups],
                    [g[key] for g in opt.param_groups]))
        opt.step()
        sched.step()
    return seq, sched, opt


@pytest.mark.parametrize("name,make,opt_name,steps", CONFIGS, ids=IDS)
def test_lr_sequence_is_torchs(name, make, opt_name, steps):
    torch = pytest.importorskip("torch")
    ours, s1, _ = _sequence(tg, make, opt_name, steps)
    theirs, s2, _ = _sequence(torch, make, opt_name, steps)
    assert ours == theirs
    assert getattr(s1, "last_epoch", None) == getattr(s2, "last_epoch", None)


def _closed(name, epoch, base):
    """The schedules' definitions, epoch by epoch (for the configurations above)."""
    e = epoch
    if name == "StepLR":
        return base * 0.5 ** (e // 7)
    if name == "MultiStepLR":
        return base * 0.3 ** sum(m <= e for m in [3, 8, 8, 20])
    if name == "ConstantLR":
        return base * (0.25 if e < 6 else 1.0)
    if name == "LinearLR":
        return base * (0.1 + 0.8 * min(e, 13) / 13)
    if name == "ExponentialLR":
        return base * 0.93 ** e
    if name == "PolynomialLR":
        return base * (1 - min(e, 17) / 17) ** 2.5
    if name == "CosineAnnealingLR":
        return 1e-3 + (base - 1e-3) * (1 + math.cos(math.pi * e / 11)) / 2
    if name == "LambdaLR":
        return base * 0.95 ** e
    if name == "CosineAnnealingWarmRestarts T_mult":
        t_i, t = 3, e
        while t >= t_i:
            t, t_i = t - t_i, 2 * t_i
        return 0.001 + (base - 0.001) * (1 + math.cos(math.pi * t / t_i)) / 2
    return None


CLOSED = [c for c in CONFIGS if _closed(c[0], 0, 1.0) is not None]


@pytest.mark.parametrize("name,make,opt_name,steps", CLOSED, ids=[c[0] for c in CLOSED])
def test_chainable_lr_follows_the_closed_form(name, make, opt_name, steps):
    seq, _, _ = _sequence(tg, make, opt_name, steps)
    for epoch, (last, lrs, _) in enumerate(seq):
        assert last == lrs
        expected = [_closed(name, epoch, base) for base in LR0]
        np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)


def test_one_cycle_shape():
    seq, sched, opt = _sequence(tg, CONFIGS[IDS.index("OneCycleLR")][1], "SGD", 50)
    lrs = np.array([lrs[0] for _, lrs, _ in seq])
    momenta = np.array([m[0] for _, _, m in seq])
    peak = int(np.argmax(lrs))
    assert peak == int(0.3 * 50) - 1 and lrs[peak] == pytest.approx(1.0)
    assert lrs[0] == pytest.approx(1.0 / 25) and lrs[-1] == pytest.approx(1.0 / 25 / 1e4)
    assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    assert momenta[0] == pytest.approx(0.95) and momenta[peak] == pytest.approx(0.85)
    with pytest.raises(ValueError, match="^Tried to step 51 times. The specified number of "
                                         "total steps is 50$"):
        sched.step()


@pytest.mark.parametrize("mode,threshold_mode", [("min", "rel"), ("min", "abs"), ("max", "rel"),
                                                 ("max", "abs")])
def test_reduce_lr_on_plateau_is_torchs(mode, threshold_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 10), 0.5 + 0.01 * rng.standard_normal(60)])
    if mode == "max":
        metrics = -metrics
    seqs = []
    for lib in (tg, torch):
        opt = _optimizer(lib)
        sched = lib.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=0.5, patience=3, threshold=0.01,
            threshold_mode=threshold_mode, cooldown=2, min_lr=[0.01, 0.001], eps=1e-4)
        seq = []
        for k, m in enumerate(metrics):
            sched.step(lib.tensor(float(m)) if k % 2 else float(m))
            seq.append((sched.get_last_lr(), sched.num_bad_epochs, sched.cooldown_counter,
                        sched.best, sched.last_epoch))
        seqs.append(seq)
    assert seqs[0] == seqs[1]


def test_reduce_lr_on_plateau_rules():
    """No improvement at all: the lr falls by factor after patience + 1 epochs, then every
    cooldown + patience + 1 epochs, never below min_lr; a cut smaller than eps is skipped."""
    opt = _optimizer(tg)
    patience, cooldown = 2, 1
    s = S.ReduceLROnPlateau(opt, factor=0.5, patience=patience, cooldown=cooldown,
                            min_lr=0.05)
    lrs = []
    for _ in range(15):
        s.step(1.0)
        lrs.append(opt.param_groups[0]["lr"])
    cuts = [k for k in range(1, 15) if lrs[k] != lrs[k - 1]]
    assert lrs[0] == LR0[0] and cuts[0] == patience + 1       # 1: best, 2-4: bad (3 > 2)
    assert np.all(np.diff(cuts[:2]) == cooldown + patience + 1)
    assert min(lrs) == 0.05 and opt.param_groups[1]["lr"] == LR0[1]  # group 2 is at min_lr
    tiny = _optimizer(tg)
    s = S.ReduceLROnPlateau(tiny, factor=0.9, patience=0, eps=0.1)
    for _ in range(3):
        s.step(1.0)
    assert [g["lr"] for g in tiny.param_groups] == list(LR0)      # cuts below eps: skipped
    sd = s.state_dict()
    assert "optimizer" not in sd and sd["mode"] == "min"
    s2 = S.ReduceLROnPlateau(_optimizer(tg), mode="max")
    s2.load_state_dict(sd)
    assert s2.mode_worse == math.inf and s2.num_bad_epochs == s.num_bad_epochs


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
                                  "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
                                  "CosineAnnealingWarmRestarts T_mult"])
def test_step_with_epoch_uses_the_closed_form(name):
    make = dict((c[0], c[1]) for c in CONFIGS)[name]
    opt = _optimizer(tg)
    s = make(S, opt)
    for epoch in (4, 17, 2, 9, 30):
        opt.step()
        if name.startswith("CosineAnnealingWarmRestarts"):     # it takes epochs, silently
            s.step(epoch)
        else:
            with pytest.warns(UserWarning, match="epoch parameter"):
                s.step(epoch)
        np.testing.assert_allclose(s.get_last_lr(), [_closed(name, epoch, b) for b in LR0],
                                   rtol=1e-12, atol=1e-15)


EPOCHS = [c for c in CONFIGS if not c[0].startswith(("SequentialLR", "ChainedScheduler"))]


@pytest.mark.parametrize("name,make,opt_name,steps", EPOCHS, ids=[c[0] for c in EPOCHS])
def test_step_with_epoch_is_torchs(name, make, opt_name, steps):
    """step(epoch): the closed form where there is one, else get_lr at that epoch, as torch."""
    torch = pytest.importorskip("torch")
    out = []
    for lib in (tg, torch):
        opt = _optimizer(lib, opt_name)
        s = make(lib.optim.lr_scheduler, opt)
        seq = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in (3, 1, 7, 7, 12):
                opt.step()
                s.step(epoch)
                seq.append(s.get_last_lr())
        out.append(seq)
    assert out[0] == out[1]


@pytest.mark.parametrize("name,make,opt_name,steps", CONFIGS, ids=IDS)
def test_state_dict_resumes_the_sequence(name, make, opt_name, steps):
    full, _, _ = _sequence(tg, make, opt_name, steps)
    opt = _optimizer(tg, opt_name)
    s = make(S, opt)
    half = steps // 2
    for _ in range(half):
        opt.step()
        s.step()
    sd = s.state_dict()
    assert "optimizer" not in sd
    groups = [dict(g) for g in opt.param_groups]
    opt2 = _optimizer(tg, opt_name)
    s2 = make(S, opt2)
    s2.load_state_dict(sd)
    for g, saved in zip(opt2.param_groups, groups):
        g.update({k: v for k, v in saved.items() if k != "params"})
    rest = []
    for _ in range(steps - half):
        rest.append(s2.get_last_lr())
        opt2.step()
        s2.step()
    assert rest == [lr for lr, _, _ in full[half:]]


def test_lambda_state_dict_keeps_callable_objects_only():
    opt = _optimizer(tg)
    s = S.MultiplicativeLR(opt, [_Factor(0.9), _lambda])
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"f": 0.9}, None]
    s2 = S.MultiplicativeLR(_optimizer(tg), [_Factor(0.5), _lambda])
    s2.load_state_dict(sd)
    assert s2.lr_lambdas[0].f == 0.9


def test_scheduler_step_inside_a_compiled_function_runs_it_eagerly():
    opt = _optimizer(tg)
    s = S.CosineAnnealingLR(opt, T_max=5)

    def step():
        opt.step()
        s.step()
        return 0.0
    compiled = tg.compile(step)
    for _ in range(3):
        compiled()
    assert not compiled.paths and "CosineAnnealingLR.step()" in compiled.explain()
    assert s.last_epoch == 3


def _errors(lib):
    L, o = lib.optim.lr_scheduler, _optimizer(lib)
    return [
        (lambda: L.LambdaLR(o, [_lambda]), ValueError, "Expected 2 lr_lambdas, but got 1"),
        (lambda: L.MultiplicativeLR(o, 0.5), TypeError,
         "lr_lambda should be a function, but got float"),
        (lambda: L.ConstantLR(o, factor=1.5), ValueError,
         "Constant multiplicative factor expected to be between 0 and 1."),
        (lambda: L.LinearLR(o, start_factor=0), ValueError,
         "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."),
        (lambda: L.LinearLR(o, end_factor=1.5), ValueError,
         "Ending multiplicative factor expected to be between 0 and 1."),
        (lambda: L.CosineAnnealingWarmRestarts(o, 0), ValueError,
         "Expected positive integer T_0, but got 0"),
        (lambda: L.CosineAnnealingWarmRestarts(o, 2, T_mult=0), ValueError,
         "Expected integer T_mult >= 1, but got 0"),
        (lambda: L.CosineAnnealingWarmRestarts(o, 2).step(-1), ValueError,
         "Expected non-negative epoch, but got -1"),
        (lambda: L.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0."),
        (lambda: L.ReduceLROnPlateau(o, mode="avg"), ValueError, "mode avg is unknown!"),
        (lambda: L.ReduceLROnPlateau(o, threshold_mode="x"), ValueError,
         "threshold mode x is unknown!"),
        (lambda: L.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
        (lambda: L.OneCycleLR(o, 1.0), ValueError,
         "You must define either total_steps OR (epochs AND steps_per_epoch)"),
        (lambda: L.OneCycleLR(o, 1.0, total_steps=0), ValueError,
         "Expected positive integer total_steps, but got 0"),
        (lambda: L.OneCycleLR(o, 1.0, epochs=2, steps_per_epoch=0), ValueError,
         "Expected positive integer steps_per_epoch, but got 0"),
        (lambda: L.OneCycleLR(o, 1.0, total_steps=5, pct_start=1), ValueError,
         "Expected float between 0 and 1 pct_start, but got 1"),
        (lambda: L.OneCycleLR(o, 1.0, total_steps=5, anneal_strategy="exp"), ValueError,
         "anneal_strategy must be one of 'cos' or 'linear', instead got exp"),
        (lambda: L.OneCycleLR(o, [1.0], total_steps=5), ValueError,
         "max_lr must have the same length as optimizer.param_groups. max_lr has 1 values, "
         "param_groups has 2."),
        (lambda: L.SequentialLR(o, [], []), ValueError,
         "SequentialLR expects at least one scheduler, but got no scheduler."),
        (lambda: L.SequentialLR(o, [L.StepLR(o, 2), L.StepLR(o, 3)], []), ValueError,
         "Sequential Schedulers expects number of schedulers provided to be one more than the "
         "number of milestone points, but got number of schedulers 2 and the number of "
         "milestones to be equal to 0"),
        (lambda: L.SequentialLR(o, [L.ReduceLROnPlateau(o)], []), ValueError,
         "SequentialLR does not support `ReduceLROnPlateau` scheduler as it requires "
         "additional kwargs to be specified when calling `step`, but got one at index 0 in "
         "the given schedulers sequence."),
        (lambda: L.ChainedScheduler([]), ValueError,
         "ChainedScheduler expects at least one scheduler to be chained, but got no "
         "scheduler."),
        (lambda: L.SequentialLR(o, [object()], []), TypeError,
         "SequentialLR at index 0 should have `optimizer` as its attribute."),
    ]


@pytest.mark.parametrize("k", range(len(_errors(tg))))
def test_scheduler_errors(k):
    fn, exc, msg = _errors(tg)[k]
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value) == msg


@pytest.mark.parametrize("k", range(len(_errors(tg))))
def test_scheduler_errors_are_torchs(k):
    torch = pytest.importorskip("torch")
    fn, exc, msg = _errors(torch)[k]
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value) == msg
