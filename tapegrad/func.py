"""torch.func: grad, grad_and_value, vjp, jacrev, jacfwd, hessian, vmap, functional_call.

Transforms over autograd.grad with create_graph=True, so they nest (grad(grad(f)),
jacfwd(jacrev(f))). jacfwd computes the same Jacobian as jacrev (by rows of vjps), and vmap
is a Python loop over the batch whose results are stacked (not vectorized).
"""
import contextlib

from . import dtypes as D
from .autograd import functional as _F
from .tensor import Tensor, stack


def _argnums(argnums, n):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -n <= a < n:
            raise RuntimeError(f"Got argnums={argnums} but only {n} positional inputs")
    return single, tuple(a % n for a in nums)


def _diff_args(args, nums):
    """args with the differentiated ones as tensors requiring grad (kept connected when they
    already require grad: an outer transform differentiates through)."""
    args = list(args)
    for a in nums:
        x = args[a]
        if not isinstance(x, Tensor):
            raise RuntimeError(f"grad: expected argument {a} to be a Tensor, got "
                               f"{type(x).__name__}")
        args[a] = x.view_as(x) if x.requires_grad else x.detach().clone().requires_grad_(True)
    return args


def grad_and_value(func, argnums=0, has_aux=False):
    """func's gradient with respect to args[argnums] and its value (and aux)."""
    def wrapper(*args, **kwargs):
        from .autograd import grad as _grad
        single, nums = _argnums(argnums, len(args))
        nested = any(isinstance(args[a], Tensor) and args[a].requires_grad for a in nums)
        with D.enable_grad():
            xs = _diff_args(args, nums)
            r = func(*xs, **kwargs)
            if has_aux:
                if not (isinstance(r, tuple) and len(r) == 2):
                    raise RuntimeError("grad_and_value(f)(*args): output of function f should "
                                       "be a tuple: (output, aux) if has_aux is True")
                out, aux = r
            else:
                out, aux = r, None
            if not isinstance(out, Tensor):
                raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a "
                                   f"Tensor, got {type(out)}")
            if out.dim() != 0:
                raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a "
                                   f"scalar Tensor, got tensor with {out.dim()} dims. Maybe you "
                                   f"wanted to use the vjp or jacrev APIs instead?")
            ins = [xs[a] for a in nums]
            if out.requires_grad:
                gs = _grad(out, ins, create_graph=nested,
                           allow_unused=True, materialize_grads=True)
            else:
                from .factory import zeros_like
                gs = tuple(zeros_like(x) for x in ins)
        if not nested:
            gs = tuple(g.detach() for g in gs)
            out = out.detach()
        g = gs[0] if single else tuple(gs)
        return (g, (out, aux)) if has_aux else (g, out)
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """func's gradient with respect to args[argnums] (func returns a scalar tensor)."""
    gv = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return wrapper


def vjp(func, *primals, has_aux=False):
    """(func(*primals), vjp_fn[, aux]): vjp_fn(cotangents) gives one gradient per primal."""
    nested = any(isinstance(p, Tensor) and p.requires_grad for p in primals)
    with D.enable_grad():
        xs = _diff_args(primals, range(len(primals)))
        r = func(*xs)
        out, aux = (r if has_aux else (r, None))
    outs = (out,) if isinstance(out, Tensor) else tuple(out)

    def vjp_fn(cotangents, *rest):
        cts = (cotangents,) + rest if rest else (
            (cotangents,) if isinstance(cotangents, Tensor) else tuple(cotangents))
        if len(cts) != len(outs):
            raise RuntimeError("Expected pytree structure of cotangents to be the same as "
                               "pytree structure of outputs to the function")
        with D.enable_grad():
            gs = _F._grads(outs, xs, cts, True, False, "vjp")
        return tuple(g if nested else g.detach() for g in gs)

    res = out if nested else (out.detach() if isinstance(out, Tensor)
                              else type(out)(o.detach() for o in out))
    return (res, vjp_fn, aux) if has_aux else (res, vjp_fn)


def jacrev(func, argnums=0, *, has_aux=False, chunk_size=None):
    """The Jacobian of func with respect to args[argnums], by rows (reverse mode)."""
    def wrapper(*args):
        single, nums = _argnums(argnums, len(args))
        nested = any(isinstance(args[a], Tensor) and args[a].requires_grad for a in nums)
        aux_box = []

        def f(*ins):
            full = list(args)
            for a, x in zip(nums, ins):
                full[a] = x
            r = func(*full)
            if has_aux:
                r, aux = r
                aux_box.append(aux)
            return r
        jac = _F.jacobian(f, tuple(args[a] for a in nums), create_graph=True)
        if isinstance(jac, tuple) and all(isinstance(j, tuple) for j in jac):
            jac = tuple(tuple(_fix(j, nested) for j in row) for row in jac)
            jac = tuple(row[0] if single else row for row in jac)
        else:
            jac = tuple(_fix(j, nested) for j in jac)
            jac = jac[0] if single else jac
        return (jac, aux_box[0]) if has_aux else jac
    return wrapper


