"""torch.autograd.Function: an op whose forward and backward are Python.

``apply`` runs ``forward`` with gradients off (its ops record, as any others, without a
gradient), then appends one OP_HOST record naming the inputs that require grad and the
outputs. The reverse pass stops at that record (tape._host): the outputs' gradients become
tensors, ``backward`` runs (its ops record too), and what it returns is added to the inputs'
gradients; then the pass goes on. Under tapegrad.compile the recording holds exactly that
work (the backward's records between the pass's rows), so a replay runs it without Python.
"""
import functools

from .. import dtypes as D
from ..ops import DIFF, FREED, OP_HOST
from ..tape import NONE, TAPE
from ..tensor import Tensor, _make, _repoint

_INPLACE_HINT = ("Hint: the backtrace further above shows the operation that failed to compute "
                 "its gradient. The variable in question was changed in there or anywhere "
                 "later. Good luck!")


def _version(t):
    return int(TAPE.ver[TAPE.vid[t._slot]]) if t._slot >= 0 else 0


class FunctionCtx:
    """The ctx of a Function's forward and backward (torch.autograd.function.FunctionCtx)."""

    needs_input_grad = ()
    materialize_grads = True
    _saved = ()
    _name = "Backward"

    def save_for_backward(self, *tensors):
        for k, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument {k} "
                                f"is of type {type(t).__name__}")
        self._saved = tuple((t, _version(t) if t is not None else 0) for t in tensors)
        self._freed = False

    def save_for_forward(self, *tensors):
        self.saved_for_forward = tensors

    @property
    def saved_tensors(self):
        if getattr(self, "_freed", False):
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or "
                "if you need to access saved tensors after calling backward.")
        for t, v in self._saved:
            if t is not None and _version(t) != v:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: [{t.type()} {list(t._shape)}] is at version "
                    f"{_version(t)}; expected version {v} instead. {_INPLACE_HINT}")
        return tuple(t for t, _ in self._saved)

    @property
    def saved_variables(self):
        return self.saved_tensors

    def mark_non_differentiable(self, *tensors):
        self._non_diff = getattr(self, "_non_diff", set()) | {id(t) for t in tensors}

    def mark_dirty(self, *tensors):
        self._dirty = getattr(self, "_dirty", set()) | {id(t) for t in tensors}

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)

    def name(self):
        return self._name


