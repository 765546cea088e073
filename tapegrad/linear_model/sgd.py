"""SGDRegressor: a linear model trained by a tapegrad.compile'd step, many steps per call."""
import math
import warnings

import numpy as np

from .. import dtypes as D
from .. import optim
from ..compile import compile as _compile
from ..dtypes import no_grad
from ..factory import zeros
from ..nn import functional as F
from ..tensor import Tensor, tensor
from .base import ConvergenceWarning, _check_X_y, _Estimator, _number


def _resolve_dtype(dtype):
    """tapegrad.float32/float64, or a NumPy dtype or name of one, as a tapegrad dtype."""
    if isinstance(dtype, D.dtype):
        dt = dtype
    else:
        try:
            dt = D.from_np(np.dtype(dtype))
        except TypeError:
            dt = None
    if dt not in D.FLOATS:
        raise ValueError(f"SGDRegressor: dtype must be float32 or float64, got {dtype!r}")
    return dt


def _sample_loss(name, pred, Y, epsilon, reduction):
    """The loss of each sample and target (reduction 'none'), or its sum ('sum')."""
    if name == "squared":
        return 0.5 * F.mse_loss(pred, Y, reduction=reduction)
    if name == "huber":
        return F.huber_loss(pred, Y, reduction=reduction, delta=epsilon)
    return F.l1_loss(pred, Y, reduction=reduction)


class _Trainer:
    """The parameters, optimizer and compiled training step of one SGDRegressor configuration
    (kept between fits with the same key, so a refit replays the recorded step)."""

    def __init__(self, key, est, n_features, n_targets, dt):
        self.key = key
        # weight is coef_.T: X @ weight needs no transpose in the step
        W = self.weight = zeros(n_features, n_targets, dtype=dt, requires_grad=True)
        b = self.bias = zeros(n_targets, dtype=dt, requires_grad=True) \
            if est.fit_intercept else None
        self.params = [W] if b is None else [W, b]
        opt_cls = optim.Adam if est.optimizer == "adam" else optim.SGD
        opt = self.opt = opt_cls(self.params, lr=float(est.learning_rate))
        name, epsilon, alpha = est.loss, float(est.epsilon), float(est.alpha)

        def step(X, Y, *mask):
            opt.zero_grad()
            pred = X @ W if b is None else X @ W + b
            if mask:            # weight 0 for the rows that pad an epoch to whole batches
                data = (_sample_loss(name, pred, Y, epsilon, "none") * mask[0]).sum()
                count = mask[0].sum()
            else:
                data, count = _sample_loss(name, pred, Y, epsilon, "sum"), X.shape[0]
            loss = data / count
            if alpha:
                loss = loss + 0.5 * alpha * (W * W).sum()
            loss.backward()
            opt.step()
            return loss.detach() * count if mask else loss      # see _epochs
        self.step = _compile(step)

    def tensors(self):
        """Every tensor the training updates: parameters and optimizer state."""
        out = list(self.params)
        for st in self.opt.state.values():
            out.extend(v for v in st.values() if isinstance(v, Tensor))
        return out

    def snapshot(self):
        return {id(t): t.detach().numpy().copy() for t in self.tensors()}

    @no_grad()
    def restore(self, snap):
        """Values of a snapshot() back in place (state created since then starts at zero,
        which is what a fresh optimizer starts from)."""
        for t in self.tensors():
            if id(t) in snap:
                t.copy_(tensor(snap[id(t)], dtype=t.dtype))
            else:
                t.zero_()

    @no_grad()
    def reset(self, coef=None, intercept=None):
        """Parameters to coef (n_targets, n_features) and intercept (zeros if None), optimizer
        state to its start."""
        for t in self.tensors():
            t.zero_()
        if coef is not None:
            self.weight.copy_(tensor(np.asarray(coef).T, dtype=self.weight.dtype))
        if intercept is not None and self.bias is not None:
            self.bias.copy_(tensor(intercept, dtype=self.bias.dtype))