def _fix(j, nested):
    return j if nested else j.detach()


def jacfwd(func, argnums=0, has_aux=False, *, randomness="error"):
    """The Jacobian of func with respect to args[argnums] (computed as jacrev does: by rows of
    vjps, the same matrix)."""
    return jacrev(func, argnums, has_aux=has_aux)


def hessian(func, argnums=0):
    """The Hessian of a scalar func: jacfwd(jacrev(func))."""
    return jacfwd(jacrev(func, argnums), argnums)


def _dims(in_dims, args):
    if isinstance(in_dims, (int, type(None))):
        return [in_dims] * len(args)
    in_dims = list(in_dims)
    if len(in_dims) != len(args):
        raise ValueError(f"vmap(f, in_dims={tuple(in_dims)}, ...)(<inputs>): in_dims is not "
                         f"compatible with the structure of `inputs`. in_dims has structure "
                         f"{len(in_dims)} but inputs has {len(args)}.")
    return in_dims


def _select(x, d, b):
    return x[(slice(None),) * (d % x.dim()) + (b,)]


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None, chunk=None):
    """func mapped over a dimension of its inputs: a loop over the batch calling func on each
    slice, its results stacked along out_dims (not vectorized: one call per element)."""
    def wrapper(*args, **kwargs):
        dims = _dims(in_dims, args)
        sizes = {a.shape[d] for a, d in zip(args, dims) if d is not None and isinstance(a, Tensor)}
        if not sizes:
            raise ValueError("vmap: at least one input must be a Tensor mapped over a "
                             "dimension (in_dims not None)")
        if len(sizes) > 1:
            raise ValueError(f"vmap: Expected all tensors to have the same size in the mapped "
                             f"dimension, got sizes {sorted(sizes)} for the mapped dimension")
        n = sizes.pop()
        results = []
        for b in range(n):
            sl = [(_select(a, d, b) if d is not None else a) for a, d in zip(args, dims)]
            results.append(func(*sl, **kwargs))
        first = results[0]
        if isinstance(first, Tensor):
            return stack(results, dim=out_dims if isinstance(out_dims, int) else out_dims[0])
        od = [out_dims] * len(first) if isinstance(out_dims, int) else list(out_dims)
        return type(first)(stack([r[k] for r in results], dim=od[k])
                           for k in range(len(first)))
    return wrapper


@contextlib.contextmanager
def _swapped(module, values, strict):
    names = dict(module.named_parameters(remove_duplicate=False))
    names.update(dict(module.named_buffers()))
    if strict:
        missing = [k for k in names if k not in values]
        unexpected = [k for k in values if k not in names]
        if missing or unexpected:
            raise RuntimeError(f"Error(s) in reparametrizing for {type(module).__name__}: "
                               f"missing keys {missing}, unexpected keys {unexpected}")
    saved = []
    try:
        for name, v in values.items():
            owner, _, leaf = name.rpartition(".")
            m = module.get_submodule(owner) if owner else module
            for store in ("_parameters", "_buffers"):
                d = m.__dict__.get(store)
                if d is not None and leaf in d:
                    saved.append((d, leaf, d[leaf]))
                    d[leaf] = v
                    break
            else:
                raise AttributeError(f"{type(m).__name__} has no parameter or buffer {leaf!r}")
        yield
    finally:
        for d, leaf, old in reversed(saved):
            d[leaf] = old


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *,
                    tie_weights=True, strict=False):
    """module(*args, **kwargs) with its parameters and buffers replaced by the given tensors
    (names as in named_parameters / named_buffers) for the call."""
    if isinstance(parameter_and_buffer_dicts, (list, tuple)):
        values = {}
        for d in parameter_and_buffer_dicts:
            dup = set(values) & set(d)
            if dup:
                raise ValueError(f"{sorted(dup)} appeared in multiple dictionaries; behavior of "
                                 f"functional call is ambiguous")
            values.update(d)
    else:
        values = dict(parameter_and_buffer_dicts)
    args = () if args is None else (args if isinstance(args, tuple) else (args,))
    with _swapped(module, values, strict):
        return module(*args, **(kwargs or {}))
