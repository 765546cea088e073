"""tapegrad.nn.functional: stateless layers, activations and losses (PyTorch's signatures).

Every function is composed of differentiable tensor ops, so it records onto the tape and
replays under tapegrad.compile like any other op.
"""
import math
import warnings

import numpy as np

from .. import dtypes as D
from ..dtypes import is_grad_enabled, no_grad
from ..tape import TAPE


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


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x where beta x > threshold (one op: its gradient,
    sigmoid(beta x), is exact everywhere, and it never overflows)."""
    from ..tensor import _unary
    from ..ops import OP_SOFTPLUS
    return _unary(OP_SOFTPLUS, input, "SoftplusBackward0", (float(beta), float(threshold)))


def silu(input, inplace=False):
    """x * sigmoid(x)."""
    if inplace:
        return _inplace(input, lambda x: x * x.sigmoid())
    return input * input.sigmoid()


def gelu(input, approximate="none"):
    """x * Phi(x), Phi the standard normal CDF: 0.5 x (1 + erf(x / sqrt 2)); approximate="tanh":
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    if approximate == "none":
        return 0.5 * input * (1.0 + (input * (1.0 / math.sqrt(2.0))).erf())
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (input + 0.044715 * input * input * input)
        return 0.5 * input * (1.0 + inner.tanh())
    raise RuntimeError("approximate argument must be either none or tanh.")


def _softmax_dim(ndim, name):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  f"to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _shifted(input, dim, finite=False):
    """input less its max along dim (kept), the max detached (the results are the same for any
    shift, so its gradient is not needed) and at least the dtype's lowest finite value, so that
    all -inf gives what torch gives, not NaN; `finite`: at most its largest too (logsumexp of
    +inf is inf, as torch; softmax of +inf is NaN, as torch)."""
    x = input if input.dtype.is_floating_point else input.float()
    if x.dim() == 0:
        m = x.detach()
    else:
        m = x.detach()
        for d in (dim if isinstance(dim, (tuple, list)) else (dim,)):
            m = m.amax(dim=d, keepdim=True)
    fin = _finfo(x)
    m = m.clamp(-fin, fin if finite else None)
    return x - m, m


