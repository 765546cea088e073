"""dtypes, torch.Size and grad mode."""
import functools

import numpy as np


class dtype:
    """A tensor element type, named as in PyTorch: ``tapegrad.float32`` prints torch.float32."""
    __slots__ = ("name", "np", "code", "is_floating_point", "is_bool", "itemsize")

    def __init__(self, name, np_type, code):
        self.name = name
        self.np = np.dtype(np_type)
        self.code = code                      # arena index for float types, -1 otherwise
        self.is_floating_point = code >= 0
        self.is_bool = self.np == np.bool_
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


float32 = dtype("float32", np.float32, 0)
float64 = dtype("float64", np.float64, 1)
int64 = dtype("int64", np.int64, -1)
int32 = dtype("int32", np.int32, -1)
int16 = dtype("int16", np.int16, -1)
int8 = dtype("int8", np.int8, -1)
uint8 = dtype("uint8", np.uint8, -1)
bool_ = dtype("bool", np.bool_, -1)
ALL = (float32, float64, int64, int32, int16, int8, uint8, bool_)
FLOATS = (float32, float64)
_NP = {d.np: d for d in ALL}


def _by_name(name):
    return next(d for d in ALL if d.name == name)


def from_np(np_dtype):
    """The tapegrad dtype for a NumPy dtype (float16 and others are refused, as unsupported)."""
    d = _NP.get(np.dtype(np_dtype))
    if d is None:
        raise TypeError(f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only "
                        "supported types are: float64, float32, int64, int32, int16, int8, "
                        "uint8, and bool.")
    return d


def category(d):
    return 2 if d.is_floating_point else (0 if d.is_bool else 1)


_default = [float32]


def get_default_dtype():
    return _default[0]


def set_default_dtype(d):
    if d not in FLOATS:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default[0] = d


class Size(tuple):
    """The shape of a tensor: a tuple, printed as ``torch.Size([3, 2])``."""

    def __repr__(self):
        return f"torch.Size({list(self)})"

    def numel(self):
        n = 1
        for d in self:
            n *= d
        return n


class device:
    """torch.device: a type and an optional index, ``device('cpu')``, ``device('cuda:0')``,
    ``device('cpu', 0)``. Tensors live on the CPU only; naming a CUDA device is allowed."""
    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        s = str(type)
        kind, colon, idx = s.partition(":")
        if kind not in ("cpu", "cuda", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, meta device type at start of device "
                               f"string: {s}")
        if colon:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was "
                                   f"passed explicitly: {s}")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{s}'")
            index = int(idx)
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index} (device {s})")
        self.type = kind
        self.index = index

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if not isinstance(other, device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (self.type, self.index))


# ---- grad mode ----
class _Mode:
    enabled = True


def is_grad_enabled():
    return _Mode.enabled


class _GradMode:
    """Base of no_grad / enable_grad: a context manager that also decorates functions."""
    value = True

    def __enter__(self):
        self.prev = _Mode.enabled
        _Mode.enabled = self.value

    def __exit__(self, *exc):
        _Mode.enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Disable gradient recording: ``with no_grad(): ...`` or ``@no_grad()``."""
    value = False


class enable_grad(_GradMode):
    value = True


class set_grad_enabled(_GradMode):
    def __init__(self, mode):
        self.value = bool(mode)
        self.prev = _Mode.enabled
        _Mode.enabled = self.value      # takes effect when called, as in PyTorch

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _Mode.enabled = self.prev
        return False


class inference_mode(no_grad):
    def __init__(self, mode=True):
        self.value = not mode
