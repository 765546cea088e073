"""torch.autograd: backward, grad, Variable, gradcheck."""
import weakref

import numpy as np

from .. import dtypes as D
from ..tape import TAPE
from ..tensor import Tensor, _make, _Retained
from . import function, graph
from .function import Function, FunctionCtx, once_differentiable


def _seed(t, gradient):
    if gradient is None:
        if t.numel() != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        return 1.0
    g = gradient._value() if isinstance(gradient, Tensor) else np.asarray(gradient)
    if tuple(g.shape) != t._shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                           f"{D.Size(g.shape)} and output[0] has a shape of {t.shape}.")
    return g.reshape(-1)


def _run(t, gradient, retain_graph, grad_of=None, retain=None):
    if not t._rg:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                           "grad_fn")
    gs = -1
    if (TAPE.rec is not None and isinstance(gradient, Tensor) and gradient._slot >= 0
            and gradient._shape == t._shape and gradient._dt is t._dt):
        g, gs = None, gradient._slot                # seeded from the slot, in replays too
    else:
        g = _seed(t, gradient)
    rec = t._rec
    if rec >= 0 and t._epoch != TAPE.epoch:
        rec = -2                                   # the records of this graph are gone
    elif 0 <= rec < TAPE.n - 1:
        rec = TAPE.last_write(t._slot, rec)        # in-place writes through another view
    return TAPE.backward(rec, t._slot, g, bool(retain_graph), grad_of, retain, gs)


