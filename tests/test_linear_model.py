"""tapegrad.linear_model: LinearRegression against numpy.linalg.lstsq; SGDRegressor against
closed forms (least squares, ridge), torch loops of the same steps, and scikit-learn's rules
(R^2, early stopping, validation)."""
import pickle
import warnings

import numpy as np
import pytest

import tapegrad
import tapegrad.linear_model
from tapegrad import linear_model as lm

N, NF = 60, 3                           # one problem size: few distinct compiled steps
TIGHT = dict(rtol=1e-9, atol=1e-9)      # converged float64 fits against closed forms
OPTIMIZERS = [("sgd", 0.2), ("adam", 0.05)]


def data(targets=None, noise=0.1, seed=0, n=N):
    """X (n, NF), y = X coef^T + intercept + noise: 1-D, or 2-D with `targets` columns."""
    rng = np.random.default_rng(seed)
    k = 1 if targets is None else targets
    X = rng.standard_normal((n, NF))
    coef = rng.uniform(-2, 2, (k, NF))
    intercept = rng.uniform(-1, 1, k)
    Y = X @ coef.T + intercept + noise * rng.standard_normal((n, k))
    if targets is None:
        return X, Y[:, 0], coef[0], intercept
    return X, Y, coef, intercept


def with_ones(X, fit_intercept):
    return np.c_[X, np.ones(len(X))] if fit_intercept else X


def split(solution, fit_intercept, y):
    """coef (as coef_ is shaped) and intercept from a solution of the system with_ones()."""
    coef = solution[:NF].T
    intercept = solution[NF] if fit_intercept else np.zeros(1 if y.ndim == 1 else y.shape[1])
    return coef, np.atleast_1d(intercept)


def sgd(**kw):
    kw.setdefault("tol", None)
    return lm.SGDRegressor(**kw)


# ---- LinearRegression ----
@pytest.mark.parametrize("targets", [None, 2])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_linear_regression_is_lstsq(fit_intercept, targets):
    X, y, _, _ = data(targets)
    A = with_ones(X, fit_intercept)
    coef, intercept = split(np.linalg.lstsq(A, y, rcond=None)[0], fit_intercept, y)
    reg = lm.LinearRegression(fit_intercept=fit_intercept)
    assert reg.fit(X, y) is reg
    np.testing.assert_allclose(reg.coef_, coef, rtol=1e-10, atol=1e-12)
    if targets is None:
        assert isinstance(reg.intercept_, float)
        np.testing.assert_allclose(reg.intercept_, intercept[0], atol=1e-12)
    elif fit_intercept:
        assert reg.intercept_.shape == (targets,)
        np.testing.assert_allclose(reg.intercept_, intercept, atol=1e-12)
    else:
        assert reg.intercept_ == 0.0
    assert reg.n_features_in_ == NF
    X2 = data(targets, seed=1)[0]
    np.testing.assert_allclose(reg.predict(X2), X2 @ coef.T + reg.intercept_, atol=1e-12)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_linear_regression_rank_deficient(fit_intercept):
    X, y, _, _ = data()
    X[:, 2] = X[:, 0] - 2 * X[:, 1]                     # rank 2
    reg = lm.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    A = with_ones(X, fit_intercept)
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    assert reg.rank_ == 2
    if not fit_intercept:                               # the minimum-norm solution
        np.testing.assert_allclose(reg.coef_, sol, rtol=1e-10, atol=1e-12)
    # the fitted values of a least-squares problem are unique, also for new rows with the
    # same dependence between columns
    Xn = data(seed=2)[0]
    Xn[:, 2] = Xn[:, 0] - 2 * Xn[:, 1]
    np.testing.assert_allclose(reg.predict(Xn), with_ones(Xn, fit_intercept) @ sol, atol=1e-10)
    np.testing.assert_allclose(A.T @ (y - reg.predict(X)), 0, atol=1e-10)


def test_linear_regression_sample_weight_is_repeated_rows():
    X, y, _, _ = data(2)
    w = np.random.default_rng(3).integers(0, 4, N)
    reg = lm.LinearRegression().fit(X, y, sample_weight=w)
    ref = lm.LinearRegression().fit(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0))
    np.testing.assert_allclose(reg.coef_, ref.coef_, atol=1e-12)
    np.testing.assert_allclose(reg.intercept_, ref.intercept_, atol=1e-12)


