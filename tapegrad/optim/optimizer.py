"""Optimizer base and SGD (momentum, dampening, nesterov, weight_decay, maximize).

Updates run under no_grad as in-place tensor ops, so under tapegrad.compile every update is a
record that replays. step() never reads a tensor's value in Python: what it decides in Python
(hyperparameters other than lr, which parameters have a .grad, which state exists) is one guard,
and lr is re-read at every replay (a scheduler's change between calls takes effect).
"""
import warnings
from collections import defaultdict
from itertools import chain

from .. import dtypes as D
from ..autograd import zero_grads
from ..compile import live
from ..dtypes import enable_grad, no_grad
from ..tape import TAPE
from ..tensor import Tensor, tensor


class _RequiredParameter:
    """A required hyperparameter of a parameter group (torch.optim.optimizer.required)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _typename(x):
    if isinstance(x, Tensor):
        return x.type()
    t = type(x)
    if t.__module__ in ("", "builtins"):
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


_PLAIN = (float, int, bool, str, type(None))


def _key(v):
    """A value of a group or state as the structure guard compares it (tensors by slot)."""
    if type(v) in _PLAIN:
        return v
    if isinstance(v, Tensor):
        where = v._slot if v._slot >= 0 else v._np.tobytes()     # integer tensors: by value
        return ("tensor", where, v._shape, v._dt.name)
    if isinstance(v, (list, tuple)):
        return tuple(_key(x) for x in v)
    return v


def _copy_value(v):
    """A deep copy of a saved group value (tensors cloned)."""
    if isinstance(v, Tensor):
        return v.clone()
    if isinstance(v, dict):
        return {k: _copy_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_copy_value(x) for x in v)
    return v


def _scalar_dtype():
    """The dtype of a `step` counter (float64 under a float64 default dtype, else float32)."""
    return D.float64 if D.get_default_dtype() is D.float64 else D.float32


def _check_lr(lr):
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def _check_implementation(name, foreach=None, fused=None, differentiable=False):
    """PyTorch's checks of the implementation switches, then what tapegrad cannot honour
    (foreach and capturable select implementations with the same update: accepted)."""
    if fused:
        if differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        raise RuntimeError(f"{name}: fused=True is not supported by tapegrad (its updates "
                           f"already run as compiled records); use fused=None")
    if differentiable:
        raise RuntimeError(f"{name}: differentiable=True is not supported by tapegrad (an "
                           f"optimizer step is not differentiated through)")


def _as_double(t):
    return t if t._dt is D.float64 else t.double()


class Optimizer:
    """Base class of optimizers: param_groups (a list of dicts of options), per-parameter
    state, state_dict()/load_state_dict() and zero_grad(), as torch.optim.Optimizer."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got " + _typename(params))
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        text = type(self).__name__ + " ("
        for i, g in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            text += "".join(f"    {k}: {g[k]}\n" for k in sorted(g) if k != "params")
        return text + ")"

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state,
                "param_groups": self.param_groups}

    _OPTIONS = ()           # (option, default): what older pickled param groups may lack

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.defaults.setdefault("differentiable", False)
        for g in self.param_groups:
            for k, v in self._OPTIONS:
                g.setdefault(k, v)
        for st in self.state.values():      # a step count saved as a number becomes a tensor
            if "step" in st and not isinstance(st["step"], Tensor):
                st["step"] = tensor(float(st["step"]), dtype=_scalar_dtype())

    def add_param_group(self, param_group):
        """Add a dict {"params": [...], option: value} whose missing options take the
        optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        ps = param_group["params"]
        if isinstance(ps, Tensor):
            ps = [ps]
        elif isinstance(ps, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        ps = list(ps)
        names = [p[0] for p in ps if isinstance(p, tuple)]
        param_group["params"] = [p[1] if isinstance(p, tuple) else p for p in ps]
        if names:
            if len(names) != len(ps):
                raise ValueError("all optimizer params should be with/without names. Some "
                                 "param names are missing")
            param_group["param_names"] = names
        for p in param_group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + _typename(p))
            if not self.defaults.get("differentiable") and not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        ps = param_group["params"]
        if len(ps) != len(set(ps)):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = set()
        for g in self.param_groups:
            seen.update(g["params"])
            if ("param_names" in param_group) != ("param_names" in g):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(f"all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if not seen.isdisjoint(ps):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none=True):
        """Reset the .grad of every parameter: to None (default) or to zeros."""
        zero_grads(chain.from_iterable(g["params"] for g in self.param_groups), set_to_none)

    def state_dict(self):
        """{'state': {index: {name: value}}, 'param_groups': [{option: value, 'params':
        [index, ...]}]}, parameters numbered in group order (the tensors are not copied)."""
        ids = {}
        groups = []
        start = 0
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for i, p in enumerate(g["params"], start):
                ids.setdefault(id(p), i)
            packed["params"] = [ids[id(p)] for p in g["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {(ids[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state_dict() (of an optimizer over parameters of the same shapes, in the
        same order): options of every group and per-parameter state."""
        groups = self.param_groups
        saved = _copy_value(state_dict["param_groups"])
        if len(groups) != len(saved):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved),
                          chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                p = id_map[k]
                state[p] = {name: _cast(p, x, name) for name, x in v.items()}
            else:
                state[k] = v
        for g, s in zip(groups, saved):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
        self.__setstate__({"state": state, "param_groups": saved})

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a .grad; returns closure() if given."""
        loss = self._begin(closure)
        for i, g in enumerate(self.param_groups):
            lr = self._lr(i)
            for p in g["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, lr, g)
        return loss

    def _update(self, p, grad, lr, g):
        """The update of one parameter (PyTorch's _single_tensor_<name>, op for op)."""
        raise NotImplementedError

    def _state(self, p, g):
        """The state of parameter p, filled by _init_state before its first update."""
        st = self.state[p]
        if not st:
            self._init_state(p, st, g)
        return st

    # ---- helpers of step() ----
    def _structure(self):
        """What step() decides in Python: each group's options other than a number lr, and
        for each parameter whether it has a .grad and which state tensors it has (by storage)."""
        state, plain, out = self.state, _PLAIN, []
        for g in self.param_groups:     # checked at every replay: kept to plain loops
            for k, v in g.items():
                if k != "params" and (k != "lr" or isinstance(v, Tensor)):
                    out.append((k, v if type(v) in plain else _key(v)))
            for p in g["params"]:
                st = state.get(p)
                out.append(p._grad is None)
                if st:
                    out.extend((k, _key(v)) for k, v in st.items())
            out.append(None)
        return tuple(out)

    def _begin(self, closure):
        """Guard the structure (under tapegrad.compile) and evaluate the closure."""
        if TAPE.rec is not None:
            TAPE.rec.python_guard(f"{type(self).__name__} state",
                                  lambda args: self._structure(), self._structure())
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def _lr(self, i):
        """param_groups[i]['lr'], re-read at every replay of a compiled step."""
        return live(self.param_groups[i]["lr"], lambda: self.param_groups[i]["lr"],
                    f"param_groups[{i}]['lr']")


def _cast(param, value, key):
    """A loaded state value for param: float tensors take param's dtype (not `step`), also
    inside dicts, lists and tuples."""
    if isinstance(value, Tensor):
        if key == "step" or not param.is_floating_point():
            return value
        return value.to(dtype=param.dtype)
    if isinstance(value, dict):
        return {k: _cast(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):            # LBFGS's histories
        return type(value)(_cast(param, v, None) for v in value)
    return value


class SGD(Optimizer):
    """p -= lr * (g + weight_decay p), with optional (Nesterov) momentum, as torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        _check_lr(lr)
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)
        _check_implementation("SGD", foreach, fused, differentiable)

    _OPTIONS = (("nesterov", False), ("maximize", False), ("foreach", None),
                ("differentiable", False), ("fused", False))

    def _update(self, p, grad, lr, g):
        d = grad if not g["maximize"] else -grad
        if g["weight_decay"] != 0:
            d = d.add(p, alpha=g["weight_decay"])
        momentum = g["momentum"]
        if momentum != 0:
            st = self.state[p]
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = d.detach().clone()
            else:
                buf.mul_(momentum).add_(d, alpha=1 - g["dampening"])
            d = d.add(buf, alpha=momentum) if g["nesterov"] else buf
        p.add_(d, alpha=-lr)
