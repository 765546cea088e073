"""tapegrad.nn.functional: stateless layers, activations and losses (PyTorch's signatures).

Every function is composed of differentiable tensor ops, so it records onto the tape and
replays under tapegrad.compile like any other op.
"""
import warnings

from ..dtypes import is_grad_enabled


# ---- reductions of losses ----
def _reduction_from_legacy(size_average, reduce):
    """The reduction that the deprecated size_average / reduce arguments ask for."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else ("sum" if reduce else "none")
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{ret}' instead.", stacklevel=3)
    return ret


def _check_reduction(reduction):
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' "
                      "instead.", stacklevel=3)
        return "mean"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(x, reduction):
    if reduction == "mean":
        return x.mean()
    return x.sum() if reduction == "sum" else x


def _weighted(x, weight, reduction, weighted_mean=True):
    """Reduce x * weight; 'mean' is sum(x w) / sum(w) (mse, l1) or mean(x w) (huber)."""
    x = x * weight
    if reduction == "none":
        return x
    if reduction == "sum":
        return x.sum()
    if reduction == "mean":
        return x.sum() / weight.sum() if weighted_mean else x.mean()
    raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', "
                     "'sum'.")


def _check_sizes(input, target, name):
    """PyTorch's warning when shapes differ, and its error when they do not broadcast."""
    if target.size() != input.size():
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input "
                      f"size ({input.size()}). This will likely lead to incorrect results due "
                      "to broadcasting. Please ensure they have the same size.", stacklevel=3)
        a, b = tuple(input.shape), tuple(target.shape)
        n = max(len(a), len(b))
        pa, pb = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
        for i in range(n):
            if pa[i] != pb[i] and 1 not in (pa[i], pb[i]):
                raise RuntimeError(f"The size of tensor a ({pa[i]}) must match the size of "
                                   f"tensor b ({pb[i]}) at non-singleton dimension {i} (in "
                                   f"{name} with shapes {list(a)} and {list(b)})")


def _check_weight(weight, input):
    if weight.size() != input.size():
        raise ValueError("Weights and input must have the same size.")


# ---- linear ----
def linear(input, weight, bias=None):
    """y = input @ weight.T + bias, weight of shape (out_features, in_features)."""
    if weight.dim() == 2 and input.dim() >= 1 and input.shape[-1] != weight.shape[1]:
        rows = input.numel() // input.shape[-1] if input.shape[-1] else 0
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x"
                           f"{input.shape[-1]} and {weight.shape[1]}x{weight.shape[0]})")
    out = input.matmul(weight.t() if weight.dim() == 2 else weight)
    return out if bias is None else out + bias


# ---- activations ----
def _inplace(input, fn):
    """Write fn(input) into input (inplace=True): computed from a copy when autograd needs
    input's old value."""
    src = input.clone() if input.requires_grad and is_grad_enabled() else input
    return input.copy_(fn(src))


def relu(input, inplace=False):
    """max(input, 0)."""
    return input.relu_() if inplace else input.relu()


def relu_(input):
    return input.relu_()


def _leaky_relu(x, negative_slope):
    # relu(x) + slope * min(x, 0): exact values on both sides, gradient slope at 0 as torch
    return x.relu() + negative_slope * x.clamp(max=0.0)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """input where input > 0, negative_slope * input elsewhere."""
    if inplace:
        return _inplace(input, lambda x: _leaky_relu(x, negative_slope))
    return _leaky_relu(input, negative_slope)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, True)


def _elu(x, alpha):
    # relu(x) + alpha (exp(min(x, 0)) - 1): the gradient at 0 is alpha, as torch
    return x.relu() + alpha * (x.clamp(max=0.0).exp() - 1.0)


def elu(input, alpha=1.0, inplace=False):
    """input where input > 0, alpha * (exp(input) - 1) elsewhere."""
    if inplace:
        return _inplace(input, lambda x: _elu(x, alpha))
    return _elu(input, alpha)


def elu_(input, alpha=1.0):
    return elu(input, alpha, True)


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


# ---- losses ----
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean (or sum, or none) of (input - target)^2."""
    _check_sizes(input, target, "mse_loss")
    if size_average is not None or reduce is not None:
        reduction = _reduction_from_legacy(size_average, reduce)
    d = input - target
    if weight is not None:
        _check_weight(weight, input)
        return _weighted(d * d, weight, reduction)
    return _reduce(d * d, _check_reduction(reduction))


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean (or sum, or none) of |input - target|."""
    _check_sizes(input, target, "l1_loss")
    if size_average is not None or reduce is not None:
        reduction = _reduction_from_legacy(size_average, reduce)
    d = (input - target).abs()
    if weight is not None:
        _check_weight(weight, input)
        return _weighted(d, weight, reduction)
    return _reduce(d, _check_reduction(reduction))


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where d = |input - target| < beta, d - 0.5 beta elsewhere (l1 for
    beta = 0)."""
    _check_sizes(input, target, "smooth_l1_loss")
    if size_average is not None or reduce is not None:
        reduction = _reduction_from_legacy(size_average, reduce)
    reduction = _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = (input - target).abs()
    if beta == 0.0:
        return _reduce(d, reduction)
    q = d.clamp(max=beta)
    # 0.5 q^2 / beta + (d - q): quadratic inside, linear outside, gradient continuous at beta
    return _reduce(0.5 * q * q / beta + (d - q), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where d = |input - target| < delta, delta (d - 0.5 delta) elsewhere."""
    _check_sizes(input, target, "huber_loss")
    if weight is None:
        reduction = _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = (input - target).abs()
    q = d.clamp(max=delta)
    loss = 0.5 * q * q + delta * (d - q)
    if weight is not None:
        _check_weight(weight, input)
        return _weighted(loss, weight, reduction, weighted_mean=False)
    return _reduce(loss, reduction)


__all__ = ["linear", "relu", "relu_", "leaky_relu", "leaky_relu_", "elu", "elu_", "sigmoid",
           "tanh", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"]
