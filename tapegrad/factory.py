"""Tensor creation functions (PyTorch's names and call forms)."""
import numpy as np

from . import dtypes as D
from .random import _rng
from .tensor import Tensor, _from_array, _make_np, tensor


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list, D.Size)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"size must be a sequence of ints, but got {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(size)}")
    return tuple(int(s) for s in size)


def _filled(size, value, dtype, requires_grad):
    dt = dtype or D.get_default_dtype()
    return _from_array(np.full(size, value, dt.np), dt, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None):
    return _filled(_size(size), 0, dtype, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None):
    return _filled(_size(size), 1, dtype, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, **kwargs):
    return _filled(_size(size), 0, dtype, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        if isinstance(fill_value, (bool, np.bool_)):
            dtype = D.bool_
        elif isinstance(fill_value, (int, np.integer)):
            dtype = D.int64
        elif isinstance(fill_value, Tensor):
            fill_value = fill_value.item()
    return _filled(_size((size,)), fill_value, dtype, requires_grad)


def _like(x, value, dtype, requires_grad):
    return _filled(x._shape, value, dtype or x._dt, requires_grad)


def zeros_like(x, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _like(x, 0, dtype, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _like(x, 1, dtype, requires_grad)


def empty_like(x, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _like(x, 0, dtype, requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(x, fill_value, dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Like torch.arange: int64 for integer arguments, the default float dtype otherwise."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in vals)
        dtype = D.int64 if ints else D.get_default_dtype()
    n = max(0, int(np.ceil((vals[1] - vals[0]) / vals[2])))
    arr = vals[0] + np.arange(n, dtype=np.float64 if dtype.is_floating_point else np.int64) \
        * vals[2]
    return _from_array(arr, dtype, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end, both included (the default float dtype)."""
    if steps < 0:
        raise RuntimeError(f"number of steps must be non-negative (linspace got {steps})")
    dt = dtype or D.get_default_dtype()
    s = [v.item() if isinstance(v, Tensor) else v for v in (start, end)]
    return _from_array(np.linspace(s[0], s[1], int(steps)), dt, requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    return _from_array(np.logspace(start, end, int(steps), base=base),
                       dtype or D.get_default_dtype(), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _from_array(np.eye(n, m), dtype or D.get_default_dtype(), requires_grad)


def _random(values, dtype, requires_grad):
    return _from_array(values, dtype or D.get_default_dtype(), requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False, **kwargs):
    """Standard normal samples: randn(2, 3), randn((2, 3)), randn(()), randn(size=(2,))."""
    size = _size(kwargs.pop("size")) if "size" in kwargs else _size(size)
    return _random(_rng(generator).standard_normal(size), dtype, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False, **kwargs):
    size = _size(kwargs.pop("size")) if "size" in kwargs else _size(size)
    return _random(_rng(generator).random(size), dtype, requires_grad)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None,
            requires_grad=False):
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    v = _rng(generator).integers(low, high, _size((size,)))
    return _from_array(v, dtype or D.int64, requires_grad)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False):
    return _from_array(_rng(generator).permutation(int(n)), dtype or D.int64, requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, out=None,
           device=None, requires_grad=False):
    """torch.normal(mean, std, size), normal(mean_tensor, std), normal(mean, std_tensor),
    normal(mean_tensor, std_tensor): elementwise means and standard deviations broadcast."""
    mt, st = isinstance(mean, Tensor), isinstance(std, Tensor)
    if not mt and not st:
        if size is None:
            raise TypeError("normal() received an invalid combination of arguments: with float "
                            "mean and std, a size is required")
        return _random(_rng(generator).normal(mean, std, _size((size,))), dtype,
                       requires_grad)
    m = mean._value() if mt else np.asarray(mean, np.float64)
    s = std._value() if st else np.asarray(std, np.float64)
    if np.any(s < 0):
        raise RuntimeError(f"normal expects all elements of std >= 0.0 (std shape "
                           f"{list(np.shape(s))})")
    shape = np.broadcast_shapes(np.shape(m), np.shape(s))
    dt = dtype or (mean._dt if mt else std._dt)
    return _random(m + s * _rng(generator).standard_normal(shape), dt, requires_grad)


def from_numpy(a):
    """A tensor with the dtype of NumPy array `a` (values are copied into tapegrad's arena)."""
    if not isinstance(a, np.ndarray):
        kind = type(a)
        name = kind.__name__ if kind.__module__ == "builtins" else \
            f"{kind.__module__}.{kind.__name__}"
        raise TypeError(f"expected np.ndarray (got {name})")
    return _from_array(a, D.from_np(a.dtype))


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and (dtype is None or dtype is data._dt):
        return data
    if isinstance(data, Tensor):
        return data.to(dtype)
    return tensor(data, dtype=dtype)


def scalar_tensor(v, dtype=None, device=None, requires_grad=False):
    return tensor(float(v), dtype=dtype, requires_grad=requires_grad)


def bool_tensor(values):
    return _make_np(np.asarray(values, bool), D.bool_)
