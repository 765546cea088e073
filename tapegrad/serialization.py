"""tapegrad.save / tapegrad.load: checkpoints in a safe file format (no pickle).

A file is a zip archive (entries stored uncompressed) holding ``tapegrad.json`` -- the format
name, its version and the structure of the saved object -- and one ``tensors/<i>.npy`` entry per
tensor or NumPy array. Loading builds only tensors, arrays, numbers, strings and containers:
nothing in a file can run code.
"""
import io
import json
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections import Counter, OrderedDict

import numpy as np

from . import dtypes as D
from .compile import Quiet
from .tensor import Tensor, tensor

FORMAT = "tapegrad"
VERSION = 1
_MANIFEST = "tapegrad.json"
_DATE = (1980, 1, 1, 0, 0, 0)       # fixed entry times: the same object always gives the same bytes
_ARRAY_KINDS = "biufcmM"            # NumPy bools, numbers, datetimes (no objects, records)
_DTYPES = {d.name: d for d in D.ALL}
_DICTS = {"dict": dict, "OrderedDict": OrderedDict, "Counter": Counter}
_SEQUENCES = {"tuple": tuple, "set": set, "frozenset": frozenset}
# what a damaged file can make the zip, JSON and .npy readers raise
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, KeyError, ValueError, TypeError,
           IndexError, EOFError, OSError, NotImplementedError, OverflowError, RecursionError,
           struct.error)


def _is_path(f):
    return isinstance(f, (str, os.PathLike))


def _name_of(f):
    if _is_path(f):
        return f"'{os.fspath(f)}'"
    name = getattr(f, "name", None)
    return f"'{name}'" if isinstance(name, str) else f"<{type(f).__name__}>"


# ---- save ----
def save(obj, f, pickle_module=None, pickle_protocol=2, _use_new_zipfile_serialization=True,
         _disable_byteorder_record=False):
    """Save tensors, NumPy arrays, numbers, strings, None and dicts/lists/tuples of them to f
    (a path or a binary file object), e.g. ``tapegrad.save(model.state_dict(), "model.pt")``.
    The pickle arguments are accepted for PyTorch compatibility and ignored: nothing is pickled."""
    writer = _Writer()
    root = writer.encode(obj, "obj")           # refuses what cannot be stored, before any write
    manifest = {"format": FORMAT, "version": VERSION, "root": root}
    if _is_path(f):
        parent = os.path.dirname(os.path.abspath(os.fspath(f)))
        if not os.path.isdir(parent):
            raise RuntimeError(f"Parent directory {parent} does not exist.")
        with open(f, "wb") as fh:
            _write_archive(fh, manifest, writer.arrays)
        return
    if not callable(getattr(f, "write", None)):
        raise AttributeError("expected 'f' to be string, path, or a file-like object with a "
                             "'write' attribute")
    _write_archive(f, manifest, writer.arrays)
    if callable(getattr(f, "flush", None)):
        f.flush()


def _entry_info(name):
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.external_attr = 0o644 << 16
    return info


def _write_archive(fh, manifest, arrays):
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(_entry_info(_MANIFEST), json.dumps(manifest, allow_nan=False))
        for i, arr in enumerate(arrays):
            with zf.open(_entry_info(f"tensors/{i}.npy"), "w",
                         force_zip64=arr.nbytes > 2 ** 30) as out:
                np.lib.format.write_array(out, arr, version=(1, 0), allow_pickle=False)


def _refusal(obj, where):
    from .nn import Module
    from .optim import Optimizer
    cls = type(obj)
    root = cls.__module__.split(".")[0]
    if root == "torch":
        hint = ("convert PyTorch objects first (tapegrad.tensor(t.detach().numpy()) for a "
                "torch tensor) or save them with torch.save")
    elif isinstance(obj, Module):
        hint = "save model.state_dict() instead (and restore it with model.load_state_dict)"
    elif isinstance(obj, Optimizer):
        hint = "save optimizer.state_dict() instead (and restore it with load_state_dict)"
    elif callable(getattr(obj, "state_dict", None)):
        hint = "save its state_dict() instead"
    elif callable(obj):
        hint = "code (functions, lambdas, classes) is never stored; save the data it uses"
    else:
        hint = ("only tapegrad tensors, NumPy arrays, Python numbers, strings, bytes, None and "
                "lists, tuples, sets and dicts of them can be stored")
    name = cls.__qualname__ if root in ("builtins", "tapegrad") else \
        f"{cls.__module__}.{cls.__qualname__}"
    return f"tapegrad.save cannot store {name} objects{_at(where)}; {hint}"