def test_linear_regression_like_sklearn():
    sk = pytest.importorskip("sklearn.linear_model")
    for targets in (None, 2):
        X, y, _, _ = data(targets)
        ours = lm.LinearRegression().fit(X, y)
        theirs = sk.LinearRegression().fit(X, y)
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-10)
        assert np.shape(ours.coef_) == np.shape(theirs.coef_)
        np.testing.assert_allclose(ours.score(X, y), theirs.score(X, y), atol=1e-12)


# ---- score ----
@pytest.mark.parametrize("targets", [None, 3])
def test_score_is_r2(targets):
    X, y, _, _ = data(targets, noise=1.0)
    reg = lm.LinearRegression().fit(X[:40], y[:40])
    Xt, yt = X[40:], y[40:].reshape(20, -1)
    res = ((yt - reg.predict(Xt).reshape(20, -1)) ** 2).sum(axis=0)
    tot = ((yt - yt.mean(axis=0)) ** 2).sum(axis=0)
    assert reg.score(Xt, y[40:]) == pytest.approx(np.mean(1 - res / tot), abs=1e-12)
    fit = sgd(max_iter=3, learning_rate=0.05).fit(X, y)   # far from converged: R^2 < 1
    res = ((y - fit.predict(X)) ** 2).sum(axis=0)
    tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    assert fit.score(X, y) == pytest.approx(np.mean(1 - res / tot), abs=1e-12)
    assert lm.LinearRegression().fit(X, X @ [1.0, 2.0, 3.0]).score(X, X @ [1.0, 2.0, 3.0]) == 1


# ---- SGDRegressor against closed forms ----
@pytest.mark.parametrize("optimizer,lr", OPTIMIZERS)
@pytest.mark.parametrize("batch_size", [None, 16])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sgd_squared_converges_to_lstsq(optimizer, lr, batch_size, fit_intercept):
    # minibatches: noiseless data, so every batch's gradient vanishes at the solution and
    # constant-step SGD converges to it; full batch: noisy data
    X, y, _, true_intercept = data(2, noise=0.1 if batch_size is None else 0.0)
    if not fit_intercept:
        y = y - true_intercept
    coef, intercept = split(np.linalg.lstsq(with_ones(X, fit_intercept), y, rcond=None)[0],
                            fit_intercept, y)
    epochs = 600 if batch_size is None else 240       # 600 / 960 steps
    reg = sgd(optimizer=optimizer, learning_rate=lr, batch_size=batch_size, max_iter=epochs,
              fit_intercept=fit_intercept, random_state=0).fit(X, y)
    np.testing.assert_allclose(reg.coef_, coef, **TIGHT)
    np.testing.assert_allclose(reg.intercept_, intercept, **TIGHT)
    assert reg.n_iter_ == len(reg.loss_curve_) == epochs
    assert reg.coef_.dtype == np.float64


@pytest.mark.parametrize("targets", [None, 2])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sgd_alpha_is_ridge(fit_intercept, targets):
    """mean(r^2) / 2 + alpha / 2 ||coef||^2 is minimised by (A'A + n alpha D) theta = A'y,
    D = identity on the coefficients and 0 on the intercept."""
    X, y, _, _ = data(targets)
    alpha = 0.3
    A = with_ones(X, fit_intercept)
    D = np.diag([1.0] * NF + [0.0] * fit_intercept)
    theta = np.linalg.solve(A.T @ A + N * alpha * D, A.T @ y)
    coef, intercept = split(theta, fit_intercept, y)
    reg = sgd(alpha=alpha, learning_rate=0.2, max_iter=600, fit_intercept=fit_intercept)
    reg.fit(X, y)
    np.testing.assert_allclose(reg.coef_, coef, **TIGHT)
    np.testing.assert_allclose(reg.intercept_, intercept, **TIGHT)
    objective = 0.5 * ((y - reg.predict(X)) ** 2).reshape(N, -1).sum(1).mean() \
        + 0.5 * alpha * (reg.coef_ ** 2).sum()
    assert reg.loss_curve_[-1] == pytest.approx(objective, rel=1e-9)


