"""How tensors print: PyTorch's layout, with one formatter (width and notation) for all the
elements of a tensor, and torch.set_printoptions."""
import math

import numpy as np

from . import dtypes as D

class _PrintOptions:
    precision = 4
    threshold = 1000
    edgeitems = 3
    linewidth = 80
    sci_mode = None


_PRINT_OPTS = _PrintOptions()
_PROFILES = {"default": (4, 1000, 3), "short": (2, 1000, 2), "full": (4, math.inf, 3)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """How tensors print, as torch.set_printoptions: digits, summarization above `threshold`
    elements (`edgeitems` kept at each end), line width, and scientific notation on/off/auto."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, "
                             f"got {profile!r}")
        _PRINT_OPTS.precision, _PRINT_OPTS.threshold, _PRINT_OPTS.edgeitems = _PROFILES[profile]
        _PRINT_OPTS.linewidth = 80
    for name, v in (("precision", precision), ("threshold", threshold),
                    ("edgeitems", edgeitems), ("linewidth", linewidth)):
        if v is not None:
            setattr(_PRINT_OPTS, name, v)
    _PRINT_OPTS.sci_mode = sci_mode


def get_printoptions():
    return {k: getattr(_PRINT_OPTS, k) for k in
            ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")}


class _Formatter:
    """Width and notation of one tensor's elements, chosen from its nonzero finite values."""

    def __init__(self, values, dt):
        self.floating = dt.is_floating_point
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        flat = values.reshape(-1)
        p = _PRINT_OPTS.precision
        if not self.floating:
            self.max_width = max([1] + [len(f"{v}") for v in flat.tolist()])
        else:
            nz = flat.astype(np.float64)
            nz = nz[np.isfinite(nz) & (nz != 0)]
            if nz.size:
                big, small = np.abs(nz).max(), np.abs(nz).min()
                self.int_mode = bool(np.all(nz == np.ceil(nz)))
                self.sci_mode = bool(big / small > 1000.0 or big > 1.0e8 or small < 1.0e-4) \
                    if _PRINT_OPTS.sci_mode is None else _PRINT_OPTS.sci_mode
                if self.sci_mode:
                    widths = [len(f"{v:.{p}e}") for v in nz.tolist()]
                elif self.int_mode:
                    widths = [len(f"{v:.0f}") + 1 for v in nz.tolist()]
                else:
                    widths = [len(f"{v:.{p}f}") for v in nz.tolist()]
                self.max_width = max(widths)

    def format(self, v):
        p = _PRINT_OPTS.precision
        if not self.floating:
            s = f"{v}"
        elif self.sci_mode:
            s = f"{v:{self.max_width}.{p}e}"
        elif self.int_mode:
            s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            s = f"{v:.{p}f}"
        return (self.max_width - len(s)) * " " + s


def _summarized(a):
    """The elements that a summarized print shows (edgeitems at each end of every dim)."""
    e = _PRINT_OPTS.edgeitems
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        return np.concatenate([a[:e], a[-e:]]) if a.shape[0] > 2 * e else a
    if not e:
        return np.zeros((0,) * a.ndim, a.dtype)
    rows = list(range(e)) + list(range(len(a) - e, len(a))) if len(a) > 2 * e else \
        range(len(a))
    return np.stack([_summarized(a[i]) for i in rows])


def _vector_str(a, indent, summarize, fmt):
    per_line = max(1, int(math.floor((_PRINT_OPTS.linewidth - indent) / (fmt.max_width + 2))))
    e = _PRINT_OPTS.edgeitems
    if summarize and not e:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * e:
        data = [fmt.format(v) for v in a[:e].tolist()] + [" ..."] + \
            [fmt.format(v) for v in a[-e:].tolist()]
    else:
        data = [fmt.format(v) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _layout(a, indent, summarize, fmt):
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, fmt)
    e = _PRINT_OPTS.edgeitems
    if summarize and len(a) > 2 * e:
        rows = [_layout(a[i], indent + 1, summarize, fmt) for i in range(e)] + ["..."] + \
            [_layout(a[i], indent + 1, summarize, fmt) for i in range(len(a) - e, len(a))]
    else:
        rows = [_layout(a[i], indent + 1, summarize, fmt) for i in range(len(a))]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def _add_suffixes(text, suffixes, indent):
    """Append ', dtype=...', ', grad_fn=...' (a new line when the line would pass linewidth)."""
    parts = [text]
    last = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last + len(suffix) + 2 > _PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last += len(suffix) + 2
    return "".join(parts) + ")"


def tensor_repr(t, values):
    """repr(t) as PyTorch prints it, for the values `values` (a NumPy array)."""
    from .nn import Parameter
    from .tensor import Tensor
    plain = type(t) is Tensor or type(t) is Parameter
    prefix = "tensor(" if plain else f"{type(t).__name__}("
    indent, dt, suffixes = len(prefix), t._dt, []
    if values.size == 0:
        if values.ndim != 1:
            suffixes.append(f"size={tuple(values.shape)}")
        if dt is not D.get_default_dtype():
            suffixes.append(f"dtype={dt!r}")
        body = "[]"
    else:
        if not _PRINT_OPTS.edgeitems:
            suffixes.append(f"size={tuple(values.shape)}")
        if dt not in (D.get_default_dtype(), D.int64, D.bool_):
            suffixes.append(f"dtype={dt!r}")
        summarize = values.size > _PRINT_OPTS.threshold
        fmt = _Formatter(_summarized(values) if summarize else values, dt)
        body = _layout(values, indent, summarize, fmt)
    if t._fn is not None:
        suffixes.append(f"grad_fn=<{t._fn}>")
    elif t._rg:
        suffixes.append("requires_grad=True")
    text = _add_suffixes(prefix + body, suffixes, indent)
    return text if plain or not isinstance(t, Parameter) else f"Parameter({text})"
