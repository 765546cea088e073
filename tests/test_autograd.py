"""PyTorch's eager autograd semantics."""
import pytest

import tapegrad as tg


def test_grad_is_none_until_backward_and_accumulates():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    assert x.grad is None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    g = x.grad
    (x * 3).sum().backward()
    assert x.grad is g and x.grad.tolist() == [5.0, 7.0]
    x.grad = None
    x.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_graph_is_freed_unless_retained():
    x = tg.tensor(3.0, requires_grad=True)
    y = x * 2 + x ** 2
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 16.0
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_non_scalar_backward_needs_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        y.backward()
    y.backward(tg.tensor([1.0, 0.5]))
    assert x.grad.tolist() == [2.0, 1.0]
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(tg.ones(3))


def test_backward_of_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor([1.0]).sum().backward()


def test_requires_grad_propagation_leaf_and_grad_fn_names():
    x = tg.tensor(3.0, requires_grad=False)
    w = tg.tensor(2.0, requires_grad=True)
    b = tg.tensor(1.0, requires_grad=True)
    u = x * w
    v = u + b
    assert w.is_leaf and x.is_leaf and not u.is_leaf and u.requires_grad
    assert type(u.grad_fn).__name__ == "MulBackward0"
    assert type(v.grad_fn).__name__ == "AddBackward0"
    assert type((w ** 2).grad_fn).__name__ == "PowBackward0"
    assert type((w - 1).grad_fn).__name__ == "SubBackward0"
    assert type(tg.randn(2, 3, requires_grad=True).mm(tg.randn(3, 2)).grad_fn).__name__ == \
        "MmBackward0"
    assert type(tg.randn(3, requires_grad=True).sum().grad_fn).__name__ == "SumBackward0"
    assert (x * 2).grad_fn is None and not (x * 2).requires_grad


def test_detach_and_no_grad():
    x = tg.arange(4.0, requires_grad=True)
    y = x * x
    u = y.detach()
    assert not u.requires_grad and u.grad_fn is None
    (u * x).sum().backward()
    assert x.grad.tolist() == u.tolist()
    with tg.no_grad():
        z = x * 2
    assert not z.requires_grad

    @tg.no_grad()
    def f(a):
        return a * 2
    assert not f(x).requires_grad
    assert tg.is_grad_enabled()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        tg.arange(4).requires_grad_()


def test_inplace_on_leaf_raises_outside_no_grad_and_works_inside():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w += 1
    with tg.no_grad():
        w -= 0.5
    assert w.tolist() == [0.5, 1.5] and w.requires_grad and w.is_leaf


def test_data_bypasses_autograd():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    w.data -= 1.0
    w.data.mul_(2)
    assert w.tolist() == [0.0, 2.0]
    w.data = tg.tensor([5.0, 6.0])
    assert w.tolist() == [5.0, 6.0] and w.requires_grad


def test_version_counter_detects_modified_saved_tensor():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1
    y = a.sigmoid()                 # saves its output
    y.add_(1)                       # modifies it in place
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_ops_on_non_leaf_are_differentiable():
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    a = x * 2
    a += 1
    a *= 3
    a.relu_()
    assert type(a.grad_fn).__name__ == "ReluBackward0"
    a.sum().backward()
    assert x.grad.tolist() == [6.0, 0.0, 6.0]


def test_slice_assignment_records_copy_slices():
    m = tg.tensor([[2.0, 3.0]], requires_grad=True)
    n = tg.zeros(1, 2)
    n[0, 0] = m[0, 0] ** 2
    n[0, 1] = m[0, 1] ** 3
    assert type(n.grad_fn).__name__ == "CopySlices" and n.requires_grad
    n.backward(tg.ones_like(n))
    assert m.grad.tolist() == [[4.0, 27.0]]


def test_partial_overwrite_keeps_gradient_of_the_rest():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y[1] = 0.0
    (y * tg.tensor([1.0, 10.0, 100.0])).sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 200.0]


def test_retain_grad_on_non_leaf():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    z = (y * y).sum()
    z.backward()
    assert y.grad.tolist() == [6.0, 12.0]
    assert x.grad.tolist() == [18.0, 36.0]


def test_gradient_through_views_and_transposes():
    w = tg.randn(2, 3, requires_grad=True)
    y = (w.view(3, 2).t() * 2).reshape(-1).unsqueeze(0)
    y.sum().backward()
    assert w.grad.tolist() == [[2.0] * 3] * 2


def test_row_gather_with_index_tensor_accumulates_repeats():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    idx = tg.tensor([2, 0, 2])
    x[idx].sum().backward()
    assert x.grad.tolist() == [[1, 1], [0, 0], [2, 2]]


def test_mixed_float32_float64_promotes_and_casts_gradients_back():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], dtype=tg.float64, requires_grad=True)
    c = a * b
    assert c.dtype == tg.float64
    c.sum().backward()
    assert a.grad.dtype == tg.float32 and a.grad.tolist() == [3.0, 4.0]
    assert b.grad.tolist() == [1.0, 2.0]


def test_autograd_grad_leaves_dot_grad_untouched():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    (gx,) = tg.autograd.grad((x * w).sum(), [x])
    assert gx.tolist() == [3.0, 4.0] and x.grad is None and w.grad is None


def test_gradcheck_and_variable():
    from tapegrad.autograd import Variable, gradcheck
    x = Variable(tg.randn(3, dtype=tg.float64), requires_grad=True)
    assert x.requires_grad
    assert gradcheck(lambda t: (t.tanh() * t).sum(), (x,))


