"""scikit-learn's conventions: get_params/set_params, input validation, R^2 score."""
import inspect
import math
import numbers
import warnings

import numpy as np

from ..tensor import Tensor


class NotFittedError(ValueError, AttributeError):
    """predict/score called before fit (scikit-learn's exception of that name)."""


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at max_iter before its tolerance was met."""


class _Estimator:
    """get_params/set_params and a repr over the keyword arguments of __init__."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep=True):
        """The estimator's parameters as a dict (name -> value)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set parameters by name; returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}. Valid "
                                 f"parameters are: {valid!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same(v, sig[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def score(self, X, y, sample_weight=None):
        """R^2 of predict(X) against y (averaged uniformly over targets), as scikit-learn."""
        y_pred = self.predict(X)
        y = _as_float_array(y, "y")
        if len(y) != len(y_pred):
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"{[len(y_pred), len(y)]}")
        return _r2_score(y, y_pred, _check_sample_weight(sample_weight, len(y)))

    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 f"'fit' with appropriate arguments before using this "
                                 f"estimator.")

    def _check_predict_X(self, X):
        self._check_fitted()
        X = _check_X(X, type(self).__name__)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return X


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b


def _as_float_array(a, name):
    """a (array-like or tapegrad tensor) as a float64 NumPy array of finite values."""
    if isinstance(a, Tensor):
        a = a.detach().numpy()
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric: {e}") from None
    if np.isnan(a).any():
        raise ValueError(f"Input {name} contains NaN.")
    if not np.isfinite(a).all():
        raise ValueError(f"Input {name} contains infinity or a value too large for "
                         f"dtype('float64').")
    return a


def _check_X(X, who):
    X = _as_float_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead (shape {X.shape}). "
                         f"Reshape your data either using array.reshape(-1, 1) if your data "
                         f"has a single feature or array.reshape(1, -1) if it contains a "
                         f"single sample.")
    for axis, what in ((0, "sample"), (1, "feature")):
        if X.shape[axis] == 0:
            raise ValueError(f"Found array with 0 {what}(s) (shape={X.shape}) while a minimum "
                             f"of 1 is required by {who}.")
    return X


def _check_X_y(X, y, who):
    X = _check_X(X, who)
    y = _as_float_array(y, "y")
    if y.ndim not in (1, 2) or y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(f"y should be a 1d array or a 2d array of shape (n_samples, "
                         f"n_targets), got an array of shape {y.shape} instead.")
    if len(X) != len(y):
        raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                         f"{[len(X), len(y)]}")
    return X, y


def _check_sample_weight(sample_weight, n):
    if sample_weight is None:
        return None
    w = _as_float_array(sample_weight, "sample_weight")
    if w.ndim == 0:
        return np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}!")
    if (w < 0).any():
        raise ValueError("Negative values in data passed to sample_weight")
    return w


def _r2_score(y_true, y_pred, sample_weight=None):
    """1 - SS_res / SS_tot per target (1 for a perfect fit, 0 when y is constant and the fit
    is not), averaged over targets."""
    n = len(y_true)
    if n < 2:
        warnings.warn("R^2 score is not well-defined with less than two samples.", stacklevel=3)
        return float("nan")
    y_true, y_pred = y_true.reshape(n, -1), np.asarray(y_pred).reshape(n, -1)
    if y_true.shape[1] != y_pred.shape[1]:
        raise ValueError(f"y_true and y_pred have different number of output "
                         f"({y_true.shape[1]}!={y_pred.shape[1]})")
    w = np.ones((n, 1)) if sample_weight is None else sample_weight[:, None]
    num = (w * (y_true - y_pred) ** 2).sum(axis=0)
    den = (w * (y_true - np.average(y_true, axis=0, weights=w[:, 0])) ** 2).sum(axis=0)
    scores = np.ones(y_true.shape[1])
    ok = (num != 0) & (den != 0)
    scores[ok] = 1 - num[ok] / den[ok]
    scores[(num != 0) & (den == 0)] = 0.0
    return float(scores.mean())


def _number(est, name, low=None, integer=False, low_open=False, none_ok=False):
    """Check that a numeric parameter of est is >= low (> low if low_open)."""
    v = getattr(est, name)
    if v is None and none_ok:
        return
    kind = numbers.Integral if integer else numbers.Real
    if not isinstance(v, kind) or isinstance(v, bool) or not math.isfinite(v) \
            or (low is not None and (v <= low if low_open else v < low)):
        bound = f" {'>' if low_open else '>='} {low}" if low is not None else ""
        what = "an int" if integer else "a finite number"
        raise ValueError(f"{type(est).__name__}: {name} must be {what}{bound}"
                         f"{' or None' if none_ok else ''}, got {v!r}")