def once_differentiable(fn):
    """Mark a backward as not differentiable itself (tapegrad's backward never is)."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with D.no_grad():
            return fn(ctx, *args)
    return wrapper


class Function:
    """Base of custom autograd functions: subclass with static forward(ctx, *args) (or
    forward(*args) and setup_context(ctx, inputs, output)) and backward(ctx, *grad_outputs),
    then call Cls.apply(*args), as torch.autograd.Function."""

    def __init__(self, *args, **kwargs):
        import warnings
        warnings.warn(f"{type(self)} should not be instantiated. Methods on autograd functions "
                      f"are all static, so you should invoke them on the class itself. "
                      f"Instantiating an autograd function will raise an error in a future "
                      f"version of PyTorch.", DeprecationWarning, stacklevel=2)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is "
                           "deprecated. Please use new-style autograd function with static "
                           "forward method. (Example: https://pytorch.org/docs/stable/"
                           "autograd.html#torch.autograd.Function)")

    generate_vmap_rule = False

    @staticmethod
    def forward(*args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    vjp = backward

    @staticmethod
    def jvp(ctx, *grad_inputs):
        raise NotImplementedError("You must implement the jvp function for custom "
                                  "autograd.Function to use it with forward mode AD.")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        ctx._name = cls.__name__ + "Backward"
        needs = tuple(isinstance(a, Tensor) and a._rg for a in args)
        ctx.needs_input_grad = needs
        with D.no_grad():
            if cls.setup_context is not Function.setup_context:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        if not (D.is_grad_enabled() and any(needs)):
            return out
        return _connect(cls, ctx, args, needs, out)


def _connect(cls, ctx, args, needs, out):
    """The outputs of apply, made the results of one OP_HOST record."""
    single = not isinstance(out, tuple)
    outs = list((out,) if single else out)
    ins = [a._slot for a, nd in zip(args, needs) if nd]
    arg_slots = {a._slot for a in args if isinstance(a, Tensor)}
    non_diff, dirty = getattr(ctx, "_non_diff", set()), getattr(ctx, "_dirty", set())
    slots, made = [], []            # output slots; (position, slot, tensor) to make
    for k, o in enumerate(outs):
        if (not isinstance(o, Tensor) or o._slot < 0 or id(o) in non_diff
                or not o._dt.is_floating_point):
            continue
        s = o._slot
        if id(o) in dirty and s in ins:
            if o._fn is None and o._rg:
                raise RuntimeError("a leaf Variable that requires grad has been used in an "
                                   "in-place operation.")
        elif s in arg_slots or s in slots or o._rg or TAPE.leaf[s]:
            s = TAPE.alias(s)       # its values, with a gradient (and a record) of its own
        slots.append(s)
        made.append((k, s, o))
    if not slots:
        return out
    node = len(TAPE.hosts)
    m = TAPE.add_meta([node, len(ins), len(slots)] + ins + slots)
    rec = TAPE.record(OP_HOST, NONE, NONE, slots[0], made[0][2]._shape, m, DIFF)
    for k, s, o in made:
        if s == o._slot and id(o) in dirty:
            _repoint(o, rec, ctx._name)
        else:
            outs[k] = _make(s, o._shape, o._dt, True, rec, ctx._name)
    info = [None if not isinstance(o, Tensor) else (-1, o._shape, o._dt) for o in outs]
    for k, s, o in made:
        info[k] = (s, o._shape, o._dt)
    node = _Node(cls, ctx, args, needs, info)
    # outputs saved for backward: a differentiated backward (create_graph) reads them as the
    # outputs (their grad_fn this record), as torch unpacks a saved output
    node.saved_outputs = {id(o): s for _, s, o in made}
    TAPE.hosts.append(node)
    if TAPE.rec is not None:
        TAPE.rec.hosted = True
    return outs[0] if single else tuple(outs)


class _Node:
    """The backward of one apply: called by the reverse pass at its record."""

    def __init__(self, cls, ctx, args, needs, outputs):
        # outputs: per output of forward, None (not a tensor) or (slot, shape, dtype), with
        # slot -1 for a tensor that is not differentiable
        self.cls, self.ctx, self.args, self.needs, self.outputs = cls, ctx, args, needs, outputs

    def __call__(self, record):
        cls, ctx, name = self.cls, self.ctx, self.ctx._name
        grads = [None if o is None else _grad_output(*o) for o in self.outputs]
        backward = cls.backward if cls.backward is not Function.backward else cls.vjp
        with D.no_grad():
            r = backward(ctx, *grads)
        with D.no_grad():
            for a, g in checked_grads(name, self.args, self.needs, r):
                TAPE.add_grad(a._slot, g._slot)
        if TAPE.R[record, 5] & FREED:       # no retain_graph: the saved tensors go
            ctx._saved, ctx._freed = (), True
            self.args = ()


def checked_grads(name, args, needs, r):
    """What a Function's backward returned (r), checked as torch checks it: the count (extra
    Nones dropped), no gradient for an input that is not a tensor, a tensor for each input
    that needs one. Yields (input, gradient fitted to the input's shape)."""
    r = r if isinstance(r, tuple) else (r,)
    n = len(args)
    if len(r) != n:
        if len(r) > n and all(g is None for g in r[n:]):
            r = r[:n]
        else:
            raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                               f"(expected {n}, got {len(r)})")
    for k, (a, g) in enumerate(zip(args, r)):
        if g is None:
            continue
        if not isinstance(a, Tensor):
            raise RuntimeError(f"function {name} returned a gradient different than None at "
                               f"position {k + 1}, but the corresponding forward input was not "
                               f"a Variable")
        if not needs[k]:
            continue
        if not isinstance(g, Tensor):
            raise TypeError(f"function {name} returned a gradient of type {type(g).__name__} "
                            f"at position {k + 1}; expected a Tensor or None")
        yield a, _fit(g, a, name, k)


def _grad_output(s, shape, dt):
    """The gradient of an output as backward gets it (zeros for a non-differentiable one)."""
    if s >= 0:
        return _make(TAPE.take_grad(s), shape, dt)
    from ..factory import zeros
    return zeros(shape, dtype=dt if dt.is_floating_point else D.get_default_dtype())


def _fit(g, a, name, k):
    """Gradient g for input a: summed over broadcast dimensions, cast to a's dtype."""
    if g._shape != a._shape:
        gs, xs = g._shape, a._shape
        lead = len(gs) - len(xs)
        if lead < 0 or any(x != 1 and x != y for x, y in zip(xs, gs[lead:])):
            raise RuntimeError(f"Function {name} returned an invalid gradient at index {k} - "
                               f"got {list(gs)} but expected shape compatible with {list(xs)}")
        dims = tuple(range(lead)) + tuple(lead + i for i, x in enumerate(xs)
                                          if x == 1 and gs[lead + i] != 1)
        if dims:
            g = g.sum(dim=dims, keepdim=True)
        g = g.reshape(xs)
    if g._dt is not a._dt or g._slot < 0:
        g = g.to(a._dt)
    return g.contiguous() if g._slot < 0 else g