def test_cat_and_stack_gradients():
    a = tg.tensor([[1.0, 2.0]], requires_grad=True)
    b = tg.tensor([[3.0, 4.0]])
    c = tg.cat([a, b, a], dim=0)
    assert c.shape == (3, 2) and type(c.grad_fn).__name__ == "CatBackward0"
    (c * tg.tensor([[1.0], [2.0], [3.0]])).sum().backward()
    assert a.grad.tolist() == [[4.0, 4.0]]
    s = tg.stack([a, a * 2], dim=2)
    assert s.shape == (1, 2, 2)


def test_many_iterations_keep_memory_bounded():
    from tapegrad.tape import TAPE
    w = tg.randn(3, 2, requires_grad=True)
    x = tg.randn(5, 3)
    for _ in range(200):                          # a dropped graph is collected by then
        loss = ((x @ w) ** 2).mean()
        loss.backward()
        w.data = w.data - 0.01 * w.grad
        w.grad.zero_()
    slots = TAPE.nslots
    for _ in range(200):
        loss = ((x @ w) ** 2).mean()
        loss.backward()
        w.data = w.data - 0.01 * w.grad
        w.grad.zero_()
    assert TAPE.nslots <= slots + 8


# ---- regressions found by the fuzz test (expected values derived by hand) ----
def test_inplace_op_that_saves_its_input():
    a = tg.tensor([1., 2.], requires_grad=True)
    b = tg.tensor([3., 4.], requires_grad=True)
    y = a.clone()
    y.mul_(b)
    y.sum().backward()
    assert a.grad.tolist() == [3., 4.] and b.grad.tolist() == [1., 2.]
    a = tg.tensor([1., 2.], requires_grad=True)
    y = a * 1
    y.pow_(2.)
    y.sum().backward()
    assert a.grad.tolist() == [2., 4.]


def test_advanced_index_assignment_stops_the_gradient():
    a = tg.tensor([1., 2., 3.], requires_grad=True)
    y = a.clone()
    y[tg.tensor([0, 2])] = 0.0
    y.sum().backward()
    assert a.grad.tolist() == [0., 1., 0.] and y.tolist() == [0., 2., 0.]


def test_gradient_of_a_tensor_written_several_times():
    a = tg.tensor([1., 2.], requires_grad=True)
    v = tg.cat([a, a])
    (g,) = tg.autograd.grad((v * tg.tensor([1., 2., 3., 4.])).sum(), [v])
    assert g.tolist() == [1., 2., 3., 4.]
    v = a * 1
    v.add_(1.0)
    v.retain_grad()
    (v * tg.tensor([1., 2.])).sum().backward()
    assert v.grad.tolist() == [1., 2.]


def test_backward_sees_inplace_write_through_a_view():
    a = tg.tensor([1., 2.], requires_grad=True)
    y = a.clone()
    y.view(-1).add_(a)
    y.backward(tg.ones(2))
    assert a.grad.tolist() == [2., 2.]


def test_max_values_modified_in_place():
    a = tg.tensor([[1., 5.], [4., 2.]], requires_grad=True)
    m = a.max(dim=1).values
    m.add_(1.0)
    m.sum().backward()
    assert a.grad.tolist() == [[0., 1.], [1., 0.]]


def test_collection_keeps_graphs_written_by_several_records():
    x = tg.ones(3, requires_grad=True)
    y = tg.cat([x, x * 2])
    for _ in range(600):
        z = x * 1.0                     # past the collection threshold
    z.sum().item()
    y.sum().backward()
    assert x.grad.tolist() == [3., 3., 3.]


def test_retain_grad_on_a_view_of_a_leaf():
    a = tg.tensor([1., 2.], requires_grad=True)
    u = a.view(2, 1)
    u.retain_grad()
    (u * 3).sum().backward()
    assert a.grad.tolist() == [3., 3.] and u.grad.tolist() == [[3.], [3.]]


def test_gradient_of_a_view_whose_base_is_used_too():
    a = tg.tensor([1., 2.], requires_grad=True)
    v = a * 2
    u = v.view(2, 1)
    u.retain_grad()
    ((u * 3).sum() + (v * 5).sum()).backward()
    assert u.grad.tolist() == [[3.], [3.]] and a.grad.tolist() == [16., 16.]
    v = a * 2
    u = v.view(2, 1)
    gv, gu = tg.autograd.grad(((u * 3).sum() + (v * 5).sum()), [v, u])
    assert gv.tolist() == [8., 8.] and gu.tolist() == [[3.], [3.]]


def test_inplace_write_through_a_view_reaches_the_base():
    a = tg.tensor([1., 2.], requires_grad=True)
    y = a * 1
    y.view(2, 1).mul_(3)
    assert y.tolist() == [3., 6.] and y.grad_fn.name() == "CopySlices"
    (y * tg.tensor([1., 10.])).sum().backward()
    assert a.grad.tolist() == [3., 30.]
    with pytest.raises(RuntimeError, match="view of a leaf"):
        a.view(2, 1).add_(1)


def test_t_of_a_vector_is_a_view():
    a = tg.tensor([1., 2.], requires_grad=True)
    b = a.t()
    assert b is not a and not b.is_leaf and b.grad_fn.name() == "TBackward0"
    (b * 3).sum().backward()
    assert a.grad.tolist() == [3., 3.]
