"""tapegrad.utils.data: datasets, samplers, collation and DataLoader, against PyTorch's rules
(closed forms and statistics; torch itself where it is installed, for sequential order)."""
import collections
import math

import numpy as np
import pytest

import tapegrad
from tapegrad.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset,
                                 IterableDataset, RandomSampler, Sampler, SequentialSampler,
                                 StackDataset, Subset, SubsetRandomSampler, TensorDataset,
                                 WeightedRandomSampler, default_collate, default_convert,
                                 get_worker_info, random_split)

Point = collections.namedtuple("Point", ["x", "y"])


def arr(t):
    return np.asarray(t)


def gen(seed):
    return tapegrad.Generator().manual_seed(seed)


def xy(n=10, d=2):
    """Float rows whose values tell their index, and int labels equal to the index."""
    return tapegrad.arange(float(n * d)).reshape(n, d), tapegrad.arange(n)


def batch_indices(batches):
    """The dataset indices of loader batches made from xy(): the int labels."""
    return [arr(y).tolist() for _, y in batches]


# ---- datasets ----
def test_import_forms():
    import tapegrad.utils
    import tapegrad.utils.data as data_module
    from tapegrad.utils import data
    assert tapegrad.utils.data.DataLoader is data.DataLoader is data_module.DataLoader


def test_tensor_dataset_samples():
    X, y = xy(5, 3)
    ds = TensorDataset(X, y)
    assert len(ds) == 5
    x2, y2 = ds[2]
    np.testing.assert_array_equal(arr(x2), arr(X)[2])
    assert y2.item() == 2 and y2.dtype == tapegrad.int64


def test_tensor_dataset_size_mismatch():
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(tapegrad.zeros(5, 2), tapegrad.zeros(4))


def test_dataset_base_and_add():
    with pytest.raises(NotImplementedError):
        Dataset()[0]
    a, b = TensorDataset(tapegrad.arange(3)), TensorDataset(tapegrad.arange(3, 7))
    c = a + b
    assert isinstance(c, ConcatDataset) and len(c) == 7 and c.cumulative_sizes == [3, 7]
    assert [c[i][0].item() for i in range(-7, 7)] == list(range(7)) * 2
    with pytest.raises(ValueError, match="absolute value of index"):
        c[-8]
    with pytest.raises(AssertionError):
        ConcatDataset([])


class Count(IterableDataset):
    def __init__(self, start, stop):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self):
        return self.stop - self.start


def test_iterable_datasets_chain():
    c = Count(0, 3) + Count(3, 5)
    assert isinstance(c, ChainDataset) and list(c) == list(range(5)) and len(c) == 5
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        ConcatDataset([Count(0, 2)])


def test_subset_and_stack_dataset():
    X, y = xy(6)
    s = Subset(TensorDataset(X, y), [4, 0, 2])
    assert len(s) == 3 and [s[i][1].item() for i in range(3)] == [4, 0, 2]
    assert [p[1].item() for p in s.__getitems__([2, 0])] == [2, 4]
    d = StackDataset(x=X, y=y)
    assert len(d) == 6 and d[3]["y"].item() == 3
    assert StackDataset(X, y)[1][1].item() == 1
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        StackDataset(X, tapegrad.arange(5))
    with pytest.raises(ValueError):
        StackDataset(X, y=y)


def test_subset_subclass_must_override_getitems():
    class Bad(Subset):
        def __getitem__(self, i):
            return 0

    with pytest.raises(NotImplementedError, match="__getitems__"):
        Bad(range(3), [0])


