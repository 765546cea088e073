"""LinearRegression: ordinary least squares in closed form."""
import numpy as np

from .base import _check_sample_weight, _check_X_y, _Estimator


class LinearRegression(_Estimator):
    """Ordinary least squares, min ||y - X coef^T - intercept||^2, by numpy.linalg.lstsq (the
    minimum-norm solution when X is rank-deficient), as sklearn.linear_model.LinearRegression.

        reg = LinearRegression().fit(X, y); reg.coef_, reg.intercept_, reg.score(X, y)
    """

    def __init__(self, fit_intercept=True):
        self.fit_intercept = fit_intercept

    def fit(self, X, y, sample_weight=None):
        """Fit to X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets)."""
        X, y = _check_X_y(X, y, type(self).__name__)
        w = _check_sample_weight(sample_weight, len(X))
        Y = y.reshape(len(y), -1)
        if self.fit_intercept:      # center, so the intercept is not part of the norm
            x_mean = np.average(X, axis=0, weights=w)
            y_mean = np.average(Y, axis=0, weights=w)
            X, Y = X - x_mean, Y - y_mean
        if w is not None:
            s = np.sqrt(w)[:, None]
            X, Y = X * s, Y * s
        coef, _, self.rank_, self.singular_ = np.linalg.lstsq(X, Y, rcond=None)
        coef = coef.T                                   # (n_targets, n_features)
        if self.fit_intercept:
            intercept = y_mean - x_mean @ coef.T
            self.intercept_ = float(intercept[0]) if y.ndim == 1 else intercept
        else:
            self.intercept_ = 0.0
        self.coef_ = coef[0] if y.ndim == 1 else coef
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        """X @ coef_.T + intercept_."""
        X = self._check_predict_X(X)
        return X @ self.coef_.T + self.intercept_
