"""torch.autograd.functional: jacobian, hessian, vjp, jvp, vhp, hvp.

Built on autograd.grad (create_graph=True where a result must stay differentiable). jvp and
hvp use the double-vjp trick, as torch does; `vectorize` is accepted and ignored (the
Jacobian's rows are one vjp each); strategy='forward-mode' gives the same Jacobian, computed
by rows too.
"""
from .. import dtypes as D
from ..tensor import Tensor, stack


def _tuple(x, name, fn):
    single = isinstance(x, Tensor)
    xs = (x,) if single else tuple(x) if isinstance(x, (tuple, list)) else None
    if xs is None or not all(isinstance(t, Tensor) for t in xs):
        raise TypeError(f"The {name} given to {fn} must be either a Tensor or a tuple of "
                        f"Tensors but the value at index 0 has type {type(x).__name__}.")
    return single, xs


def _prep(xs, create_graph, need_graph=True):
    out = []
    for x in xs:
        if create_graph and x.requires_grad:
            out.append(x.view_as(x))
        else:
            out.append(x.detach().clone().requires_grad_(need_graph))
    return tuple(out)


def _post(xs, create_graph, single):
    xs = tuple(x if x is None or create_graph else x.detach() for x in xs)
    return xs[0] if single else xs


def _zeros_like(x):
    from ..factory import zeros_like
    return zeros_like(x)


def _grads(outs, ins, gouts, create_graph, strict, fn, retain=True):
    from . import grad
    outs_rg = [(o, g) for o, g in zip(outs, gouts) if o.requires_grad]
    if not outs_rg:
        if strict:
            raise RuntimeError("The output of the user-provided function is independent of "
                               "input 0. This is not allowed in strict mode.")
        return tuple(_zeros_like(x) for x in ins)
    gs = grad([o for o, _ in outs_rg], ins, [g for _, g in outs_rg], retain_graph=retain,
              create_graph=create_graph, allow_unused=True)
    res = []
    for i, (g, x) in enumerate(zip(gs, ins)):
        if g is None:
            if strict:
                raise RuntimeError(f"The output of the user-provided function is independent "
                                   f"of input {i}. This is not allowed in strict mode.")
            g = _zeros_like(x)
        res.append(g)
    return tuple(res)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J)."""
    single_in, xs = _tuple(inputs, "inputs", "vjp")
    with D.enable_grad():
        xs = _prep(xs, create_graph)
        out = func(*xs)
        single_out, outs = _tuple(out, "outputs of the user-provided function", "vjp")
        if v is None:
            if len(outs) != 1 or outs[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the user-provided "
                                   "function returns a single Tensor with a single element.")
            vs = (None,)
        else:
            _, vs = _tuple(v, "v", "vjp")
            for o, w in zip(outs, vs):
                if tuple(o.shape) != tuple(w.shape):
                    raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                                       f"{w.shape} and output[0] has a shape of {o.shape}.")
        g = _grads(outs, xs, vs, create_graph, strict, "vjp")
    return _post(outs, create_graph, single_out), _post(g, create_graph, single_in)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v), by the double-vjp trick."""
    from ..factory import zeros_like
    single_in, xs = _tuple(inputs, "inputs", "jvp")
    if v is None:
        if len(xs) != 1 or xs[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the input to the "
                               "user-provided function is a single Tensor with a single "
                               "element.")
        vs = None
    else:
        _, vs = _tuple(v, "v", "jvp")
    with D.enable_grad():
        xs = _prep(xs, create_graph)
        out = func(*xs)
        single_out, outs = _tuple(out, "outputs of the user-provided function", "jvp")
        us = tuple(zeros_like(o).requires_grad_(True) for o in outs)
        g = _grads(outs, xs, us, True, strict, "jvp")
        vs = vs if vs is not None else tuple(zeros_like(x) + 1 for x in xs)
        gd = [(gi, vi) for gi, vi in zip(g, vs) if gi.requires_grad]
        if not gd:
            res = tuple(zeros_like(o) for o in outs)
        else:
            res = _grads([gi for gi, _ in gd], us, [vi for _, vi in gd], create_graph, strict,
                         "jvp")
    return _post(outs, create_graph, single_out), _post(res, create_graph, single_out)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """d func / d inputs: for each output and input, a tensor of shape out.shape + in.shape
    (one vjp per output element)."""
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode". '
                         'Hint: If your function has more outputs than inputs, "forward-mode" '
                         'tends to be more performant. Otherwise, prefer to use '
                         '"reverse-mode".')
    single_in, xs = _tuple(inputs, "inputs", "jacobian")
    with D.enable_grad():
        xs = _prep(xs, create_graph)
        out = func(*xs)
        single_out, outs = _tuple(out, "outputs of the user-provided function", "jacobian")
        jac = []
        for o in outs:
            flat = o.reshape(-1)
            rows = [[] for _ in xs]
            for j in range(flat.numel()):
                g = _grads([flat[j]], xs, [None], create_graph, strict, "jacobian")
                for k, gk in enumerate(g):
                    rows[k].append(gk)
            per = []
            for k, x in enumerate(xs):
                if rows[k]:
                    J = stack(rows[k]).reshape(tuple(o.shape) + tuple(x.shape))
                else:
                    from ..factory import zeros
                    J = zeros(tuple(o.shape) + tuple(x.shape), dtype=x.dtype)
                per.append(J if create_graph else J.detach())
            jac.append(per[0] if single_in else tuple(per))
    return jac[0] if single_out else tuple(jac)


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar function: the Jacobian of its gradient."""
    single_in, xs = _tuple(inputs, "inputs", "hessian")

    def gradient(*ins):
        out = func(*ins)
        _, outs = _tuple(out, "outputs of the user-provided function", "hessian")
        if len(outs) != 1 or outs[0].numel() != 1:
            raise RuntimeError("The function given to hessian should return a single Tensor "
                               "with a single element.")
        g = _grads(outs, ins, [None], True, strict, "hessian")
        return g[0] if single_in else g

    return jacobian(gradient, xs[0] if single_in else xs, create_graph, strict, vectorize,
                    outer_jacobian_strategy)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) of a scalar function."""
    single_in, xs = _tuple(inputs, "inputs", "vhp")
    _, vs = _tuple(v, "v", "vhp") if v is not None else (True, None)
    with D.enable_grad():
        xs = _prep(xs, create_graph)
        out = func(*xs)
        _, outs = _tuple(out, "outputs of the user-provided function", "vhp")
        if len(outs) != 1 or outs[0].numel() != 1:
            raise RuntimeError("The function given to vhp should return a single Tensor with "
                               "a single element.")
        if vs is None:
            if len(xs) != 1 or xs[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the input to the "
                                   "user-provided function is a single Tensor with a single "
                                   "element.")
            vs = (xs[0].detach() * 0 + 1,)
        g = _grads(outs, xs, [None], True, strict, "vhp")
        gd = [(gi, vi) for gi, vi in zip(g, vs) if gi.requires_grad]
        if not gd:
            res = tuple(_zeros_like(x) for x in xs)
        else:
            res = _grads([gi for gi, _ in gd], xs, [vi for _, vi in gd], create_graph, strict,
                         "vhp")
    return _post(outs, create_graph, True), _post(res, create_graph, single_in)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) of a scalar function (H is symmetric: v^T H, as torch's double
    backward gives it)."""
    return vhp(func, inputs, v, create_graph, strict)