# ---- random_split ----
def split_sizes(n, lengths):
    """PyTorch's rule: fractions get floor(n * f), then 1 each, round-robin, until n is used."""
    if not math.isclose(sum(lengths), 1) or sum(lengths) > 1:
        return list(lengths)
    sizes = [math.floor(n * f) for f in lengths]
    for i in range(n - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


@pytest.mark.parametrize("n, lengths", [(10, [3, 7]), (10, [0.3, 0.7]), (11, [0.5, 0.5]),
                                        (30, [0.3, 0.3, 0.4]), (7, [0.2] * 5), (9, [1.0]),
                                        (13, [0.1, 0.6, 0.3])])
def test_random_split_sizes_disjoint_cover(n, lengths):
    parts = random_split(range(n), lengths, generator=gen(0))
    assert [len(p) for p in parts] == split_sizes(n, lengths)
    assert all(isinstance(p, Subset) for p in parts)
    values = [p[i] for p in parts for i in range(len(p))]
    assert sorted(values) == list(range(n))                 # disjoint and covering


def test_random_split_reproducible():
    def split(**kw):
        return [p.indices for p in random_split(range(50), [20, 30], **kw)]
    assert split(generator=gen(1)) == split(generator=gen(1))
    assert split(generator=gen(1)) != split(generator=gen(2))
    tapegrad.manual_seed(3)
    first = split()
    tapegrad.manual_seed(3)
    assert split() == first


def test_random_split_errors():
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
        random_split(range(10), [1.5, -0.5])
    with pytest.warns(UserWarning) as record:
        parts = random_split(range(2), [0.5, 0.45, 0.05])
    assert [str(w.message)[:31] for w in record] == [f"Length of split at index {i} is 0"
                                                     for i in (1, 2)]
    assert [len(p) for p in parts] == split_sizes(2, [0.5, 0.45, 0.05]) == [2, 0, 0]


# ---- collate ----
@pytest.mark.parametrize("batch, dtype", [
    ([1.0, 2.5], tapegrad.float64), ([1, 2], tapegrad.int64), ([True, False], tapegrad.bool),
    ([np.float32(1), np.float32(2)], tapegrad.float32), ([np.int32(1)], tapegrad.int32),
    ([np.float64(1)], tapegrad.float64), ([np.bool_(True)], tapegrad.bool),
    ([np.zeros(3, np.float32), np.ones(3, np.float32)], tapegrad.float32),
    ([np.zeros((2, 2), np.int64)], tapegrad.int64),
    ([tapegrad.zeros(2), tapegrad.ones(2)], tapegrad.float32),
    ([tapegrad.zeros(2, dtype=tapegrad.float64)], tapegrad.float64),
    ([tapegrad.tensor(3), tapegrad.tensor(4)], tapegrad.int64)])
def test_default_collate_leaves(batch, dtype):
    out = default_collate(batch)
    assert isinstance(out, tapegrad.Tensor) and out.dtype == dtype
    np.testing.assert_array_equal(arr(out), np.stack([np.asarray(b) for b in batch]))


def test_default_collate_containers():
    assert default_collate(["a", "b"]) == ["a", "b"]
    t = default_collate([(1, 2.0, "a"), (3, 4.0, "b")])
    assert isinstance(t, list) and arr(t[0]).tolist() == [1, 3] and t[2] == ("a", "b")
    d = default_collate([{"x": np.zeros(2), "n": 1}, {"x": np.ones(2), "n": 2}])
    assert list(d) == ["x", "n"] and d["x"].shape == (2, 2) and d["x"].dtype == tapegrad.float64
    p = default_collate([Point(1, [1.0, 2.0]), Point(2, [3.0, 4.0])])
    assert isinstance(p, Point) and arr(p.x).tolist() == [1, 2]
    assert [arr(v).tolist() for v in p.y] == [[1.0, 3.0], [2.0, 4.0]]


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([object()])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([np.array(["a"])])


def test_default_convert():
    assert default_convert(3) == 3 and default_convert("s") == "s"
    out = default_convert((np.float64(1.5), np.arange(3, dtype=np.int32), 2))
    assert isinstance(out, list) and out[0].dtype == tapegrad.float64 and out[2] == 2
    assert out[1].dtype == tapegrad.int32 and arr(out[1]).tolist() == [0, 1, 2]
    assert default_convert({"a": np.ones(2)})["a"].shape == (2,)


def test_collate_keeps_autograd():
    x = tapegrad.randn(4, 3, requires_grad=True)
    batch = default_collate([x[1], x[3]])
    assert batch.requires_grad
    (batch * 2).sum().backward()
    np.testing.assert_array_equal(arr(x.grad), np.array([[0.0] * 3, [2.0] * 3] * 2))
    with tapegrad.no_grad():
        assert not default_collate([x[1], x[3]]).requires_grad


# ---- samplers ----
def test_sequential_and_batch_sampler():
    s = SequentialSampler(range(10))
    assert list(s) == list(range(10)) and len(s) == 10
    assert list(BatchSampler(s, 3, False)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert list(BatchSampler(s, 3, True)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert len(BatchSampler(s, 3, False)) == 4 and len(BatchSampler(s, 3, True)) == 3
    assert list(BatchSampler([5, 1, 2], 2, False)) == [[5, 1], [2]]


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(batch_size=-1),
                                    dict(batch_size=2.0), dict(batch_size=True),
                                    dict(drop_last=1)])
def test_batch_sampler_errors(kwargs):
    args = dict(sampler=range(3), batch_size=2, drop_last=False) | kwargs
    with pytest.raises(ValueError, match="should be a"):
        BatchSampler(**args)


def test_random_sampler():
    s = RandomSampler(range(10), generator=gen(0))
    assert len(s) == 10 and sorted(s) == list(range(10))
    r = list(RandomSampler(range(10), replacement=True, num_samples=25, generator=gen(0)))
    assert len(r) == 25 and all(0 <= i < 10 for i in r)
    many = list(RandomSampler(range(10), num_samples=25, generator=gen(0)))
    assert sorted(many[:10]) == sorted(many[10:20]) == list(range(10))
    assert len(set(many[20:])) == 5
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(range(10), num_samples=0)
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        RandomSampler(range(10), replacement=1)


def test_subset_random_and_weighted_samplers():
    s = SubsetRandomSampler([7, 3, 9], generator=gen(0))
    assert sorted(s) == [3, 7, 9] and len(s) == 3
    w = WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=gen(0))
    counts = np.bincount(list(w), minlength=3)
    assert counts[0] == 0 and len(w) == 4000
    assert chi_square(counts[1:], np.array([1000.0, 3000.0])) < 20     # df = 1
    assert sorted(WeightedRandomSampler([1, 1, 0, 1], 3, replacement=False)) == [0, 1, 3]
    with pytest.raises(RuntimeError):
        list(WeightedRandomSampler([1, 0], 2, replacement=False))
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        WeightedRandomSampler([1, 2], 0)


