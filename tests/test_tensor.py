"""Tensor API: dtypes and promotion, creation, printing, indexing and PyTorch's errors."""
import numpy as np
import pytest

import tapegrad as tg


@pytest.mark.parametrize("make,dtype", [
    (lambda: tg.tensor([0.2, 0.5]), tg.float32), (lambda: tg.randn(2), tg.float32),
    (lambda: tg.zeros(2), tg.float32), (lambda: tg.arange(4.0), tg.float32),
    (lambda: tg.linspace(0, 1, 5), tg.float32), (lambda: tg.tensor([1, 2, 3]), tg.int64),
    (lambda: tg.arange(4), tg.int64), (lambda: tg.tensor(np.zeros(2)), tg.float64),
    (lambda: tg.tensor([1.0]) > 0, tg.bool), (lambda: tg.tensor([1.0]) * 2.5, tg.float32),
    (lambda: tg.tensor([1.0]) ** tg.tensor([2]), tg.float32),
    (lambda: tg.tensor([1, 2]) * 1.5, tg.float32), (lambda: tg.tensor([1, 2]) / 2, tg.float32),
    (lambda: tg.tensor([1.0]) + tg.tensor(2.0, dtype=tg.float64), tg.float32),
    (lambda: tg.tensor([1]) + tg.tensor(2.0, dtype=tg.float64), tg.float64),
    (lambda: tg.full((2,), 3), tg.int64), (lambda: tg.FloatTensor([[2, 3]]), tg.float32)])
def test_dtypes_follow_pytorch(make, dtype):
    assert make().dtype is dtype
    assert tg.float is tg.float32


def test_repr_and_format_like_pytorch():
    assert repr(tg.tensor([19.0], requires_grad=True) + 0) == \
        "tensor([19.], grad_fn=<AddBackward0>)"
    assert repr(tg.tensor([0.2, 0.5])) == "tensor([0.2000, 0.5000])"
    assert repr(tg.tensor([1, 2, 3])) == "tensor([1, 2, 3])"
    assert repr(tg.tensor(3.0, requires_grad=True)) == "tensor(3., requires_grad=True)"
    assert repr(tg.tensor([1.0], dtype=tg.float64)) == "tensor([1.], dtype=torch.float64)"
    assert repr(tg.tensor([[4.0, 3.0], [2.0, 6.0]])) == "tensor([[4., 3.],\n        [2., 6.]])"
    assert f"{tg.tensor(1.5):f}" == "1.500000"
    assert "{:+.2f}".format(tg.tensor(2.0)) == "+2.00"
    assert repr(tg.zeros(2, 3).shape) == "torch.Size([2, 3])"


def test_scalars_len_iteration_and_bool():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert len(t) == 2 and [r.tolist() for r in t] == [[1.0, 2.0], [3.0, 4.0]]
    assert t[1, 0].item() == 3.0 and bool(tg.tensor([1.0]))
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bool(t)
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        t.item()
    with pytest.raises(TypeError, match="0-d tensor"):
        len(tg.tensor(1.0))


def test_indexing_matches_numpy():
    a = np.arange(24.0).reshape(2, 3, 4)
    t = tg.tensor(a)
    for idx in [0, -1, (1, 2), (slice(None), 1), (Ellipsis, 2), (None, 0), (0, slice(1, 3)),
                (slice(None), slice(None, None, 2), -1), ([1, 0],), (0, [2, 2, 1])]:
        np.testing.assert_array_equal(t[idx].numpy(), a[idx])
    np.testing.assert_array_equal(t[t > 20].numpy(), a[a > 20])


def test_out_of_range_index_raises_index_error():
    t = tg.zeros(3, 2)
    with pytest.raises(IndexError, match="out of bounds"):
        t[3]
    with pytest.raises(IndexError, match="out of bounds"):
        t[tg.tensor([0, 5])]
    with pytest.raises(IndexError, match="out of bounds"):
        t[0, -3] = 1.0


@pytest.mark.parametrize("f,match", [
    (lambda: tg.zeros(3, 4) @ tg.zeros(5, 6), r"cannot be multiplied \(3x4 and 5x6\)"),
    (lambda: tg.zeros(3) @ tg.zeros(4), "inconsistent tensor size"),
    (lambda: tg.zeros(3) + tg.zeros(4), "size of tensor a \\(3\\) must match"),
    (lambda: tg.zeros(2, 3).view(4, 2), "invalid for input of size 6"),
    (lambda: tg.zeros(2, 3).expand(4, 3), "expanded size"),
    (lambda: tg.cat([tg.zeros(2, 3), tg.zeros(2, 4)]), "Sizes of tensors must match"),
    (lambda: tg.zeros(2).sum(dim=3), "Dimension out of range"),
    (lambda: tg.zeros(2, dtype=tg.float64) @ tg.zeros(2), "same dtype")])
def test_errors_name_the_op_and_shapes(f, match):
    with pytest.raises((RuntimeError, IndexError), match=match):
        f()


def test_normal_and_randn_call_forms_and_seeding():
    tg.manual_seed(3)
    a = tg.randn(2, 3)
    tg.manual_seed(3)
    assert tg.randn((2, 3)).tolist() == a.tolist()
    assert tg.randn(()).shape == () and tg.randn(size=(), requires_grad=True).requires_grad
    assert tg.normal(0.0, 1.0, (4,)).shape == (4,)
    assert tg.normal(tg.zeros(3), 1.0).shape == (3,)
    assert tg.normal(2.0, tg.ones(2, 2)).shape == (2, 2)
    assert tg.normal(tg.zeros(3), tg.ones(3)).shape == (3,)
    x = tg.normal(5.0, 0.1, (20000,))
    assert abs(x.mean().item() - 5.0) < 0.01


def test_device_and_cuda():
    assert not tg.cuda.is_available()
    t = tg.zeros(2, device="cpu")
    assert str(t.device) == "cpu" and tg.device("cpu") == t.device