class _StoppingRule:
    """scikit-learn's early stopping: stop when the epoch loss has not improved on the best
    loss by tol for `patience` consecutive epochs (never with tol None)."""

    def __init__(self, tol, patience):
        self.tol, self.patience = tol, patience
        self.best, self.count = math.inf, 0

    def quiet(self):
        """How many more epochs surely run before the rule can fire."""
        return math.inf if self.tol is None else self.patience - self.count

    def update(self, losses):
        """Take the next epochs' losses; the number taken when the rule fires, else None."""
        if self.tol is None:
            return None
        for epoch, value in enumerate(losses, 1):
            self.count = self.count + 1 if value > self.best - self.tol else 0
            self.best = min(self.best, value)
            if self.count >= self.patience:
                return epoch
        return None


def _layout(X, Y, batch, dt):
    """The arguments of the training step: X, Y, and when n is not a multiple of batch, zero
    rows up to a multiple of it and a mask (1 for data, 0 for padding), so that every batch
    of an epoch has the same shape and run() does all steps in one compiled loop."""
    pad = 0 if batch is None else -len(X) % batch
    if not pad:
        return tensor(X, dtype=dt), tensor(Y, dtype=dt)
    mask = np.r_[np.ones(len(X)), np.zeros(pad)][:, None]
    X, Y = (np.concatenate([a, np.zeros((pad, a.shape[1]))]) for a in (X, Y))
    return tensor(X, dtype=dt), tensor(Y, dtype=dt), tensor(mask, dtype=dt)


