"""tapegrad.nn.functional: stateless layers and losses."""
from ..tensor import Tensor


def _reduce(x, reduction):
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check(input, target, name):
    if input.shape != target.shape:
        import warnings
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input "
                      f"size ({input.shape}). This will likely lead to incorrect results due to "
                      f"broadcasting. Please ensure they have the same size. ({name})",
                      stacklevel=3)


def linear(input, weight, bias=None):
    out = input.matmul(weight.t())
    return out if bias is None else out + bias


def relu(input, inplace=False):
    return input.relu_() if inplace else input.relu()


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def mse_loss(input, target, reduction="mean"):
    _check(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):
    _check(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    _check(input, target, "smooth_l1_loss")
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    quad = d.clamp(max=beta)                # 0.5 q^2 / beta + (d - q): smooth at |d| = beta
    return _reduce(0.5 * quad * quad / beta + (d - quad), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    _check(input, target, "huber_loss")
    d = (input - target).abs()
    quad = d.clamp(max=delta)
    return _reduce(0.5 * quad * quad + delta * (d - quad), reduction)


__all__ = ["linear", "relu", "sigmoid", "tanh", "mse_loss", "l1_loss", "smooth_l1_loss",
           "huber_loss", "Tensor"]
