"""tapegrad.linear_model: scikit-learn-style linear regression.

``LinearRegression`` solves least squares in closed form (NumPy). ``SGDRegressor`` trains the same
model with tapegrad: one training step (forward, loss, backward, optimizer step) is recorded by
``tapegrad.compile`` and run for many steps per call by ``Compiled.run``.

    reg = SGDRegressor(optimizer="adam", learning_rate=0.05, batch_size=32).fit(X, y)
    reg.predict(X_new); reg.score(X, y); reg.coef_, reg.intercept_, reg.loss_curve_
"""
from .base import ConvergenceWarning, NotFittedError
from .least_squares import LinearRegression
from .sgd import SGDRegressor

__all__ = ["ConvergenceWarning", "LinearRegression", "NotFittedError", "SGDRegressor"]