def _finfo(x):
    import numpy as np
    return float(np.finfo(x.dtype.np).max)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along dim, computed with x's max taken out."""
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        dim = _softmax_dim(input.dim(), "softmax")
    z, _ = _shifted(input, dim)
    e = z.exp()
    return e / e.sum(dim, keepdim=True) if input.dim() else e / e


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along dim."""
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        dim = _softmax_dim(input.dim(), "log_softmax")
    z, _ = _shifted(input, dim)
    if not input.dim():
        return z - z.exp().log()
    return z - z.exp().sum(dim, keepdim=True).log()


def logsumexp(input, dim, keepdim=False):
    """log(sum(exp(x))) along dim (an int or a tuple), without overflow."""
    z, m = _shifted(input, dim, finite=True)
    if not input.dim():
        return z.exp().log() + m
    out = z.exp().sum(dim, keepdim=True).log() + m
    if not keepdim:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        for d in sorted((d % input.dim() for d in dims), reverse=True):
            out = out.squeeze(d)
    return out


# ---- losses ----
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """-[p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] from the logits x (p: pos_weight),
    as (1 - y) x + (1 + (p - 1) y) softplus(-x): stable for any x, its gradient exact."""
    if size_average is not None or reduce is not None:
        reduction = _reduction_from_legacy(size_average, reduce)
    reduction = _check_reduction(reduction)
    if target.size() != input.size():
        raise ValueError(f"Target size ({target.size()}) must be the same as input size "
                         f"({input.size()})")
    sp = softplus(-input, 1.0, math.inf)
    if pos_weight is not None:
        sp = (1.0 + (pos_weight - 1.0) * target) * sp
    loss = (1.0 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


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


# ---- classification and likelihood losses ----
_SCALAR = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
           "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}


def _check_class_target(input, target, weight):
    """torch's nll_loss_nd checks, in its order: dimensions, batch sizes, target dtype, weight.
    Returns the number of classes."""
    nd = input.dim()
    if nd < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {nd})")
    if nd != 1 and input.shape[0] != target.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                         f"batch_size ({target.shape[0]}).")
    if nd <= 2:
        if target.dim() > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if nd == 1 and target.dim() == 1 and target.shape[0] != 1:
            raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: "
                             f"{target.shape[0]}")
    elif nd == 4:
        if target.dim() != 3:
            raise RuntimeError(f"only batches of spatial targets supported (3D tensors) but got "
                               f"targets of dimension: {target.dim()}")
        if tuple(target.shape[1:]) != tuple(input.shape[2:]):
            raise RuntimeError(f"size mismatch (got input: {list(input.shape)} , target: "
                               f"{list(target.shape)}")
    elif tuple(target.shape[1:]) != tuple(input.shape[2:]):
        raise RuntimeError(f"Expected target size {[input.shape[0], *input.shape[2:]]}, got "
                           f"{list(target.shape)}")
    if target.dtype not in (D.int64, D.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{_SCALAR[target.dtype.name]}")
    n_classes = input.shape[1 if nd > 1 else 0]
    if weight is not None:
        if weight.dim() != 1 or weight.numel() != n_classes:
            raise RuntimeError(f"weight tensor should be defined either for all {n_classes} "
                               f"classes or no classes but got weight tensor of shape: "
                               f"{list(weight.shape)}")
        if weight.dtype is not input.dtype:
            raise RuntimeError(f"expected scalar type {_SCALAR[input.dtype.name]} but found "
                               f"{_SCALAR[weight.dtype.name]}")
    return n_classes


def _class_indices(target, ignore_index, n_classes):
    """target as a NumPy int64 array, the mask of its entries that count, and the target with
    the ignored entries set to class 0 (safe to gather); IndexError for an entry out of range."""
    t = np.asarray(target._value()).astype(np.int64)
    valid = t != ignore_index
    bad = t[valid & ((t < 0) | (t >= n_classes))]
    if bad.size:
        raise IndexError(f"Target {bad.reshape(-1)[0]} is out of bounds.")
    return valid, np.where(valid, t, 0)


def _nll(input, target, weight, reduction, ignore_index):
    """-w[t] input[n, t, ...] per element, 0 where t == ignore_index; 'mean' divides the sum by
    the sum of the weights counted (NaN when there are none, as torch)."""
    from ..tensor import tensor, where
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f'"nll_loss_out_frame" not implemented for '
                                  f"'{_SCALAR[input.dtype.name]}'")
    n_classes = _check_class_target(input, target, weight)
    valid, safe = _class_indices(target, ignore_index, n_classes)
    if input.dim() == 1:
        picked = input[tensor(safe.reshape(1))].reshape(())
        valid, safe = valid.reshape(()), safe.reshape(())
    else:
        picked = input.gather(1, tensor(np.expand_dims(safe, 1))).squeeze(1)
    loss = -picked
    w = None if weight is None else weight[tensor(safe)]
    if w is not None:
        loss = loss * w
    everywhere = bool(valid.all())
    if not everywhere:
        loss = where(tensor(valid), loss, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if w is None:
        return loss.sum() / float(valid.sum())
    return loss.sum() / (w if everywhere else where(tensor(valid), w, 0.0)).sum()


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log likelihood of class-index targets from log-probabilities input (N, C, ...)
    or (C,): -weight[t] * input[n, t]; entries whose target is ignore_index count for nothing."""
    if size_average is not None or reduce is not None:
        reduction = _reduction_from_legacy(size_average, reduce)
    return _nll(input, target, weight, _check_reduction(reduction), ignore_index)