@pytest.mark.parametrize("loss", ["huber", "l1"])
def test_robust_losses_resist_outliers(loss):
    X, y, coef, intercept = data(noise=0.05, seed=4)
    y[::10] += 20.0                                     # 10% outliers
    truth = np.r_[coef, intercept]

    def error(reg):
        return np.linalg.norm(np.r_[reg.coef_, reg.intercept_] - truth)
    squared = sgd(learning_rate=0.1, max_iter=500).fit(X, y)
    robust = sgd(loss=loss, epsilon=1.0, learning_rate=0.1, max_iter=500).fit(X, y)
    assert error(robust) < error(squared) / 5
    assert error(squared) > 1.0                         # the outliers do pull squared loss


@pytest.mark.parametrize("batch_size", [None, 15, 16])
@pytest.mark.parametrize("loss", ["squared", "l1"])
def test_loss_curve_is_the_epoch_objective(loss, batch_size):
    """With a negligible learning rate the coefficients stay 0, so every epoch's loss is the
    objective at 0 (16 rows a batch: 4 rows of padding, shuffled with the data)."""
    X, y, _, _ = data(2)
    reg = sgd(loss=loss, learning_rate=1e-14, batch_size=batch_size, max_iter=3,
              random_state=0).fit(X, y)
    per_sample = 0.5 * y ** 2 if loss == "squared" else abs(y)
    np.testing.assert_allclose(reg.loss_curve_, [per_sample.sum(1).mean()] * 3, rtol=1e-10)


# ---- SGDRegressor against torch: the same steps ----
def torch_fit(X, y, loss, optimizer, lr, epochs, batch, alpha, epsilon):
    torch = pytest.importorskip("torch")
    Xt = torch.tensor(X)
    Yt = torch.tensor(y.reshape(len(y), -1))
    lin = torch.nn.Linear(X.shape[1], Yt.shape[1], dtype=torch.float64)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(lin.parameters(), lr=lr)
    per_sample = {"squared": lambda p, t: 0.5 * (p - t) ** 2,
                  "huber": lambda p, t: torch.nn.functional.huber_loss(
                      p, t, reduction="none", delta=epsilon),
                  "l1": lambda p, t: (p - t).abs()}[loss]
    curve = []
    for _ in range(epochs):
        total = 0.0
        for s in range(0, len(X), batch or len(X)):
            xb, yb = Xt[s:s + (batch or len(X))], Yt[s:s + (batch or len(X))]
            opt.zero_grad()
            obj = per_sample(lin(xb), yb).sum() / len(xb) + 0.5 * alpha * (lin.weight ** 2).sum()
            obj.backward()
            opt.step()
            total += obj.item() * len(xb)
        curve.append(total / len(X))
    return lin.weight.detach().numpy(), lin.bias.detach().numpy(), curve


