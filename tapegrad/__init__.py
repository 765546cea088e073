"""tapegrad: PyTorch's autograd interface on a flat tape run by Numba interpreters.

    import tapegrad as torch
    W = torch.randn(3, 2, requires_grad=True)
    loss = torch.norm(X @ W - Y) ** 2
    loss.backward()
"""
import builtins as _builtins

from . import cuda, dtypes as _dtypes
from .dtypes import (Size, bool_ as bool, device, dtype, enable_grad, float32, float64,
                     get_default_dtype, inference_mode, int8, int16, int32, int64,
                     is_grad_enabled, no_grad, set_default_dtype, set_grad_enabled, uint8)
from .factory import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like,
                      linspace, logspace, normal, ones, ones_like, rand, randint, randn,
                      randperm, scalar_tensor, zeros, zeros_like)
from .random import Generator, initial_seed, manual_seed, seed
from .threads import get_num_threads, set_num_threads
from .tape import TAPE as _TAPE
from .printing import get_printoptions, set_printoptions
from .tensor import Tensor, cat, stack, tensor, where
from .compile import compile
from .eager import set_eager_compile

__version__ = "0.1.0"

float = float32
double = float64
long = int64
int = int32
half = None
concat = concatenate = cat


def _as_t(x):
    return x if isinstance(x, Tensor) else tensor(x)


def _method(name):
    def fn(input, *args, **kwargs):
        return getattr(_as_t(input), name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"torch.{name}(input, ...): the same as input.{name}(...)."
    return fn


for _name in ("neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu",
              "square", "round", "clamp", "clip", "sum", "mean", "norm", "amax", "amin", "argmax",
              "argmin", "all", "any", "matmul", "mm", "mv", "dot", "t", "transpose", "permute",
              "reshape", "flatten", "squeeze", "unsqueeze", "allclose", "equal", "eq", "ne",
              "lt", "le", "gt", "ge", "maximum", "minimum", "isnan", "numel", "clone", "detach",
              "mul", "multiply", "div", "divide", "sub", "add", "swapaxes", "addcmul", "addcdiv",
              "lerp", "clamp_min", "clamp_max", "var", "std", "log1p", "expm1", "sign", "floor",
              "ceil", "trunc", "fix", "reciprocal", "rsqrt", "sinh", "cosh", "erf", "softmax",
              "log_softmax", "logsumexp", "isinf", "isposinf", "isneginf", "isfinite",
              "nan_to_num", "masked_fill", "broadcast_to", "narrow", "split", "chunk",
              "index_select", "outer", "ger", "bmm", "addmm", "tril", "triu", "diag", "gather",
              "take_along_dim", "sort", "argsort", "topk"):
    globals()[_name] = _method(_name)
negative, absolute, subtract = neg, abs, sub


def pow(input, exponent):
    if isinstance(input, Tensor):
        return input.pow(exponent)
    return exponent.__rpow__(input)


def max(input, dim=None, keepdim=False):
    return _as_t(input).max(dim, keepdim)


def min(input, dim=None, keepdim=False):
    return _as_t(input).min(dim, keepdim)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def is_floating_point(x):
    return x.is_floating_point()


def set_default_device(device):
    """Only the CPU exists here: 'cpu', device('cpu') and None are accepted."""
    if device is not None and _dtypes.device(device).type != "cpu":
        raise RuntimeError(f"tapegrad runs on the CPU only, not on {device}")


def get_default_device():
    return device("cpu")


class _TypedTensor(Tensor):
    _dtype = float32

    def __new__(cls, *args):
        if len(args) == 1 and not isinstance(args[0], _builtins.int):
            return tensor(args[0], dtype=cls._dtype)
        return zeros(*args, dtype=cls._dtype)


class FloatTensor(_TypedTensor):
    _dtype = float32


class DoubleTensor(_TypedTensor):
    _dtype = float64


class LongTensor(_TypedTensor):
    _dtype = int64


class BoolTensor(_TypedTensor):
    _dtype = bool


from . import autograd, nn, optim  # noqa: E402  (they import the names above)
from . import func  # noqa: E402
from . import linalg  # noqa: E402
from .linalg import functions as _linalg  # noqa: E402  (also adds Tensor.det, .inverse, ...)
inverse, det, slogdet, logdet, pinverse, cholesky_solve, cholesky = (
    _linalg.TOP_LEVEL[_n] for _n in ("inverse", "det", "slogdet", "logdet", "pinverse",
                                     "cholesky_solve", "cholesky"))
from .serialization import load, save  # noqa: E402


def __getattr__(name):
    """tapegrad.utils and tapegrad.linear_model are imported on first use (start-up time)."""
    if name in ("utils", "linear_model"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
