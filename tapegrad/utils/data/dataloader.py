"""DataLoader: batches of samples from a dataset, in the order a sampler gives.

Loading always runs in the main process. With ``num_workers > 0`` the loader behaves as if one
worker process did the loading: ``worker_init_fn(0)`` runs before the first batch and
``get_worker_info()`` describes that worker (``id=0, num_workers=1``) while the dataset is read;
no random state is reseeded, ``timeout``, ``prefetch_factor`` and ``in_order`` have no effect.
"""
import contextlib
import multiprocessing
import warnings
from typing import Generic, TypeVar

import numpy as np

from ...dtypes import is_grad_enabled
from ...random import _rng
from ...tensor import Tensor, _from_array
from .collate import default_collate, default_convert
from .dataset import IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

T_co = TypeVar("T_co", covariant=True)

__all__ = ["DataLoader", "get_worker_info", "default_collate", "default_convert"]


class _DatasetKind:
    Map = 0
    Iterable = 1


class _InfiniteConstantSampler(Sampler):
    """The sampler of an IterableDataset: None, forever (the dataset decides when to stop)."""

    def __iter__(self):
        while True:
            yield None


# ---- workers ----
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a loading worker."""

    def __init__(self, id, num_workers, seed, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return (f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, "
                f"dataset={self.dataset!r})")


_worker_info = None


def get_worker_info():
    """The current WorkerInfo while a loader with ``num_workers > 0`` reads its dataset, else
    None."""
    return _worker_info


@contextlib.contextmanager
def _as_worker(info):
    global _worker_info
    prev, _worker_info = _worker_info, info
    try:
        yield
    finally:
        _worker_info = prev


# ---- DataLoader ----
class DataLoader(Generic[T_co]):
    """Iterate over ``dataset`` in batches: ``for X, y in DataLoader(TensorDataset(X, Y),
    batch_size=32, shuffle=True): ...``. Same arguments, defaults and errors as PyTorch's.

    With the default collate_fn, a TensorDataset (or Subsets of one) is batched by one row
    gather per tensor: the same batches as stacking its samples, without a Python loop.
    """

    _initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        prefetch_factor = _check_workers(num_workers, timeout, prefetch_factor,
                                         persistent_workers, multiprocessing_context)
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order
        self._dataset_kind = _DatasetKind.Iterable if isinstance(dataset, IterableDataset) \
            else _DatasetKind.Map
        batch_size, drop_last, sampler, batch_sampler = _samplers(
            dataset, batch_size, shuffle, sampler, batch_sampler, drop_last, generator)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._workers_started = False
        self._IterableDataset_len_called = None
        self._initialized = True

    def __setattr__(self, attr, val):
        if self._initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last",
                                          "dataset", "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(attr, val)

    def __iter__(self):
        return _DataLoaderIter(self)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self):
        if self._dataset_kind == _DatasetKind.Iterable:
            length = self._IterableDataset_len_called = len(self.dataset)
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last else \
                    -(-length // self.batch_size)
            return length
        return len(self._index_sampler)


def _check_workers(num_workers, timeout, prefetch_factor, persistent_workers, context):
    """PyTorch's checks of the multiprocessing options; returns the prefetch_factor."""
    if num_workers < 0:
        raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                         "disable multiprocessing.")
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                         "let num_workers > 0 to enable multiprocessing, otherwise set "
                         "prefetch_factor to None.")
    if prefetch_factor is not None and prefetch_factor < 0:
        raise ValueError("prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")
    if context is not None:
        if num_workers == 0:
            raise ValueError(f"multiprocessing_context can only be used with multi-process "
                             f"loading (num_workers > 0), but got num_workers={num_workers}")
        methods = multiprocessing.get_all_start_methods()
        if isinstance(context, str) and context not in methods:
            raise ValueError(f"multiprocessing_context option should specify a valid start "
                             f"method in {methods!r}, but got multiprocessing_context="
                             f"{context!r}")
    return 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor


def _samplers(dataset, batch_size, shuffle, sampler, batch_sampler, drop_last, generator):
    """PyTorch's checks of the sampling options and its default samplers."""
    if isinstance(dataset, IterableDataset):
        _check_iterable_options(shuffle, sampler, batch_sampler)
    else:
        shuffle = bool(shuffle)
    if sampler is not None and shuffle:
        raise ValueError("sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                             "shuffle, sampler, and drop_last")
        batch_size, drop_last = None, False
    elif batch_size is None and drop_last:
        raise ValueError("batch_size=None option disables auto-batching and is mutually "
                         "exclusive with drop_last")
    if sampler is None:
        if isinstance(dataset, IterableDataset):
            sampler = _InfiniteConstantSampler()
        elif shuffle:
            sampler = RandomSampler(dataset, generator=generator)
        else:
            sampler = SequentialSampler(dataset)
    if batch_size is not None and batch_sampler is None:
        batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    return batch_size, drop_last, sampler, batch_sampler


def _check_iterable_options(shuffle, sampler, batch_sampler):
    if shuffle not in {False, None}:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle "
                         f"option, but got shuffle={shuffle}")
    if sampler is not None:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler "
                         f"option, but got sampler={sampler}")
    if batch_sampler is not None:
        raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler "
                         f"option, but got batch_sampler={batch_sampler}")