@pytest.mark.parametrize("loss", ["squared", "huber", "l1"])
@pytest.mark.parametrize("optimizer,lr", OPTIMIZERS)
@pytest.mark.parametrize("batch_size,alpha", [(None, 0.1), (16, 0.0)])
def test_sgd_same_steps_as_torch(loss, optimizer, lr, batch_size, alpha):
    """Without shuffling, the batches (the last one of 60 rows holds 12) are torch's slices."""
    X, y, _, _ = data(2, noise=1.0)
    W, b, curve = torch_fit(X, y, loss, optimizer, lr, 40, batch_size, alpha, 0.5)
    reg = sgd(loss=loss, epsilon=0.5, optimizer=optimizer, learning_rate=lr, max_iter=40,
              batch_size=batch_size, alpha=alpha, shuffle=False).fit(X, y)
    np.testing.assert_allclose(reg.coef_, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(reg.intercept_, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(reg.loss_curve_, curve, rtol=1e-10)


# ---- early stopping ----
def stopping_epoch(curve, tol, patience):
    """scikit-learn's rule: the first epoch after which the loss has failed to improve on the
    best loss by tol for `patience` consecutive epochs (None if it never happens)."""
    best, count = np.inf, 0
    for epoch, value in enumerate(curve, 1):
        count = count + 1 if value > best - tol else 0
        best = min(best, value)
        if count >= patience:
            return epoch
    return None


@pytest.mark.parametrize("batch_size", [None, 16])
def test_early_stopping(batch_size, monkeypatch):
    rewinds = []
    Trainer = tapegrad.linear_model.sgd._Trainer
    restore = Trainer.restore
    monkeypatch.setattr(Trainer, "restore", lambda self, s: rewinds.append(1) or
                        restore(self, s))
    X, y, _, _ = data()
    kw = dict(learning_rate=0.01, batch_size=batch_size, shuffle=False)
    reg = lm.SGDRegressor(tol=1e-4, n_iter_no_change=3, max_iter=1000, **kw).fit(X, y)
    assert 3 < reg.n_iter_ < 1000
    assert len(reg.loss_curve_) == reg.n_iter_
    assert stopping_epoch(reg.loss_curve_, 1e-4, 3) == reg.n_iter_
    # where it stopped: exactly the state after n_iter_ epochs, though the compiled chunks
    # ran past it (and were rewound)
    plain = sgd(max_iter=reg.n_iter_, **kw).fit(X, y)
    np.testing.assert_array_equal(reg.coef_, plain.coef_)
    np.testing.assert_array_equal(reg.loss_curve_, plain.loss_curve_)
    assert rewinds


def test_max_iter_without_convergence_warns():
    X, y, _, _ = data()
    with pytest.warns(lm.ConvergenceWarning, match="max_iter"):
        reg = lm.SGDRegressor(learning_rate=1e-4, max_iter=5).fit(X, y)
    assert reg.n_iter_ == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sgd(learning_rate=1e-4, max_iter=5).fit(X, y)          # tol=None: no warning


# ---- compiled, reproducible, warm start ----
LONG = dict(batch_size=16, max_iter=300, learning_rate=0.2, shuffle=False)   # 1200 steps


def test_training_is_a_compiled_replay():
    X, y, _, _ = data(2)
    step = sgd(**LONG).fit(X, y)._trainer.step
    text = step.explain()
    assert "recorded path 1" in text and "eager" not in text, text
    assert step.tape.replays >= 4 * 300 - 3           # every step but the recordings


def test_long_run_same_as_torch():
    """Past 1000 replayed steps a path runs as code of its own (tapegrad.compile's second
    tier): still the same steps as torch's."""
    X, y, _, _ = data(2)
    reg = sgd(**LONG).fit(X, y)
    W, b, curve = torch_fit(X, y, "squared", "sgd", 0.2, 300, 16, 0.0, None)
    np.testing.assert_allclose(reg.coef_, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(reg.loss_curve_, curve, rtol=1e-10)


def test_random_state_reproducible():
    X, y, _, _ = data(2)
    kw = dict(batch_size=8, max_iter=30, learning_rate=0.05)
    a = sgd(random_state=3, **kw).fit(X, y)
    b = sgd(random_state=3, **kw).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    coef = a.coef_.copy()
    np.testing.assert_array_equal(a.fit(X, y).coef_, coef)      # a refit replays from zero
    c = sgd(random_state=4, **kw).fit(X, y)
    assert not np.array_equal(a.loss_curve_, c.loss_curve_)


@pytest.mark.parametrize("optimizer,lr", OPTIMIZERS)
def test_warm_start_continues(optimizer, lr):
    X, y, _, _ = data()
    kw = dict(optimizer=optimizer, learning_rate=lr, max_iter=20)
    once = sgd(**dict(kw, max_iter=40)).fit(X, y)
    twice = sgd(warm_start=True, **kw).fit(X, y).fit(X, y)
    np.testing.assert_allclose(twice.coef_, once.coef_, rtol=1e-12)
    np.testing.assert_allclose(twice.loss_curve_, once.loss_curve_[20:], rtol=1e-12)
    copy = pickle.loads(pickle.dumps(twice))            # the trainer is not pickled
    np.testing.assert_array_equal(copy.predict(X), twice.predict(X))
    with pytest.raises(ValueError, match="warm_start"):
        twice.fit(X[:, :2], y)


def test_float32_and_tensor_inputs():
    X, y, _, _ = data()
    ref = lm.LinearRegression().fit(X, y)
    reg = sgd(dtype=tapegrad.float32, learning_rate=0.2, max_iter=300)
    reg.fit(tapegrad.tensor(X), tapegrad.tensor(y))
    assert reg.coef_.dtype == np.float32 and reg.coef_.shape == (NF,)
    np.testing.assert_allclose(reg.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(reg.predict(tapegrad.tensor(X)), ref.predict(X), atol=1e-5)
    assert lm.LinearRegression().fit(tapegrad.tensor(X), y).score(X, y) == \
        pytest.approx(ref.score(X, y), abs=1e-6)


def test_like_sklearn_predictions():
    sk = pytest.importorskip("sklearn.linear_model")
    X, y, _, _ = data()
    reg = sgd(learning_rate=0.2, max_iter=600).fit(X, y)
    np.testing.assert_allclose(reg.predict(X), sk.LinearRegression().fit(X, y).predict(X),
                               **TIGHT)


# ---- parameters and validation ----
def test_get_set_params_and_repr():
    reg = lm.SGDRegressor(alpha=0.1, loss="huber")
    params = reg.get_params()
    assert params["alpha"] == 0.1 and params["loss"] == "huber" and params["tol"] == 1e-3
    assert type(reg)(**params).get_params() == params
    assert reg.set_params(alpha=0.2, max_iter=5) is reg and reg.alpha == 0.2
    assert repr(reg) == "SGDRegressor(alpha=0.2, loss='huber', max_iter=5)"
    assert lm.LinearRegression().get_params() == {"fit_intercept": True}
    with pytest.raises(ValueError, match="Invalid parameter 'lr'"):
        reg.set_params(lr=0.1)


@pytest.mark.parametrize("X,y,match", [
    (np.ones(5), np.ones(5), "Expected 2D array"),
    (np.ones((5, 2)), np.ones(4), "inconsistent numbers of samples: \\[5, 4\\]"),
    (np.ones((0, 2)), np.ones(0), "0 sample"),
    (np.ones((3, 0)), np.ones(3), "0 feature"),
    ([[1.0, np.nan], [2.0, 3.0]], [1.0, 2.0], "X contains NaN"),
    ([[1.0, np.inf], [2.0, 3.0]], [1.0, 2.0], "X contains infinity"),
    (np.ones((2, 2)), [1.0, np.nan], "y contains NaN"),
    (np.ones((2, 2)), np.ones((2, 1, 1)), "y should be a 1d array or a 2d array"),
    ([["a", "b"], ["c", "d"]], [1.0, 2.0], "X must be numeric"),
])
@pytest.mark.parametrize("cls", [lm.LinearRegression, lm.SGDRegressor])
def test_fit_rejects_bad_data(cls, X, y, match):
    with pytest.raises(ValueError, match=match):
        cls().fit(X, y)


@pytest.mark.parametrize("params,match", [
    (dict(batch_size=0), "batch_size must be an int >= 1"),
    (dict(batch_size=-3), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(loss="hinge"), "loss must be one of"),
    (dict(optimizer="lbfgs"), "optimizer must be one of"),
    (dict(learning_rate=0.0), "learning_rate must be a finite number > 0"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(alpha=-1.0), "alpha must be a finite number >= 0"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(max_iter=0), "max_iter must be an int >= 1"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(tol="small"), "tol"),
    (dict(dtype="int64"), "dtype must be float32 or float64"),
])
def test_fit_rejects_bad_params(params, match):
    X, y, _, _ = data()
    with pytest.raises(ValueError, match=match):
        lm.SGDRegressor(**params).fit(X, y)


def test_divergence_is_an_error():
    X, y, _, _ = data()
    with pytest.raises(ValueError, match="loss is (inf|nan)"):
        sgd(learning_rate=1e3, max_iter=200).fit(X * 100, y)


@pytest.mark.parametrize("cls", [lm.LinearRegression, lm.SGDRegressor])
def test_predict_checks(cls):
    X, y, _, _ = data()
    with pytest.raises(lm.NotFittedError, match="not fitted yet"):
        cls().predict(X)
    reg = cls().fit(X, y) if cls is lm.LinearRegression else sgd(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 3"):
        reg.predict(X[:, :2])
    with pytest.raises(ValueError, match="inconsistent"):
        reg.score(X, y[:-1])
    with pytest.raises(ValueError, match="different number of output \\(2!=1\\)"):
        reg.score(X, np.c_[y, y])
    with pytest.warns(UserWarning, match="less than two samples"):
        assert np.isnan(reg.score(X[:1], y[:1]))


def test_warns_when_the_step_cannot_compile():
    X, y, _, _ = data()
    expected = sgd(max_iter=3).fit(X, y).coef_
    a = tapegrad.ones(2, requires_grad=True)
    graph = a * 2                       # a graph alive outside: tapegrad.compile cannot record
    with pytest.warns(RuntimeWarning, match="runs eagerly"):
        reg = sgd(max_iter=3).fit(X, y)
    np.testing.assert_allclose(reg.coef_, expected, rtol=1e-12)
    del graph