def _class_shape(input, weight, class_dim):
    """weight (C,) shaped to broadcast along input's class dimension."""
    shape = [1] * input.dim()
    shape[class_dim] = weight.shape[0]
    return weight.reshape(shape)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of the logits input (N, C, ...) or (C,) against class indices (as
    nll_loss of log_softmax, with label smoothing as torch mixes it in) or, when target has
    input's shape, against class probabilities."""
    if size_average is not None or reduce is not None:
        reduction = _reduction_from_legacy(size_average, reduce)
    reduction = _check_reduction(reduction)
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f'"log_softmax_lastdim_kernel_impl" not implemented for '
                                  f"'{_SCALAR[input.dtype.name]}'")
    class_dim = 0 if input.dim() == 1 else 1
    if tuple(input.shape) == tuple(target.shape):
        return _cross_entropy_probs(input, target, weight, reduction, ignore_index,
                                    label_smoothing, class_dim)
    if label_smoothing > 0.0:
        if label_smoothing > 1.0:
            raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                               f"{label_smoothing}")
        return _cross_entropy_smoothed(input, target, weight, reduction, ignore_index,
                                       label_smoothing, class_dim)
    return _nll(log_softmax(input, class_dim), target, weight, reduction, ignore_index)


def _cross_entropy_probs(input, target, weight, reduction, ignore_index, label_smoothing,
                         class_dim):
    if not target.dtype.is_floating_point:
        raise RuntimeError(f"Expected floating point type for target with class probabilities, "
                           f"got {_SCALAR[target.dtype.name]}")
    if ignore_index >= 0:
        raise RuntimeError("ignore_index is not supported for floating point target")
    n_classes = input.shape[class_dim]
    if weight is not None and (weight.dim() != 1 or weight.numel() != n_classes):
        raise RuntimeError(f"cross_entropy: weight tensor should be defined either for all "
                           f"{n_classes} classes or no classes but got weight tensor of shape: "
                           f"{list(weight.shape)}")
    logp = log_softmax(input, class_dim)
    if label_smoothing > 0.0:
        if label_smoothing > 1.0:
            raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                               f"{label_smoothing}")
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
    prod = logp * target
    if weight is not None:
        prod = prod * (_class_shape(input, weight, class_dim) if input.dim() > 1 else weight)
    if reduction == "none":
        return -prod.sum(class_dim)
    if reduction == "sum":
        return -prod.sum()
    if input.numel() == 0:
        return -prod.sum() * math.nan
    return -prod.sum() / (input.numel() // n_classes)


def _cross_entropy_smoothed(input, target, weight, reduction, ignore_index, label_smoothing,
                            class_dim):
    """(1 - s) nll + s / C * (the loss of a uniform target), as torch computes it."""
    from ..tensor import tensor
    logp = log_softmax(input, class_dim)
    nll = _nll(logp, target, weight, reduction, ignore_index)
    n_classes = logp.shape[class_dim]
    if weight is not None:
        smooth = -(logp * _class_shape(logp, weight, class_dim)).sum(class_dim)
    else:
        smooth = -logp.sum(class_dim)
    ignored = np.asarray(target._value()) == ignore_index
    if ignored.shape != tuple(smooth.shape):
        raise RuntimeError(f"output with shape {list(smooth.shape)} doesn't match the "
                           f"broadcast shape {list(ignored.shape)}")
    smooth = smooth.masked_fill(tensor(ignored), 0.0)
    if reduction == "mean":
        if weight is not None:
            counted = np.asarray(target._value()).astype(np.int64)[~ignored].reshape(-1)
            ret = smooth.sum() / weight[tensor(counted)].sum()
        else:
            ret = smooth.sum() / float((~ignored).sum())
    elif reduction == "sum":
        ret = smooth.sum()
    else:
        ret = smooth
    return (1 - label_smoothing) * nll + ret * (label_smoothing / n_classes)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """Poisson negative log likelihood: exp(input) - target * input (log_input), or
    input - target * log(input + eps); full adds Stirling's term where target > 1."""
    if size_average is not None or reduce is not None:
        reduction = _reduction_from_legacy(size_average, reduce)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not a valid value for reduction")
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        # torch: (t log t - t + 0.5 log(2 pi t)).masked_fill(t <= 1, 0). Here the term is
        # taken at max(t, 1) and times a 0/1 mask from ceil: the same values, and no condition
        # read in Python, so a compiled step replays on new targets.
        t = target if target.dtype.is_floating_point else target.to(input.dtype)
        ts = t.clamp(min=1.0)
        stirling = ts * ts.log() - ts + 0.5 * (2 * math.pi * ts).log()
        loss = loss + stirling * (t - 1.0).ceil().clamp(0.0, 1.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Gaussian negative log likelihood 0.5 (log var + (input - target)^2 / var) (+ 0.5
    log(2 pi) if full). var has input's shape, or one dimension of size 1, or input's shape
    without its last dimension; it is clamped at eps with its gradient passed as torch does."""
    from ..factory import ones_like
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * ones_like(input)
    elif not hasattr(var, "amin"):
        raise TypeError(f"any() received an invalid combination of arguments - got "
                        f"({type(var < 0).__name__})")
    elif var.numel() and bool(var.detach().amin() < 0):
        raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif input.dim() == var.dim() and sum(y for x, y in zip(input.shape, var.shape)
                                              if x != y) == 1:
            pass
        else:
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = var.clone()
    with no_grad():
        var.clamp_(min=eps)
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# ---- dropout, normalization, embedding ----
def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only;
    otherwise input itself is returned). The mask is drawn from tapegrad's generator in
    Python, so under tapegrad.compile a step that draws one is never replayed: it runs
    eagerly at every call (a fresh mask each time) and explain() says why."""
    from ..random import _rng
    from ..tensor import tensor
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if p == 0 or not training or input.numel() == 0:
        return input
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"result type Float can't be cast to the desired output type "
                           f"{_SCALAR[input.dtype.name]}")
    if p == 1:
        noise = tensor(0.0, dtype=input.dtype)
    else:
        if TAPE.rec is not None:
            TAPE.rec.python_write("dropout's random mask (a replay would reuse it)")
        keep = _rng().random(tuple(input.shape)) < 1 - p
        dt = input.dtype.np
        noise = tensor(keep.astype(dt) / dt.type(1 - p), dtype=input.dtype)
    return input.mul_(noise) if inplace else input * noise


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias, the mean and (biased) variance taken over
    the trailing dimensions normalized_shape."""
    if isinstance(normalized_shape, int):
        raise TypeError("layer_norm(): argument 'normalized_shape' (position 2) must be tuple "
                        "of ints, not int")
    shape = [int(s) for s in normalized_shape]
    k = len(shape)
    if k < 1:
        raise RuntimeError(f"Expected normalized_shape to be at least 1-dimensional, i.e., "
                           f"containing at least one element, but got normalized_shape = "
                           f"{shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and list(t.shape) != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but "
                               f"got {name} of shape {list(t.shape)} and normalized_shape = "
                               f"{shape}")
    if input.dim() < k or list(input.shape[-k:]) != shape:
        raise RuntimeError(f"Given normalized_shape={shape}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{list(input.shape)}")
    lead = tuple(input.shape[:-k])
    x = input.reshape(lead + (math.prod(shape),))
    d = x - x.mean(-1, keepdim=True)
    y = (d * ((d * d).mean(-1, keepdim=True) + eps).rsqrt()).reshape(input.shape)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def _verify_batch_size(size):
    size_prods = size[0]
    for i in range(len(size) - 2):
        size_prods *= size[i + 2]
    if size_prods == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {size}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalize each channel (dim 1) over the batch and any further dims: with the batch's
    mean and biased variance in training, updating running_mean / running_var (unbiased) in
    place by momentum when given; with the running statistics otherwise."""
    if training:
        _verify_batch_size(input.size())
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    if momentum is None:
        raise TypeError("batch_norm(): argument 'momentum' (position 7) must be float, not "
                        "NoneType")
    c = input.shape[1] if input.dim() > 1 else 0
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
        if t is None and not training:
            raise RuntimeError(f"{name} must be defined in evaluation mode")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    dims = (0,) + tuple(range(2, input.dim()))
    shape = (1, c) + (1,) * (input.dim() - 2)
    if training:
        n = input.numel() // c
        mean = input.mean(dims, keepdim=True)
        d = input - mean
        var_sum = (d * d).sum(dims, keepdim=True)
        y = d * (var_sum / n + eps).rsqrt()
        with no_grad():
            if running_mean is not None:
                mean = mean.detach().reshape(running_mean.shape)
                running_mean.copy_(momentum * mean + (1 - momentum) * running_mean)
            if running_var is not None:
                unbiased = (var_sum.detach() / (n - 1)).reshape(running_var.shape)
                running_var.copy_(momentum * unbiased + (1 - momentum) * running_var)
    else:
        y = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def _embedding_renorm_(weight, indices, max_norm, norm_type):
    """Rescale (in place) the rows of weight that indices use whose norm exceeds max_norm to
    max_norm / (norm + 1e-7), as torch: decided in Python from the values, so a compiled step
    that does it runs eagerly."""
    if TAPE.rec is not None:
        TAPE.rec.python_write("embedding's max_norm renormalization")
    rows = np.unique(np.asarray(indices._value()).reshape(-1))
    w = np.asarray(weight.detach().numpy(), np.float64)[rows]
    a = np.abs(w)
    norms = a.max(1) if norm_type == math.inf else (a ** norm_type).sum(1) ** (1 / norm_type)
    big = norms > max_norm
    if big.any():
        from ..tensor import tensor
        scale = (max_norm / (norms[big] + 1e-7)).astype(weight.dtype.np)[:, None]
        with no_grad():
            idx = tensor(rows[big])
            weight[idx] = weight[idx] * tensor(scale)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """The rows of weight (num_embeddings, embedding_dim) that input's indices select; the row
    padding_idx gets no gradient; max_norm renormalizes the rows used, in place."""
    from ..tensor import where
    if padding_idx is not None:
        if padding_idx > 0:
            if padding_idx >= weight.size(0):
                raise AssertionError("Padding_idx must be within num_embeddings")
        elif padding_idx < 0:
            if padding_idx < -weight.size(0):
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx = weight.size(0) + padding_idx
    else:
        padding_idx = -1
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("tapegrad's embedding supports neither scale_grad_by_freq "
                                  "nor sparse gradients")
    if input.dtype not in (D.int64, D.int32):
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.type()} instead "
                           f"(while checking arguments for embedding)")
    if weight.dim() != 2:
        raise RuntimeError("'weight' must be 2-D")
    idx = np.asarray(input._value())
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise IndexError("index out of range in self")
    if max_norm is not None:
        _embedding_renorm_(weight, input, max_norm, norm_type)
    out = weight[input]
    pad = idx == padding_idx
    if padding_idx >= 0 and out.requires_grad and pad.any():
        from ..tensor import tensor
        out = where(tensor(pad[..., None]), out.detach(), out)
    return out


__all__ = ["linear", "relu", "relu_", "leaky_relu", "leaky_relu_", "elu", "elu_", "sigmoid",
           "tanh", "softplus", "silu", "gelu", "softmax", "log_softmax", "logsumexp",
           "binary_cross_entropy_with_logits", "mse_loss", "l1_loss", "smooth_l1_loss",
           "huber_loss", "nll_loss", "cross_entropy", "poisson_nll_loss", "gaussian_nll_loss",
           "dropout", "layer_norm", "batch_norm", "embedding"]