# ---- the fast path: rows of a TensorDataset ----
def _tensor_rows(dataset):
    """(tensors, index map or None) when each sample of `dataset` is a row of TensorDataset
    tensors, reached through plain Subsets; None otherwise."""
    index_map = None
    while getattr(type(dataset), "__getitems__", None) is Subset.__getitems__:
        idx = np.asarray(dataset.indices)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            return None
        try:
            index_map = idx if index_map is None else idx[index_map]
        except IndexError:
            return None                     # the generic path raises it when reached
        dataset = dataset.dataset
    if type(dataset).__getitem__ is not TensorDataset.__getitem__ or \
            hasattr(dataset, "__getitems__"):
        return None
    if not all(isinstance(t, Tensor) for t in dataset.tensors):
        return None
    return dataset.tensors, index_map


def _index_batches(batch_sampler):
    """The batches of `batch_sampler` as NumPy index arrays: slices of the sampler's order for a
    BatchSampler over a Sequential/RandomSampler (the same batches, without Python lists)."""
    sampler = batch_sampler.sampler if type(batch_sampler) is BatchSampler else None
    if type(sampler) not in (SequentialSampler, RandomSampler):
        yield from batch_sampler
        return
    order, size = sampler._order(), batch_sampler.batch_size
    stop = len(order) - len(order) % size if batch_sampler.drop_last else len(order)
    for i in range(0, stop, size):
        yield order[i:i + size]


def _take_rows(t, idx):
    """t[idx] for an integer index array: one gather; a NumPy copy unless autograd must see it."""
    if not t.is_floating_point() or t.requires_grad and is_grad_enabled():
        return t[idx]
    try:
        rows = t._value()[idx]
    except IndexError as e:
        raise IndexError(str(e).replace("axis", "dimension")) from None
    return _from_array(rows, t.dtype)


# ---- iteration ----
class _DataLoaderIter:
    """One pass over a DataLoader (one epoch)."""

    def __init__(self, loader):
        if loader.num_workers == 0 and loader.timeout != 0:
            raise AssertionError(f"DataLoader: timeout={loader.timeout} needs num_workers > 0 "
                                 "(loading in the main process has no timeout)")
        if loader.pin_memory:
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, "
                          "then device pinned memory won't be used.", stacklevel=3)
        self._loader = loader
        self._dataset = loader.dataset
        self._kind = loader._dataset_kind
        self._auto_collation = loader._auto_collation
        self._collate_fn = loader.collate_fn
        self._num_yielded = 0
        self._base_seed = int(_rng(loader.generator).integers(1 << 63))   # drawn as PyTorch
        self._worker = None
        if loader.num_workers > 0:
            self._start_worker(loader)
        self._rows = None
        if self._kind == _DatasetKind.Map and self._auto_collation and \
                self._collate_fn is default_collate:
            self._rows = _tensor_rows(self._dataset)
        if self._rows is not None:
            self._sampler_iter = _index_batches(loader.batch_sampler)
        else:
            self._sampler_iter = iter(loader._index_sampler)
        if self._kind == _DatasetKind.Iterable:
            with self._in_worker():
                self._dataset_iter = iter(self._dataset)
            self._ended = False

    def _start_worker(self, loader):
        self._worker = WorkerInfo(0, 1, self._base_seed, self._dataset)
        if loader.worker_init_fn is not None and not (loader.persistent_workers and
                                                      loader._workers_started):
            with self._in_worker():
                loader.worker_init_fn(0)
        loader._workers_started = True

    def _in_worker(self):
        return _as_worker(self._worker) if self._worker else contextlib.nullcontext()

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader._index_sampler)

    def __next__(self):
        index = next(self._sampler_iter)
        if self._worker is None:
            data = self._fetch(index)
        else:
            with self._in_worker():
                data = self._fetch(index)
        self._num_yielded += 1
        self._warn_iterable_length()
        return data

    def _fetch(self, index):
        if self._rows is not None:
            idx = np.asarray(index)
            if idx.ndim == 1 and idx.size and idx.dtype.kind in "iu":
                tensors, index_map = self._rows
                if index_map is not None:
                    idx = index_map[idx]
                return [_take_rows(t, idx) for t in tensors]
        if self._kind == _DatasetKind.Iterable:
            return self._fetch_iterable(index)
        if not self._auto_collation:
            return self._collate_fn(self._dataset[index])
        getitems = getattr(self._dataset, "__getitems__", None)
        data = getitems(index) if getitems else [self._dataset[i] for i in index]
        return self._collate_fn(data)

    def _fetch_iterable(self, index):
        if self._ended:
            raise StopIteration
        if not self._auto_collation:
            return self._collate_fn(next(self._dataset_iter))
        data = []
        for _ in index:
            try:
                data.append(next(self._dataset_iter))
            except StopIteration:
                self._ended = True
                break
        if not data or self._loader.drop_last and len(data) < len(index):
            raise StopIteration
        return self._collate_fn(data)

    def _warn_iterable_length(self):
        reported = self._loader._IterableDataset_len_called
        if self._kind == _DatasetKind.Iterable and reported is not None and \
                self._num_yielded > reported:
            warnings.warn(f"Length of IterableDataset {self._dataset} was reported to be "
                          f"{reported} (when accessing len(dataloader)), but "
                          f"{self._num_yielded} samples have been fetched. ", stacklevel=3)
