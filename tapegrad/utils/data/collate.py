"""default_collate / default_convert: samples to batched tensors, as in PyTorch.

Tensors are stacked, Python floats become float64 and ints int64 tensors, NumPy arrays and
scalars keep their dtype; tuples (as lists), lists, namedtuples and dicts are collated field by
field; strings and bytes are left as lists.
"""
import collections
import copy
import re

import numpy as np

from ... import dtypes as D
from ...dtypes import is_grad_enabled
from ...factory import from_numpy
from ...tensor import Tensor, _from_array, stack, tensor

_NP_STR_OBJ = re.compile(r"[SaUO]")
_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")


def _from_numpy(a):
    """torch.as_tensor of a NumPy array or scalar (or a list of scalars): the dtype is kept."""
    return from_numpy(np.asarray(a))


def default_convert(data):
    """Turn NumPy arrays and scalars inside ``data`` into tensors (used without batching)."""
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_"):
        if isinstance(data, np.ndarray) and _NP_STR_OBJ.search(data.dtype.str) is not None:
            return data
        return _from_numpy(data)
    if isinstance(data, collections.abc.Mapping):
        return _rebuild_mapping(data, {k: default_convert(data[k]) for k in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):        # namedtuple
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]                   # a list, as in PyTorch
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data


def _rebuild_mapping(elem, values):
    """A mapping of elem's type holding `values` (a plain dict if that type can't be built)."""
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def _rebuild_sequence(elem, values):
    try:
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, v in enumerate(values):
                clone[i] = v
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def collate(batch, *, collate_fn_map=None):
    """Collate a list of samples, dispatching on the type of the first through
    ``collate_fn_map`` (``{type: fn(batch, *, collate_fn_map)}``), then on containers."""
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return collate_fn_map[collate_type](batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        return _rebuild_mapping(elem, {k: collate([d[k] for d in batch],
                                                  collate_fn_map=collate_fn_map) for k in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):        # namedtuple
        return elem_type(*(collate(s, collate_fn_map=collate_fn_map)
                           for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [collate(s, collate_fn_map=collate_fn_map) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields                                           # a list, as in PyTorch
        return _rebuild_sequence(elem, fields)
    raise TypeError(_ERR.format(elem_type))


def _plain_floats(batch):
    """Float tensors of one dtype and shape, none of which autograd must see."""
    elem, grad = batch[0], is_grad_enabled()
    return elem.is_floating_point() and all(
        isinstance(t, Tensor) and t.dtype is elem.dtype and t.shape == elem.shape and
        not (grad and t.requires_grad) for t in batch)


def collate_tensor_fn(batch, *, collate_fn_map=None):
    """stack(batch, 0); plain float tensors are stacked by one NumPy copy."""
    if _plain_floats(batch):
        return _from_array(np.stack([t._value() for t in batch]), batch[0].dtype)
    return stack(batch, 0)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    if _NP_STR_OBJ.search(batch[0].dtype.str) is not None:
        raise TypeError(_ERR.format(batch[0].dtype))
    return collate([_from_numpy(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    return _from_numpy(batch)


def collate_float_fn(batch, *, collate_fn_map=None):
    return tensor(batch, dtype=D.float64)


def collate_int_fn(batch, *, collate_fn_map=None):
    return tensor(batch)


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def default_collate(batch):
    """Stack a list of samples into a batch: ``default_collate([(1, 2.0), (3, 4.0)])`` is
    ``[tensor([1, 3]), tensor([2., 4.], dtype=torch.float64)]``."""
    return collate(batch, collate_fn_map=default_collate_fn_map)