def _at(where):
    return "" if where == "obj" else f" (found at {where})"


class _Writer:
    """Turns an object into a JSON tree; tensor and array values become .npy entries."""

    def __init__(self):
        self.arrays = []        # the value of .npy entry i
        self.memo = {}          # id(object) -> (entry index, object): a tensor is stored once
        self.open = set()       # ids of the containers being encoded (a cycle is refused)

    def encode(self, obj, where):
        t = type(obj)
        if obj is None or t in (bool, str):
            return obj
        if t is int:
            return obj if abs(obj) < 2 ** 63 else {"type": "int", "hex": hex(obj)}
        if t is float:
            if math.isfinite(obj):
                return obj                      # JSON keeps a float's repr: exact
            return {"type": "float", "bits": struct.pack(">d", obj).hex()}
        if t is complex:
            return {"type": "complex", "real": self.encode(obj.real, where),
                    "imag": self.encode(obj.imag, where)}
        if t in (bytes, bytearray):
            return {"type": t.__name__, "hex": obj.hex()}
        if isinstance(obj, Tensor):
            return self.tensor(obj, where)
        if t is np.ndarray or isinstance(obj, np.generic):
            return self.array(obj, where)
        if t is D.dtype:
            return {"type": "dtype", "name": obj.name}
        if t is D.device:
            return {"type": "device", "device": obj.type, "index": obj.index}
        if t is D.Size:
            return {"type": "size", "items": [int(d) for d in obj]}
        if t in (list, tuple, set, frozenset) or t in _DICTS.values():
            return self.container(obj, where)
        raise TypeError(_refusal(obj, where))

    def container(self, obj, where):
        if id(obj) in self.open:
            raise ValueError(f"tapegrad.save cannot store a {type(obj).__name__} that contains "
                             f"itself{_at(where)}")
        self.open.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = [[self.encode(k, f"{where} key {k!r}"),
                          self.encode(v, f"{where}[{k!r}]")] for k, v in obj.items()]
                node = {"type": type(obj).__name__, "items": items}
                if type(obj) is OrderedDict and hasattr(obj, "_metadata"):    # of state_dict()
                    node["metadata"] = self.encode(obj._metadata, f"{where}._metadata")
                return node
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
            return items if type(obj) is list else {"type": type(obj).__name__, "items": items}
        finally:
            self.open.discard(id(obj))

    def entry(self, obj, value):
        """The index of obj's .npy entry (value() gives the array the first time)."""
        hit = self.memo.get(id(obj))
        if hit is None:
            hit = self.memo[id(obj)] = (len(self.arrays), obj)
            self.arrays.append(value())
        return hit[0]

    def tensor(self, t, where):
        from .nn import Parameter
        if type(t) not in (Tensor, Parameter):
            raise TypeError(f"tapegrad.save cannot store {type(t).__name__} objects (a Tensor "
                            f"subclass){_at(where)}; save tensor.detach() instead")

        def value():
            with Quiet():                       # saving is a side effect: no compile guard
                return np.asarray(t._value())

        return {"type": "parameter" if type(t) is Parameter else "tensor",
                "data": self.entry(t, value), "dtype": t.dtype.name, "shape": list(t.shape),
                "requires_grad": t.requires_grad}

    def array(self, a, where):
        if a.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"tapegrad.save cannot store NumPy {type(a).__name__} objects of "
                            f"dtype {a.dtype}{_at(where)}; only arrays and scalars of bools, "
                            "numbers and datetimes can be stored")
        if type(a) is np.ndarray:
            return {"type": "ndarray", "data": self.entry(a, lambda: a),
                    "dtype": a.dtype.str, "shape": list(a.shape)}
        return {"type": "numpy_scalar", "data": self.entry(a, lambda: np.asarray(a)),
                "dtype": a.dtype.str}