def test_sampler_base():
    with pytest.raises(NotImplementedError):
        iter(Sampler())


# ---- DataLoader: batching ----
@pytest.mark.parametrize("n, bs", [(10, 3), (12, 4), (1, 5), (7, 7), (5, 1)])
def test_loader_batch_counts_and_sizes(n, bs):
    X, y = xy(n)
    for drop_last in (False, True):
        loader = DataLoader(TensorDataset(X, y), bs, drop_last=drop_last)
        sizes = [len(yb) for _, yb in loader]
        expected = [bs] * (n // bs) + ([n % bs] if n % bs and not drop_last else [])
        assert sizes == expected and len(loader) == len(expected)


def test_loader_sequential_values():
    X, y = xy(10)
    batches = list(DataLoader(TensorDataset(X, y), batch_size=4))
    assert all(isinstance(b, list) and len(b) == 2 for b in batches)
    np.testing.assert_array_equal(np.concatenate([arr(b[0]) for b in batches]), arr(X))
    assert batch_indices(batches) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    Xb, yb = next(iter(DataLoader(TensorDataset(X, y), batch_size=4)))
    assert Xb.shape == (4, 2) and Xb.dtype == tapegrad.float32 and yb.dtype == tapegrad.int64


def test_loader_without_batching():
    X, y = xy(4)
    items = list(DataLoader(TensorDataset(X, y), batch_size=None))
    assert len(items) == 4 and isinstance(items[0], list)
    assert items[2][0].shape == (2,) and items[2][1].item() == 2
    assert len(DataLoader(TensorDataset(X, y), batch_size=None)) == 4


def test_loader_custom_samplers_and_collate():
    X, y = xy(5)
    ds = TensorDataset(X, y)
    assert batch_indices(DataLoader(ds, 2, sampler=[4, 3, 2, 1, 0])) == [[4, 3], [2, 1], [0]]
    assert batch_indices(DataLoader(ds, batch_sampler=[[0, 2], [1]])) == [[0, 2], [1]]
    sizes = list(DataLoader(ds, 2, collate_fn=len))
    assert sizes == [2, 2, 1]


# ---- DataLoader: shuffling ----
def epochs(loader, k):
    return [sum(batch_indices(loader), []) for _ in range(k)]


def test_shuffle_permutes_each_epoch_differently():
    loader = DataLoader(TensorDataset(*xy(20)), batch_size=6, shuffle=True)
    orders = epochs(loader, 5)
    assert all(sorted(o) == list(range(20)) for o in orders)
    assert len({tuple(o) for o in orders}) == 5


def test_shuffle_reproducible():
    ds = TensorDataset(*xy(20))
    a = epochs(DataLoader(ds, 4, shuffle=True, generator=gen(5)), 3)
    assert a == epochs(DataLoader(ds, 4, shuffle=True, generator=gen(5)), 3)
    assert a != epochs(DataLoader(ds, 4, shuffle=True, generator=gen(6)), 3)
    tapegrad.manual_seed(11)
    b = epochs(DataLoader(ds, 4, shuffle=True), 3)
    tapegrad.manual_seed(11)
    assert b == epochs(DataLoader(ds, 4, shuffle=True), 3)


def chi_square(observed, expected):
    return float(((observed - expected) ** 2 / expected).sum())


def shuffle_statistics(orders, n):
    """Chi-square statistics and degrees of freedom of (position, item) counts and of the
    (first, second) item pairs, both uniform for a uniform shuffler."""
    orders = np.asarray(orders)
    e = len(orders)
    pos = np.zeros((n, n))
    np.add.at(pos, (np.tile(np.arange(n), e), orders.ravel()), 1)
    pairs = np.zeros((n, n))
    np.add.at(pairs, (orders[:, 0], orders[:, 1]), 1)
    off = ~np.eye(n, dtype=bool)
    return [(chi_square(pos, e / n), (n - 1) ** 2),
            (chi_square(pairs[off], e / (n * (n - 1))), n * (n - 1) - 1)]


def looks_uniform(orders, n):
    """A loose bound (3x the degrees of freedom, about 10 standard deviations here)."""
    return all(stat < 3 * df for stat, df in shuffle_statistics(orders, n))


def test_shuffle_is_uniform():
    n, e = 8, 1600
    loader = DataLoader(TensorDataset(tapegrad.arange(n)), batch_size=n, shuffle=True,
                        generator=gen(0))
    orders = [arr(next(iter(loader))[0]).tolist() for _ in range(e)]
    assert looks_uniform(orders, n)


def test_uniformity_check_rejects_broken_shufflers():
    n, e = 8, 1600
    rng = np.random.default_rng(0)
    fixed = [list(range(n))] * e
    rotations = [np.roll(np.arange(n), rng.integers(n)).tolist() for _ in range(e)]
    assert not looks_uniform(fixed, n) and not looks_uniform(rotations, n)
    assert looks_uniform([rng.permutation(n).tolist() for _ in range(e)], n)


def test_random_sampler_with_global_seed_draws_fresh_orders():
    s = RandomSampler(range(30))
    assert list(s) != list(s)


# ---- DataLoader: the row-gather path equals the generic path ----
def generic(batch):
    return default_collate(batch)          # not default_collate itself: no row gather


def assert_same_batches(fast, slow):
    assert len(fast) == len(slow)
    for bf, bs in zip(fast, slow):
        assert type(bf) is type(bs) and len(bf) == len(bs)
        for tf, ts in zip(bf, bs):
            assert tf.dtype == ts.dtype and tf.shape == ts.shape
            assert tf.requires_grad == ts.requires_grad
            np.testing.assert_array_equal(arr(tf.detach()), arr(ts.detach()))


def dataset_variants():
    X, y = xy(11, 3)
    w = tapegrad.randn(11, 2, 2, dtype=tapegrad.float64)
    flags = tapegrad.arange(11) % 2 == 0
    full = TensorDataset(X, y, w, flags)
    return {"tensors": full, "one": TensorDataset(X),
            "subset": random_split(full, [0.7, 0.3], generator=gen(2))[0],
            "nested": Subset(Subset(full, list(range(10, -1, -1))), [1, 5, -1, 0])}


@pytest.mark.parametrize("name", ["tensors", "one", "subset", "nested"])
@pytest.mark.parametrize("options", [dict(batch_size=4), dict(batch_size=3, drop_last=True),
                                     dict(batch_size=4, shuffle=True),
                                     dict(batch_size=5, shuffle=True, drop_last=True),
                                     dict(batch_size=2, sampler=[3, 1, 2]),
                                     dict(batch_sampler=[[2, 0], [1]])])
def test_row_gather_equals_generic(name, options):
    ds = dataset_variants()[name]
    rand = "sampler" not in options and "batch_sampler" not in options
    load = (lambda **kw: DataLoader(ds, generator=gen(7), **options, **kw)) if rand else \
        (lambda **kw: DataLoader(ds, **options, **kw))
    assert iter(load())._rows is not None and iter(load(collate_fn=generic))._rows is None
    assert_same_batches(list(load()), list(load(collate_fn=generic)))


def test_row_gather_with_replacement_sampler():
    ds = dataset_variants()["tensors"]

    def load(**kw):
        s = RandomSampler(ds, replacement=True, num_samples=17, generator=gen(3))
        return list(DataLoader(ds, 4, sampler=s, **kw))
    assert_same_batches(load(), load(collate_fn=generic))


def test_batches_are_new_tensors():
    X, y = xy(6)
    Xb, yb = next(iter(DataLoader(TensorDataset(X, y), batch_size=6)))
    assert not Xb.requires_grad and not yb.requires_grad
    Xb.add_(100.0)
    yb[0] = 50
    np.testing.assert_array_equal(arr(X), np.arange(12.0).reshape(6, 2))
    assert arr(y).tolist() == list(range(6))


def test_batches_track_grad_of_dataset_tensors():
    X = tapegrad.randn(7, 2, requires_grad=True)
    loader = DataLoader(TensorDataset(X), batch_size=3, shuffle=True)
    for (Xb,) in loader:
        assert Xb.requires_grad
        (Xb * 3).sum().backward()
    np.testing.assert_array_equal(arr(X.grad), np.full((7, 2), 3.0))
    with tapegrad.no_grad():
        assert not next(iter(loader))[0].requires_grad


def test_row_gather_index_error():
    ds = TensorDataset(*xy(4))
    with pytest.raises(IndexError, match="index 9 is out of bounds for dimension 0 with size 4"):
        list(DataLoader(ds, batch_sampler=[[0, 9]]))


# ---- DataLoader: other datasets and options ----
class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return i, float(i * i), np.full(2, i, np.float32)

    def __len__(self):
        return self.n


def test_custom_dataset_loader():
    batches = list(DataLoader(Squares(5), batch_size=2))
    i, sq, v = batches[0]
    assert i.dtype == tapegrad.int64 and sq.dtype == tapegrad.float64
    assert v.dtype == tapegrad.float32 and v.shape == (2, 2)
    assert [arr(b[1]).tolist() for b in batches] == [[0.0, 1.0], [4.0, 9.0], [16.0]]


def test_getitems_is_used():
    class Batched(Squares):
        def __getitems__(self, indices):
            return [(-i, 0.0, np.zeros(2, np.float32)) for i in indices]

    assert arr(next(iter(DataLoader(Batched(4), batch_size=3)))[0]).tolist() == [0, -1, -2]


def test_iterable_dataset_loader():
    ds = Count(0, 7)
    assert [arr(b).tolist() for b in DataLoader(ds, batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(DataLoader(ds, batch_size=3)) == 3
    assert len(list(DataLoader(ds, batch_size=3, drop_last=True))) == 2
    assert len(DataLoader(ds, batch_size=3, drop_last=True)) == 2
    assert list(DataLoader(ds, batch_size=None)) == list(range(7))


def test_iterable_dataset_length_warning():
    class Liar(Count):
        def __len__(self):
            return 2

    loader = DataLoader(Liar(0, 4), batch_size=None)
    assert len(loader) == 2
    with pytest.warns(UserWarning, match="was reported to be 2"):
        assert list(loader) == [0, 1, 2, 3]


def test_num_workers_load_in_main_process():
    seen = []

    class Sharded(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            seen.append(None if info is None else (info.id, info.num_workers))
            return iter(range(5))

    calls = []
    loader = DataLoader(Sharded(), batch_size=2, num_workers=2, worker_init_fn=calls.append)
    assert [arr(b).tolist() for b in loader] == [[0, 1], [2, 3], [4]]
    assert calls == [0] and seen == [(0, 1)] and get_worker_info() is None
    list(loader)
    assert calls == [0, 0]                          # a fresh worker every epoch
    persistent = DataLoader(Sharded(), num_workers=1, persistent_workers=True,
                            worker_init_fn=calls.append)
    list(persistent), list(persistent)
    assert calls == [0, 0, 0]
    assert loader.prefetch_factor == 2
    X, y = xy(9)
    for shuffle in (False, True):
        assert_same_batches(
            list(DataLoader(TensorDataset(X, y), 4, shuffle, num_workers=3, generator=gen(1))),
            list(DataLoader(TensorDataset(X, y), 4, shuffle, generator=gen(1))))


def test_timeout_and_pin_memory():
    ds = TensorDataset(*xy(4))
    with pytest.raises(AssertionError, match="timeout"):
        iter(DataLoader(ds, timeout=1))
    assert len(list(DataLoader(ds, timeout=1, num_workers=1))) == 4
    with pytest.warns(UserWarning, match="pin_memory"):
        iter(DataLoader(ds, pin_memory=True))


ds4 = TensorDataset(tapegrad.zeros(4))
BAD_OPTIONS = [
    (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], shuffle=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], sampler=[0]), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_size=None, drop_last=True), "mutually exclusive with drop_last"),
    (dict(batch_size=0), "batch_size should be a positive integer"),
    (dict(num_workers=-1), "num_workers option should be non-negative"),
    (dict(timeout=-1), "timeout option should be non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified"),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    (dict(multiprocessing_context="spawn"), "multiprocessing_context can only be used"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_loader_option_errors(options, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(ds4, **options)


@pytest.mark.parametrize("options", [dict(shuffle=True), dict(sampler=[0]),
                                     dict(batch_sampler=[[0]])])
def test_iterable_dataset_option_errors(options):
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified"):
        DataLoader(Count(0, 3), **options)


def test_loader_attributes_frozen():
    loader = DataLoader(ds4, batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 3
    loader.num_workers = 0
    assert isinstance(loader.batch_sampler, BatchSampler)
    assert isinstance(loader.sampler, SequentialSampler) and loader.collate_fn is default_collate


# ---- against torch (sequential order) ----
def same_as_torch(ours, theirs, torch):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, tapegrad.Tensor)
        assert str(ours.dtype) == str(theirs.dtype) and tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_array_equal(arr(ours.detach()), theirs.detach().numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for k in theirs:
            same_as_torch(ours[k], theirs[k], torch)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same_as_torch(a, b, torch)
    else:
        assert type(ours) is type(theirs) and ours == theirs


class Items:
    """A map-style dataset (for both libraries) returning make(i)."""

    def __init__(self, n, make):
        self.n, self.make = n, make

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.make(i)

    def __len__(self):
        return self.n


def make_datasets(torch, n):
    Xn = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    yn = np.arange(n) % 3
    makers = {
        "numbers": lambda i: (i, i * 0.5, bool(i % 2)),
        "dicts": lambda i: {"x": np.full(2, i, np.float64), "label": i, "name": f"s{i}"},
        "numpy": lambda i: (Xn[i], np.int32(i), np.float32(i)),
        "namedtuple": lambda i: Point([i, i + 1], {"v": float(i)}),
    }
    out = {"tensors": (TensorDataset(tapegrad.from_numpy(Xn), tapegrad.from_numpy(yn)),
                       torch.utils.data.TensorDataset(torch.from_numpy(Xn),
                                                      torch.from_numpy(yn)))}
    for name, make in makers.items():
        out[name] = (Items(n, make), Items(n, make))
    return out


@pytest.mark.parametrize("name", ["tensors", "numbers", "dicts", "numpy", "namedtuple"])
@pytest.mark.parametrize("options", [dict(batch_size=4), dict(batch_size=3, drop_last=True),
                                     dict(batch_size=None), dict(batch_size=1)])
def test_loader_like_torch(name, options):
    torch = pytest.importorskip("torch")
    ours, theirs = make_datasets(torch, 10)[name]
    a = DataLoader(ours, **options)
    b = torch.utils.data.DataLoader(theirs, **options)
    assert len(a) == len(b)
    same_as_torch(list(a), list(b), torch)


@pytest.mark.parametrize("batch", [
    [1.0, 2.5], [1, 2], [True, False], [1, 2.5], ["a", "b"], [(1, "x"), (2, "y")],
    [np.float32(1), np.float32(2)], [np.zeros((2, 3), np.int16), np.ones((2, 3), np.int16)],
    [{"a": [1, 2], "b": (0.5,)}, {"a": [3, 4], "b": (1.5,)}], [np.array(2.0), np.array(3.0)]])
def test_default_collate_like_torch(batch):
    torch = pytest.importorskip("torch")
    same_as_torch(default_collate(batch), torch.utils.data.default_collate(batch), torch)
    same_as_torch(default_convert(batch[0]), torch.utils.data.default_convert(batch[0]), torch)


def test_splits_and_batch_samplers_like_torch():
    torch = pytest.importorskip("torch")
    for n, lengths in [(10, [0.3, 0.7]), (11, [0.5, 0.5]), (7, [0.2] * 5), (10, [4, 6])]:
        theirs = torch.utils.data.random_split(range(n), lengths)
        assert [len(p) for p in random_split(range(n), lengths)] == [len(p) for p in theirs]
    for bs, drop in [(3, False), (3, True), (5, False), (20, True)]:
        ours = BatchSampler(SequentialSampler(range(11)), bs, drop)
        theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(11)),
                                               bs, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_option_errors_like_torch(options, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=message):
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4)), **options)