def _backward(t, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        gs = grad(t, inputs, gradient, retain_graph, create_graph, allow_unused=True)
        for x, g in zip(inputs, gs):
            if g is not None:
                if create_graph:
                    x.grad = g if x._grad is None else x._grad + g
                else:
                    x.grad = g if x._grad is None else x._grad.add_(g)
        return
    if create_graph:
        _accumulate(graph.reverse(t, gradient, retain_graph))
        return
    new, retained = _run(t, gradient, retain_graph)
    for s in new:
        owner = TAPE.owners.get(s)
        leaf = owner() if owner is not None else None
        gs = TAPE.take_grad(s)
        if leaf is not None and leaf._grad is None:
            leaf._grad = _make(gs, leaf._shape, leaf._dt)
            TAPE.set_grad_of(s, gs)
        else:
            TAPE.refs[gs] += 1
            TAPE.release(gs)
    for s in retained:
        r = TAPE.owners.get(s)
        x = r() if r is not None else None
        if x is not None and x._grad is None:
            x._grad = r.grad


def _accumulate(found):
    """backward(create_graph=True): each leaf's (and retained tensor's) gradient, a tensor with
    a grad_fn, added out of place to its .grad, as torch's AccumulateGrad does in grad mode."""
    for s, g in found.items():
        owner = TAPE.owners.get(s)
        x = owner() if owner is not None else None
        if x is None:
            continue
        g = graph.shaped(g, x._shape)
        new = g if x._grad is None else x._grad + g
        if isinstance(owner, _Retained):
            if owner.grad is not new and not getattr(owner, "_finalized", False):
                # the retained slot's .grad now carries a graph that names the slot: drop it
                # when x goes, or the tape would keep both alive
                weakref.finalize(x, _forget_retained, owner, s)
                owner._finalized = True
            x._grad = owner.grad = new
            TAPE.set_grad_of(s, new._slot)
        else:
            x.grad = new


def _forget_retained(owner, s):
    if TAPE.owners.get(s) is owner:
        owner.grad = None
        TAPE.retain[s] = 0
        TAPE.set_grad_of(s, -1)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    grads = grad_tensors if isinstance(grad_tensors, (list, tuple)) else [grad_tensors] * len(
        tensors)
    for i, (t, g) in enumerate(zip(tensors, grads)):
        keep = retain_graph if i == len(tensors) - 1 else True
        _backward(t, g, keep, create_graph, inputs)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """Gradients of outputs with respect to inputs, returned (leaves' .grad are not touched).
    With create_graph=True the gradients are differentiable tensors (graph.reverse)."""
    if retain_graph is None:
        retain_graph = create_graph
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    gouts = grad_outputs if isinstance(grad_outputs, (list, tuple)) else [grad_outputs] * len(
        outputs)
    for x in inputs:
        if not x._rg:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    acc = [None] * len(inputs)
    pos = {}                                         # slot -> the inputs naming it (views)
    for i, x in enumerate(inputs):
        pos.setdefault(x._slot, []).append(i)
    for k, (out, g) in enumerate(zip(outputs, gouts)):
        grad_of = np.full_like(TAPE.grad_of, -1)   # leave every .grad untouched
        retain = np.zeros_like(TAPE.retain)
        held = {}
        for x in inputs:
            # a non-leaf (not a view of a leaf): collect its gradient as a retained one
            if x._fn is not None and not TAPE.leaf[x._slot] and x._slot not in held:
                from ..factory import zeros
                buf = zeros((int(TAPE.size[x._slot]),), dtype=x._dt)
                retain[x._slot] = 1
                grad_of[x._slot] = buf._slot
                held[x._slot] = buf
        keep = retain_graph if k == len(outputs) - 1 else True
        if create_graph:
            found = list(graph.reverse(out, g, keep, retain, grad_of).items())
        else:
            new, retained = _run(out, g, keep, grad_of, retain)
            found = [(s, _make(TAPE.take_grad(s), (int(TAPE.size[s]),), TAPE_dt(s)))
                     for s in new]
            found += [(s, buf) for s, buf in held.items() if s in retained]
        for s, gt in found:
            for i in pos.get(s, ()):
                gi = graph.shaped(gt, inputs[i]._shape)
                acc[i] = gi if acc[i] is None else acc[i] + gi
    for i, x in enumerate(inputs):
        if acc[i] is None:
            if materialize_grads:
                from ..factory import zeros_like
                acc[i] = zeros_like(x)
            elif not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        elif acc[i]._shape != x._shape:
            acc[i] = acc[i].reshape(x._shape)
    return tuple(acc)


def TAPE_dt(s):
    return D.float32 if TAPE.key[s][0] == 0 else D.float64


def Variable(data, requires_grad=False, volatile=False):
    """The old Variable wrapper: now just the tensor, with requires_grad set if asked."""
    if not isinstance(data, Tensor):
        from ..tensor import tensor
        data = tensor(data)
    return data.requires_grad_(True) if requires_grad else data


class GradcheckError(RuntimeError):
    pass


def gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **kwargs):
    """Compare backward's Jacobian with central finite differences (use float64 inputs)."""
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    diff = [x for x in inputs if isinstance(x, Tensor) and x._rg]

    def outs():
        r = func(*inputs)
        return (r,) if isinstance(r, Tensor) else tuple(r)

    first = outs()
    for oi, out in enumerate(first):
        n = out.numel()
        for j in range(n):
            onehot = np.zeros(n)
            onehot[j] = 1.0
            analytic = grad(outs()[oi], diff, onehot.reshape(out._shape), allow_unused=True,
                            materialize_grads=True)
            for x, a in zip(diff, analytic):
                flat = x.data.reshape(-1)
                for k in range(x.numel()):
                    v = flat[k].item()
                    flat[k] = v + eps
                    fp = outs()[oi].detach()._value().reshape(-1)[j]
                    flat[k] = v - eps
                    fm = outs()[oi].detach()._value().reshape(-1)[j]
                    flat[k] = v
                    num = (fp - fm) / (2 * eps)
                    an = a._value().reshape(-1)[k]
                    if not abs(num - an) <= atol + rtol * abs(num):
                        if raise_exception:
                            raise GradcheckError(
                                f"Jacobian mismatch for output {oi} with respect to input "
                                f"element {k}: numerical {num} vs analytical {an}")
                        return False
    return True


def zero_grads(params, set_to_none=True):
    """Reset the .grad of each parameter: to None, or detached and filled with zeros
    (Module.zero_grad and Optimizer.zero_grad)."""
    for p in params:
        if p.grad is not None:
            if set_to_none:
                p.grad = None
            else:
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                p.grad.zero_()


from . import functional  # noqa: E402  (it imports grad from here)