class SGDRegressor(_Estimator):
    """A linear model y = X coef^T + intercept fitted by minibatch gradient descent on

        mean over samples of loss(x_i coef^T + intercept - y_i)  +  alpha / 2 * ||coef||^2

    (scikit-learn's scaling: the minimiser of the squared loss is the ridge solution
    (X'X + n alpha I)^-1 X'y; the intercept is not penalized). loss: 'squared' (r^2 / 2),
    'huber' (r^2 / 2 for |r| <= epsilon, else epsilon (|r| - epsilon / 2)) or 'l1' (|r|),
    summed over targets for 2-D y. optimizer: 'sgd' or 'adam' (tapegrad.optim) with a
    constant learning_rate. Weights start at zero.

    One epoch is one pass over the data in batches of batch_size rows (None or >= n_samples:
    the whole data, one step per epoch), reshuffled every epoch when shuffle (seeded by
    random_state); a step minimises the objective over its batch. When batch_size does not
    divide n_samples, the data is padded with rows of weight 0 to a multiple of it (so that
    every step has one shape): without shuffle the last batch holds the rest, with shuffle
    the padding is shuffled with the data and a few batches hold fewer samples.
    loss_curve_ holds one value per epoch: the objective above averaged over the epoch's
    batches (weighted by their size), each measured before its update. With tol not None,
    training stops when the epoch loss has not improved on the best one by tol for
    n_iter_no_change consecutive epochs (scikit-learn's rule); n_iter_ is the number of epochs
    run. dtype is the training precision: float64 by default, as scikit-learn (float32 is not
    faster here). warm_start continues from the last fit's coef_ and intercept_ (and its
    optimizer state, when the data shapes and the other parameters are the same).
    """

    def __init__(self, loss="squared", *, epsilon=0.1, optimizer="sgd", learning_rate=0.01,
                 max_iter=1000, batch_size=None, alpha=0.0, fit_intercept=True,
                 shuffle=True, random_state=None, tol=1e-3, n_iter_no_change=5,
                 warm_start=False, dtype=D.float64):
        self.loss = loss
        self.epsilon = epsilon
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.dtype = dtype

    def __getstate__(self):           # pickled without the trainer (tape state)
        return {k: v for k, v in self.__dict__.items() if k != "_trainer"}

    def _validate_params(self):
        name = type(self).__name__
        for param, allowed in (("loss", ("squared", "huber", "l1")),
                               ("optimizer", ("sgd", "adam"))):
            if getattr(self, param) not in allowed:
                raise ValueError(f"{name}: {param} must be one of {allowed}, got "
                                 f"{getattr(self, param)!r}")
        _number(self, "learning_rate", 0, low_open=True)
        _number(self, "epsilon", 0, low_open=True)
        _number(self, "alpha", 0)
        _number(self, "max_iter", 1, integer=True)
        _number(self, "batch_size", 1, integer=True, none_ok=True)
        _number(self, "n_iter_no_change", 1, integer=True)
        _number(self, "tol", none_ok=True)
        return _resolve_dtype(self.dtype)

    def fit(self, X, y):
        """Fit to X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets);
        returns self."""
        dt = self._validate_params()
        X, y = _check_X_y(X, y, type(self).__name__)
        Y = y.reshape(len(y), -1)
        n, k = len(X), Y.shape[1]
        batch = None if self.batch_size is None or self.batch_size >= n else self.batch_size
        key = (X.shape, Y.shape, dt.name, self.loss, float(self.epsilon), self.optimizer,
               float(self.learning_rate), float(self.alpha), bool(self.fit_intercept), batch)
        trainer = getattr(self, "_trainer", None)
        warm = self.warm_start and hasattr(self, "coef_")
        if warm and np.shape(self.coef_) != ((X.shape[1],) if y.ndim == 1 else (k, X.shape[1])):
            raise ValueError(f"{type(self).__name__}: warm_start from coef_ of shape "
                             f"{np.shape(self.coef_)}, but X, y have {X.shape[1]} features and "
                             f"y has shape {y.shape}")
        if trainer is None or trainer.key != key:
            trainer = _Trainer(key, self, X.shape[1], k, dt)
            trainer.reset(*((self.coef_.reshape(k, -1), self.intercept_) if warm else ()))
        elif not warm:
            trainer.reset()
        self._trainer = trainer
        self.loss_curve_ = []
        self._train(trainer, _layout(X, Y, batch, dt), batch, n)
        self.n_iter_ = len(self.loss_curve_)
        coef = trainer.weight.detach().numpy().T.copy()
        bias = trainer.bias
        self.coef_ = coef[0] if y.ndim == 1 else coef
        self.intercept_ = bias.detach().numpy() if bias is not None else np.zeros(k, coef.dtype)
        self.n_features_in_ = X.shape[1]
        return self

    def _train(self, trainer, data, batch, n):
        """Run epochs in chunks, one compiled run() each, applying the stopping rule between
        chunks. The first chunk is one epoch (after it the step is checked to be compiled).
        A chunk may run past the epoch where the rule fires: it is then rewound and re-run
        that far with the same seed (the same batches)."""
        rng = np.random.default_rng(self.random_state)
        rule = _StoppingRule(self.tol, self.n_iter_no_change)
        curve = self.loss_curve_
        while len(curve) < self.max_iter:
            m = min(max(rule.quiet(), len(curve)) if curve else 1, self.max_iter - len(curve))
            seed = int(rng.integers(2 ** 63))
            snap = trainer.snapshot() if m > rule.quiet() else None
            losses = self._epochs(trainer, data, batch, n, m, seed)
            if not curve:
                self._check_compiled(trainer)
            bad = np.flatnonzero(~np.isfinite(losses))
            stop = rule.update(losses[:bad[0]] if len(bad) else losses)
            if stop is None and len(bad):
                raise ValueError(f"{type(self).__name__}: the loss is {losses[bad[0]]} at epoch "
                                 f"{len(curve) + bad[0] + 1}; lower learning_rate, or scale "
                                 f"the data")
            if stop is not None and stop < m:
                trainer.restore(snap)
                self._epochs(trainer, data, batch, n, stop, seed)
            curve.extend(float(v) for v in losses[:stop or m])
            if stop is not None:
                return
        if self.tol is not None:
            warnings.warn(f"Maximum number of iteration reached before convergence "
                          f"({self.max_iter} epochs). Consider increasing max_iter to improve "
                          f"the fit.", ConvergenceWarning, stacklevel=3)

    def _check_compiled(self, trainer):
        """Warn when the step could not be recorded and runs eagerly (much slower)."""
        last = trainer.step.explain().splitlines()[-1]
        if "eager" in last:
            warnings.warn(f"{type(self).__name__}: the training step runs eagerly, not "
                          f"compiled: {last}", RuntimeWarning, stacklevel=4)

    def _epochs(self, trainer, data, batch, n, m, seed):
        """Run m epochs in one compiled call; their losses. The steps return their batch's
        loss, or with padding (a mask in data) that loss times the batch's sample count."""
        steps = 1 if batch is None else len(data[0]) // batch
        hist = trainer.step.run(m * steps, *data, batch_size=batch, shuffle=bool(self.shuffle),
                                seed=seed).reshape(m, steps)
        return hist.sum(axis=1) / n if len(data) == 3 else hist.mean(axis=1)

    def predict(self, X):
        """X @ coef_.T + intercept_."""
        X = self._check_predict_X(X)
        return X @ self.coef_.T + self.intercept_