# ---- load ----
def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None,
         **pickle_load_args):
    """Load an object saved by tapegrad.save from f (a path or a binary file object).
    Tensors always load on the CPU; map_location may be None, 'cpu' or device('cpu').
    A file that is not a tapegrad file, or is damaged, raises RuntimeError."""
    if weights_only and pickle_module is not None:
        raise RuntimeError("Can not safely load weights when explicit pickle_module is specified")
    _check_map_location(map_location)
    pickle_load_args.pop("encoding", None)
    if pickle_load_args:
        warnings.warn(f"tapegrad.load ignores {sorted(pickle_load_args)}: files hold no pickle",
                      stacklevel=2)
    if _is_path(f):
        with open(f, "rb") as fh:               # mmap would not help: values are copied
            return _read(fh, _name_of(f))
    if mmap:
        raise ValueError("f must be a file path in order to use the mmap argument")
    try:
        f.seek(f.tell())
    except (io.UnsupportedOperation, AttributeError) as e:
        raise type(e)(f"{e}. You can only tapegrad.load from a file that is seekable. Please "
                      "pre-load the data into a buffer like io.BytesIO and try to load from it "
                      "instead.") from None
    return _read(f, _name_of(f))


def _check_map_location(loc):
    if isinstance(loc, dict):
        loc = loc.get("cpu")                    # files only hold CPU tensors
    if loc is None:
        return
    if isinstance(loc, (str, bytes, D.device)) or type(loc).__name__ == "device":
        where = loc.decode() if isinstance(loc, bytes) else str(loc)
        kind = where.split(":")[0]
        if kind == "cpu":
            return
        if kind == "cuda":
            raise RuntimeError("Attempting to deserialize object on a CUDA device but "
                               "tapegrad.cuda.is_available() is False. If you are running on a "
                               "CPU-only machine, please use tapegrad.load with "
                               "map_location=tapegrad.device('cpu') to map your storages to the "
                               "CPU.")
        raise RuntimeError(f"tapegrad.load cannot map tensors to device '{where}': tapegrad runs "
                           "on the CPU only (use map_location='cpu' or None)")
    if callable(loc):
        raise RuntimeError("tapegrad.load does not support a callable map_location: tensors "
                           "always load on the CPU (use map_location='cpu' or None)")
    raise TypeError(f"tapegrad.load: map_location should be None, a str, a device or a dict, "
                    f"not {type(loc).__name__}")


def _read(fh, name):
    try:
        zf = zipfile.ZipFile(fh)
    except _DAMAGE as e:
        raise RuntimeError(f"tapegrad.load: {name} is not a tapegrad file: it is not a zip "
                           f"archive, or it is truncated or damaged ({e})") from None
    with zf:
        if _MANIFEST not in zf.namelist():
            raise RuntimeError(_foreign(zf, name))
        try:
            manifest = json.loads(_member(zf, _MANIFEST).decode("utf-8"))
            _check_version(manifest, name)
            return _Reader(zf).decode(manifest["root"])
        except _DAMAGE as e:
            raise RuntimeError(f"tapegrad.load: {name} is damaged ({type(e).__name__}: {e})") \
                from None


def _foreign(zf, name):
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist()):
        return (f"tapegrad.load: {name} was written by torch.save (pickle), not by "
                "tapegrad.save; load it with torch.load(f, weights_only=True) and convert its "
                "tensors, e.g. tapegrad.tensor(t.numpy())")
    return f"tapegrad.load: {name} is a zip archive but not a tapegrad file (no {_MANIFEST})"


def _check_version(manifest, name):
    if type(manifest) is not dict or manifest.get("format") != FORMAT:
        raise ValueError(f"{_MANIFEST} does not name the {FORMAT} format")
    version = manifest.get("version")
    if type(version) is not int or version < 1:
        raise ValueError(f"bad format version {version!r}")
    if version > VERSION:
        raise RuntimeError(f"tapegrad.load: {name} was written in {FORMAT} format version "
                           f"{version}, newer than this tapegrad reads (up to {VERSION}); "
                           "upgrade tapegrad to load it")


def _member(zf, name):
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"entry {name} is compressed (tapegrad stores entries uncompressed)")
    return zf.read(info)                    # checks the entry's CRC


def _check(cond, what):
    if not cond:
        raise ValueError(what)


def _shape(node):
    shape = node["shape"]
    _check(type(shape) is list and all(type(d) is int and d >= 0 for d in shape),
           f"bad shape {shape!r:.80}")
    return tuple(shape)


class _Reader:
    """Builds the object described by a JSON tree, checking every node."""

    def __init__(self, zf):
        self.zf = zf
        self.loaded = {}            # entry index -> (node, object): a shared tensor stays shared

    def decode(self, node):
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [self.decode(v) for v in node]
        _check(type(node) is dict, f"bad node {node!r:.80}")
        kind = node.get("type")
        build = getattr(self, f"load_{kind}", None) if type(kind) is str else None
        _check(build is not None, f"unknown entry type {kind!r:.80}")
        return build(node)

    # ---- numbers, bytes and torch-like values ----
    def load_int(self, node):
        return int(node["hex"], 16)

    def load_float(self, node):
        bits = bytes.fromhex(node["bits"])
        return struct.unpack(">d", bits)[0]

    def load_complex(self, node):
        parts = self.decode(node["real"]), self.decode(node["imag"])
        _check(all(type(p) is float for p in parts), "bad complex number")
        return complex(*parts)

    def load_bytes(self, node):
        return bytes.fromhex(node["hex"])

    def load_bytearray(self, node):
        return bytearray.fromhex(node["hex"])

    def load_dtype(self, node):
        return _DTYPES[node["name"]]

    def load_device(self, node):
        kind, index = node["device"], node["index"]
        _check(kind in ("cpu", "cuda", "meta") and (index is None or type(index) is int),
               f"bad device {kind!r} {index!r}")
        return D.device(kind, index)

    def load_size(self, node):
        return D.Size(_shape({"shape": node["items"]}))

    # ---- containers ----
    def _items(self, node):
        items = node["items"]
        _check(type(items) is list, "bad container")
        return items

    def _dict(self, node):
        out = _DICTS[node["type"]]()
        for pair in self._items(node):
            _check(type(pair) is list and len(pair) == 2, "bad dict item")
            out[self.decode(pair[0])] = self.decode(pair[1])
        if "metadata" in node:
            _check(type(out) is OrderedDict, "metadata on a dict that is not an OrderedDict")
            out._metadata = self.decode(node["metadata"])
        return out

    def _sequence(self, node):
        return _SEQUENCES[node["type"]](self.decode(v) for v in self._items(node))

    load_dict = load_OrderedDict = load_Counter = _dict
    load_tuple = load_set = load_frozenset = _sequence

    # ---- tensors and arrays ----
    def _entry(self, node, build):
        """The object of node's .npy entry: built once, then the same object again."""
        index = node["data"]
        _check(type(index) is int, f"bad entry index {index!r}")
        hit = self.loaded.get(index)
        if hit is None:
            hit = self.loaded[index] = (node, build(self._npy(index)))
        _check(hit[0] == node, f"entry {index} is described twice differently")
        return hit[1]

    def _npy(self, index):
        data = _member(self.zf, f"tensors/{index}.npy")
        fp = io.BytesIO(data)
        version = np.lib.format.read_magic(fp)
        _check(version in ((1, 0), (2, 0)), f"unsupported .npy version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fp)
        _check(dtype.kind in _ARRAY_KINDS and dtype.names is None and not dtype.hasobject and
               dtype.shape == (), f"entry {index} has unsupported dtype {dtype}")
        count = math.prod(shape)
        _check(len(data) - fp.tell() == count * dtype.itemsize,
               f"entry {index} holds {len(data) - fp.tell()} bytes, not {count} x {dtype}")
        if count == 0:
            return np.zeros(shape, dtype)
        flat = np.frombuffer(data, dtype, count, offset=fp.tell())
        return flat.reshape(shape, order="F" if fortran else "C")

    def _tensor(self, node, parameter):
        dt = _DTYPES[node["dtype"]]
        shape, rg = _shape(node), node["requires_grad"]
        _check(type(rg) is bool and (dt.is_floating_point or not (rg or parameter)),
               f"bad requires_grad {rg!r} or parameter of dtype {dt}")

        def build(arr):
            _check(arr.shape == shape and arr.dtype.newbyteorder("=") == dt.np,
                   f"entry {node['data']} is {arr.dtype} {arr.shape}, not {dt} {shape}")
            t = tensor(arr.astype(dt.np, copy=False), dtype=dt, requires_grad=rg and not parameter)
            if parameter:
                from .nn import Parameter
                return Parameter(t, requires_grad=rg)
            return t

        return self._entry(node, build)

    def load_tensor(self, node):
        return self._tensor(node, parameter=False)

    def load_parameter(self, node):
        return self._tensor(node, parameter=True)

    def load_ndarray(self, node):
        def build(arr):
            _check(arr.dtype.str == node["dtype"] and arr.shape == _shape(node),
                   f"entry {node['data']} does not match its description")
            return arr.copy(order="K")

        return self._entry(node, build)

    def load_numpy_scalar(self, node):
        def build(arr):
            _check(arr.dtype.str == node["dtype"] and arr.shape == (),
                   f"entry {node['data']} does not match its description")
            return arr[()]

        return self._entry(node, build)
