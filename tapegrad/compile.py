"""tapegrad.compile: record a function once, replay its tape in compiled code.

The first call runs the function in Python with the tape in recording mode: nothing is reset or
reused, and every effect Python has on tensor storage besides the records themselves (backward
seeds and passes, new ``.grad`` tensors) and every value Python reads (``bool``, ``.item()``,
``if``/``while`` on a tensor) is logged as an event. The records plus events form a *path*: an
integer program that ``run_program`` executes in one compiled call. Later calls check the
path's guards (argument shapes/dtypes/requires_grad, the ``.grad`` state of the parameters,
Python-side guards) and replay it; value guards are re-checked inside the program, and a guard
that goes the other way makes the function record a new path for the new case. Paths are cached.
A path replayed often is compiled to code of its own (``codegen.py``) that computes exactly what
``run_program`` computes, without decoding records.

Python side effects in the function (printing, appending to lists) happen only when it records.
"""
import hashlib
import sys
import warnings
from time import perf_counter
import weakref

import numpy as np
from numba.core.errors import NumbaError

from . import codegen, fuse, threads
from . import dtypes as D
from .interpret import (CMP_EQ, CMP_GE, CMP_GT, CMP_LE, CMP_LT, CMP_NE, P_ACC, P_ADDG, P_CMP,
                        P_COPY, P_FWD, P_REV, P_ROWS, P_SEED, P_SEEDSLOT, P_TAKE, P_VALUE,
                        reverse_schedule, run_program, run_program_steps, run_steps)
from .ops import DIFF, FREED, OPS
from .tape import NONE, TAPE
from .tensor import Tensor, _make

MAX_PATHS = 8           # re-records of one function before it runs eagerly for good
SPECIALIZE_AFTER = "auto"  # when a path is compiled to code of its own: by cost (see compile)
CMP_CODES = {np.equal: CMP_EQ, np.not_equal: CMP_NE, np.less: CMP_LT, np.less_equal: CMP_LE,
             np.greater: CMP_GT, np.greater_equal: CMP_GE}
CMP_TEXT = {CMP_EQ: "==", CMP_NE: "!=", CMP_LT: "<", CMP_LE: "<=", CMP_GT: ">", CMP_GE: ">="}
_PKG = __name__.rsplit(".", 1)[0]


def _where():
    """file:line of the innermost caller outside tapegrad (for explain())."""
    f = sys._getframe(1)
    while f is not None and f.f_globals.get("__name__", "").split(".")[0] == _PKG:
        f = f.f_back
    return f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno}" if f else "?"


class Stale(Exception):
    """A recorded path cannot be used for this call (the reason is the message)."""


# ---- Python numbers that stay inputs ----
class _Live:
    """Mixin for a Python number whose value is re-read at every replay: an argument, or a
    value derived from one (`lr / 2`), or an optimizer hyperparameter. Arithmetic keeps it
    live; any other use (comparison, bool, int, indexing) freezes it under an equality guard."""

    def _frozen(self):
        rec = TAPE.rec
        if rec is not None and not self.__dict__.get("_guarded"):
            self._guarded = True
            rec.python_guard(f"Python number {self._desc} == {self._plain()!r}", self._get,
                             self._plain())
        return self._plain()


def _num(value, get, desc):
    """A live number of value's type (float or int) reading its value with get(args)."""
    cls = _LiveFloat if isinstance(value, float) else _LiveInt
    x = cls(value)
    x._get, x._desc = get, desc
    return x


def _lift(op, sym, rev=False):
    def method(self, other):
        if isinstance(other, (Tensor, np.ndarray)) or not isinstance(other, (int, float)):
            return NotImplemented
        plain = other._plain() if isinstance(other, _Live) else other
        r = op(plain, self._plain()) if rev else op(self._plain(), plain)
        if r is NotImplemented or isinstance(other, bool) or not isinstance(r, (int, float)):
            return r
        g1 = self._get
        g2 = other._get if isinstance(other, _Live) else (lambda args, v=other: v)
        get = (lambda a: op(g2(a), g1(a))) if rev else (lambda a: op(g1(a), g2(a)))
        d2 = other._desc if isinstance(other, _Live) else repr(other)
        return _num(r, get, f"({d2} {sym} {self._desc})" if rev else f"({self._desc} {sym} {d2})")
    return method


def _frozen_method(name):
    def method(self, *args):
        return getattr(self._frozen(), name)(*args)
    return method


def _install(cls):
    import operator as o
    for name, op, sym in (("add", o.add, "+"), ("sub", o.sub, "-"), ("mul", o.mul, "*"),
                          ("truediv", o.truediv, "/"), ("floordiv", o.floordiv, "//"),
                          ("mod", o.mod, "%"), ("pow", o.pow, "**")):
        setattr(cls, f"__{name}__", _lift(op, sym))
        setattr(cls, f"__r{name}__", _lift(op, sym, rev=True))
    cls.__neg__ = lambda self: _num(-self._plain(), lambda a, g=self._get: -g(a),
                                    f"-{self._desc}")
    cls.__pos__ = lambda self: self
    for name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__",
                 "__int__", "__index__", "__round__", "__trunc__", "__floor__", "__ceil__",
                 "__abs__", "__hash__", "__divmod__", "__rdivmod__", "is_integer"):
        if hasattr(cls.__mro__[2], name):
            setattr(cls, name, _frozen_method(name))
    cls.__float__ = lambda self: float(self._frozen())     # float(lr) leaves the tape's view
    cls.__repr__ = lambda self: repr(self._plain())
    cls.__str__ = lambda self: str(self._plain())
    cls.__format__ = lambda self, spec: format(self._plain(), spec)
    cls.__reduce__ = lambda self: (type(self._plain()), (self._plain(),))
    return cls


@_install
class _LiveFloat(_Live, float):
    def _plain(self):
        return float.__float__(self)


@_install
class _LiveInt(_Live, int):
    def _plain(self):
        return int.__int__(self)


def live(value, get, desc):
    """`value`, re-read with get() at every replay when used as a constant of a tensor op
    (optimizers pass their hyperparameters through this, so a changed lr takes effect)."""
    if TAPE.rec is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return _num(value, lambda args: get(), desc)


class _ReadFloat(float):
    """A float read from a tensor while a function records (`loss.item()`). Comparing it with a
    number guards the outcome (checked again in every replay); printing it guards nothing;
    any other use (arithmetic, bool, int, float()) guards its exact value."""

    def _plain(self):
        return float.__float__(self)

    def _frozen(self):
        rec = TAPE.rec
        if rec is not None and not self.__dict__.get("_guarded"):
            self._guarded = True
            rec.read(self._slot)
        return self._plain()

    def _compare(self, other, code, fn):
        rec = TAPE.rec
        if rec is None or not isinstance(other, (int, float)) or isinstance(other, bool):
            return fn(self._frozen(), other)
        b = other._plain() if isinstance(other, (_Live, _ReadFloat)) else other
        res = fn(self._plain(), b)
        if isinstance(other, _ReadFloat):
            src = (code, self._slot, other._slot, 0.0, self._dt)
        else:
            if isinstance(other, _Live):
                other._frozen()
            src = (code, self._slot, -1, float(np.asarray(b, self._dt.np)), self._dt)
        probe = type("probe", (), {})()
        probe._src, probe._np = src, np.array([res])
        rec.read_compare(probe)
        return res

    __lt__ = lambda self, o: self._compare(o, CMP_LT, float.__lt__)
    __le__ = lambda self, o: self._compare(o, CMP_LE, float.__le__)
    __gt__ = lambda self, o: self._compare(o, CMP_GT, float.__gt__)
    __ge__ = lambda self, o: self._compare(o, CMP_GE, float.__ge__)
    __eq__ = lambda self, o: self._compare(o, CMP_EQ, float.__eq__)
    __ne__ = lambda self, o: self._compare(o, CMP_NE, float.__ne__)
    __repr__ = lambda self: repr(self._plain())
    __str__ = lambda self: str(self._plain())
    __format__ = lambda self, spec: format(self._plain(), spec)
    __reduce__ = lambda self: (float, (self._plain(),))


def _frozen_float(name):
    def method(self, *args):
        args = [a._frozen() if isinstance(a, _ReadFloat) else a for a in args]
        return getattr(float, name)(self._frozen(), *args)
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
              "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__",
              "__rmod__", "__pow__", "__rpow__", "__neg__", "__pos__", "__abs__", "__bool__",
              "__int__", "__float__", "__round__", "__trunc__", "__floor__", "__ceil__",
              "__hash__", "__divmod__", "__rdivmod__", "is_integer", "as_integer_ratio", "hex"):
    setattr(_ReadFloat, _name, _frozen_float(_name))


# ---- recording ----
class Recorder:
    """Collects the events of one recording; installed as TAPE.rec while fn runs."""

    def __init__(self):
        self.events = []            # (records before the event, kind, p1..p5)
        self.descs = {}             # event index -> text (guards)
        self.V = []                 # float64 values: seeds and guard values
        self.snaps = []             # (leaf, retain, grad_of) arrays at each backward
        self.rowsets = []           # the rows of P_ROWS events
        self.hosted = False         # it applied an autograd.Function
        self.consts = []            # (dtype code, const index, getter, text)
        self.pyguards = []          # (text, getter, expected)
        self.impure = None          # why the recording cannot be replayed
        self.quiet = 0

    def _event(self, kind, *p, desc=None):
        if desc is not None:
            self.descs[len(self.events)] = desc
        self.events.append((TAPE.n, kind) + p + (0,) * (5 - len(p)))

    def _values(self, values):
        i = sum(len(v) for v in self.V)
        self.V.append(np.asarray(values, np.float64).reshape(-1))
        return i

    # hooks called by the tape and tensors
    def read(self, s):
        if not self.quiet:
            vals = TAPE.F[TAPE.key[s][0]][TAPE.off[s]:TAPE.off[s] + TAPE.key[s][1]]
            self._event(P_VALUE, s, self._values(vals),
                        desc=f"value of s{s} read by Python at {_where()}")

    def read_compare(self, t):
        """bool()/item() of a comparison result: guard the comparison's outcome."""
        op, a, b, bval, _ = t._src
        if op is None:
            return self.read_sources(t)
        res = bool(t._np.reshape(-1)[0])
        vi = self._values([bval]) if b < 0 else 0
        rhs = repr(bval) if b < 0 else f"s{b}"
        self._event(P_CMP, op, a, b, vi, int(res),
                    desc=f"s{a} {CMP_TEXT[op]} {rhs} was {res} at {_where()}")

    def read_number(self, t):
        """t.item() of a float tensor: a number that guards its uses, not its value."""
        with Quiet():
            v = t._value().reshape(-1)[0].item()
        x = _ReadFloat(v)
        x._slot, x._dt = t._slot, t._dt
        return x

    def read_sources(self, t):
        """Any other use of a comparison result: guard the values it was computed from."""
        for s in t._src[1:3]:
            if s >= 0:
                self.read(s)

    def backward(self, rec, seed, grad, grad_slot, grad_of, retain, host=False):
        """A backward pass: its seed, then the pass (unrolled when the path is made), or,
        when `host` (the tape has records whose backward is Python), the pass as it runs:
        rows() between those backward calls."""
        if grad_slot >= 0:
            self._event(P_SEEDSLOT, seed, grad_slot)
        else:
            g = np.broadcast_to(np.asarray(grad, np.float64), (TAPE.key[seed][1],))
            self._event(P_SEED, seed, self._values(g))
        if host:
            return
        n = TAPE.nslots
        self.snaps.append((TAPE.leaf[:n].copy(), retain[:n].copy(), grad_of[:n].copy()))
        self._event(P_REV, rec, seed, len(self.snaps) - 1)

    def take(self, s, g):
        self._event(P_TAKE, s, g)

    def rows(self, rows):
        self.rowsets.append(np.array(rows, np.int64).reshape(-1, 6))
        self._event(P_ROWS, len(self.rowsets) - 1)

    def add_grad(self, s, g):
        self._event(P_ADDG, s, g)

    def bind_const(self, dt, k, v):
        if isinstance(v, _Live):
            self.consts.append((dt, k, v._get, v._desc))
        elif isinstance(v, _ReadFloat):
            v._frozen()                         # a value read from a tensor, now a constant

    def python_guard(self, text, get, expected):
        self.pyguards.append((f"{text} (at {_where()})", get, expected))

    def python_write(self, what):
        if self.impure is None:
            self.impure = f"{what} at {_where()} writes values computed in Python"


class Quiet:
    """Reads inside this block (printing, internal checks) record no guard."""

    def __enter__(self):
        if TAPE.rec is not None:
            TAPE.rec.quiet += 1

    def __exit__(self, *exc):
        if TAPE.rec is not None:
            TAPE.rec.quiet -= 1


# ---- arguments ----
def _arg_key(x):
    if isinstance(x, Tensor):
        return ("T", x._shape, x._dt.name, bool(x._rg), x._slot >= 0)
    if isinstance(x, np.ndarray):
        return ("A", x.shape, x.dtype.str)
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return ("V", x)
    if isinstance(x, (int, float)):
        return ("N", type(x).__name__)
    return ("O", id(x))


class _Leaf:
    """A tensor with requires_grad seen by a recording, and its .grad before and after.
    `pos` is its argument position when it was passed as an argument (else -1)."""
    __slots__ = ("ref", "pos", "slot", "grad_in", "grad_out", "copy_in")

    def tensor(self, args):
        return args[self.pos] if self.pos >= 0 else self.ref()


def _slots_of(event):
    kind, p = event[1], event[2:]
    return {P_SEED: (p[0],), P_SEEDSLOT: (p[0], p[1]), P_REV: (p[1],), P_TAKE: (p[0], p[1]),
            P_ROWS: (), P_ADDG: (p[0], p[1]),
            P_CMP: (p[1], p[2]), P_VALUE: (p[0],)}[kind]


class Path:
    """One recorded path of a compiled function: its tape, program and guards."""

    def __init__(self, rec, inputs, leaves, outputs, closure, live0):
        T = TAPE
        T._sync()
        n = T.n
        self.R = T.R[:n].copy()
        self.R[:, 5] &= ~FREED
        self.M = T.M[:T.nmeta].copy()
        self.C = [T.C[d][:T.nconst[d]].copy() for d in (0, 1)]
        self.shapes = list(T.shapes)
        self.events = rec.events
        self.scratch = []               # slots of fused rows' gradient scratch
        rows, self.row_desc = [], []
        last = 0
        for k, e in enumerate(rec.events):
            if e[0] > last:
                rows.append((P_FWD, last, e[0], 0, 0, 0))
                self.row_desc.append(None)
                last = e[0]
            if e[1] == P_ROWS:
                rows.extend(tuple(r) for r in rec.rowsets[e[2]].tolist())
                self.row_desc.extend([None] * len(rec.rowsets[e[2]]))
                continue
            if e[1] == P_REV:                   # the pass is the same every replay: unroll it
                leaf, retain, grad_of = rec.snaps[e[4]]
                needs = np.zeros(len(leaf), np.int8)
                bwd = reverse_schedule(self.R, e[2], e[3], self.M, T.vid, leaf, retain, grad_of,
                                       T.ver, needs, 0)[3]
                rows.extend(tuple(r) for r in bwd.tolist())
                self.row_desc.extend([None] * len(bwd))
                continue
            rows.append(e[1:])
            self.row_desc.append(rec.descs.get(k))
        if n > last or not rows:
            rows.append((P_FWD, last, n, 0, 0, 0))
            self.row_desc.append(None)
        self.out_keys = []              # P_COPY rows: each call copies a result to a new slot
        for o in _tensor_outputs(outputs):
            self.out_keys.append((len(rows), T.key[o[1]]))
            rows.append((P_COPY, o[1], -1, 0, 0, 0))
            self.row_desc.append(None)
        rows, self.row_desc = fuse.affine_loss(rows, self.row_desc, self.R, self.M, T.size,
                                               T.dt, self._scratch)
        copies = [j for j, r in enumerate(rows) if r[0] == P_COPY]     # fusing moved them
        self.out_keys = [(j, key) for j, (_, key) in zip(copies, self.out_keys)]
        self.P = np.array(rows, np.int64).reshape(-1, 6)
        self.V = np.concatenate(rec.V) if rec.V else np.zeros(1)
        self.consts = rec.consts
        self.pyguards = rec.pyguards
        self.live = False               # its result requires grad: replays splice it
        self._gen = -1
        self.replays = 0                # steps replayed (calls and run() steps)
        self.fast = None                # its specialized module (codegen); False: not possible
        self.fast_ok = False            # its program has compiled and run
        self.step_time = None           # seconds of its last interpreted step (timed replays)
        self.interp_time = 0.0          # seconds of all its interpreted steps
        self.tier_said = False          # explain() has said why it stays interpreted
        self.fused = self.serial = self.parallel = False    # what its module is (codegen)
        self._source = None             # its module's source and what compiling it costs,
        self._cost = None               # once asked (codegen.cost)
        self._fgen = -1
        self.hot = None                 # one call of it unrolled in Python (_hot_source)
        self.keep = [[None, None] for _ in self.out_keys]    # its last results (hot)
        self.const_aux = np.array([OPS[int(op)].kind == "unary" or OPS[int(op)].name == "fill"
                                   for op in self.R[:, 0]], bool)
        self.inputs = inputs            # (argument position, slot) of tensor/array arguments
        self.leaves = leaves
        self.outputs = outputs          # the structure of fn's result
        self.closure = closure
        # the slots the tape names are held for its lifetime (never freed and reused under it)
        used = set(int(v) for v in self.R[:, 1:4].ravel() if v >= 0)
        for e in rec.events:
            used.update(int(v) for v in _slots_of(e) if v >= 0)
        used.update(s for _, s in inputs)
        used.update(self.scratch)
        for r in self.P:
            if r[0] == P_ACC:
                used.update((int(r[1]), int(r[2])))
        for lf in leaves:       # a .grad the program reads is copied in first (_prepare)
            lf.copy_in = lf.grad_in in used
        used.update(lf.grad_in for lf in leaves if lf.grad_in >= 0)
        self.held = sorted(used)
        # views of an input name its values: they follow it when the input is rebound
        self.views_of = {q: [a for a in self.held if a in T.aliased and a != q and
                             T.off[a] == T.off[q]] for _, q in inputs}
        self.internal = [s for s in self.held if s not in live0 and
                         s not in {q for _, q in inputs}]
        for s in self.held:
            T.refs[s] += 1
        # between the steps of run(): a new .grad made by one step is the .grad the next reads
        self.carry = np.array([(lf.grad_out._slot, lf.grad_in) for lf in leaves
                               if lf.grad_out is not None and lf.copy_in
                               and lf.grad_out._slot != lf.grad_in], np.int64).reshape(-1, 2)
        # a guard after a write to state that existed before the call: replay needs a snapshot
        self.snapshot = []
        guards = [j for j, r in enumerate(self.P) if r[0] in (P_CMP, P_VALUE)]
        if guards:
            written = set()
            for r in self.P[:guards[-1]]:
                if r[0] == P_FWD:
                    written.update(int(s) for s in self.R[r[1]:r[2], 3] if s in live0)
                elif r[0] == P_TAKE and r[2] in live0:
                    written.add(int(r[2]))
                elif r[0] == P_ACC and r[2] in live0:    # into an existing .grad
                    written.add(int(r[2]))
            self.snapshot = sorted(written)

    def _scratch(self, dt, n):
        s = TAPE.alloc(dt, n)
        self.scratch.append(s)
        return s

    def run_args(self):
        """The arguments of run_program for this path (rebuilt when the tape reallocates)."""
        T = TAPE
        if self._gen != T.gen:
            self._args = (self.P, self.R, self.M, T.off, T.goff, T.size, T.dt, T.F[0],
                          self.C[0], T.G[0], *T.f64(self.C[1]), self.V)
            self._gen = T.gen
        return self._args

    def specialized(self, log):
        """The path's program as straight-line compiled code (tapegrad.codegen), built once;
        None if it cannot be (the interpreter runs it then)."""
        if self.fast is None:
            try:
                text = self._source or codegen.source(self, TAPE.size, TAPE.dt)
                self.fast = codegen.load(text)
            except Exception as e:      # the interpreter is always there to fall back on
                self.fast = False
                log.append(f"specializing path {self.fingerprint()} failed, it stays "
                           f"interpreted: {type(e).__name__}: {e}")
        return self.fast or None

    def fast_args(self):
        """What the specialized program takes before its result slots: the addresses of the
        arrays it uses (rebuilt when the tape reallocates; the arrays are kept with them)."""
        T = TAPE
        if self._fgen != T.gen:
            if self.fused and self.serial != (int(threads.COUNT[0]) == 1):
                self._threads_changed()
            have = {"off": T.off, "goff": T.goff, "F32": T.F[0], "C32": self.C[0],
                    "G32": T.G[0], "F64": T.F[1], "C64": self.C[1], "G64": T.G[1],
                    "V": self.V, "M": self.M, "TH": threads.COUNT, "TABLE": self.table}
            self._farrays = tuple(have[a] for a in self.fast.ARRAYS)
            self._fargs = (codegen.pointers(self._farrays, self.fast),)
            self._fgen = T.gen
        return self._fargs

    def _threads_changed(self):
        """The thread count went from one to more or back: a fused pass is written for one
        or for several (codegen), so the path's module is made again (or loaded from the disk
        cache); should that fail, the old one stays (it gives the same values)."""
        old, self.fast, self._source, self._cost = self.fast, None, None, None
        if self.specialized([]) is None:
            self.fast = old
            self.serial = not self.serial

    def fast_call(self, fn, args, log):
        """Call a function of the specialized module; on a Numba compile error fall back
        for good (returns None)."""
        try:
            return fn(*args)
        except NumbaError as e:
            self.fast = False
            log.append(f"specialized code of path {self.fingerprint()} did not compile, it "
                       f"stays interpreted: {str(e).splitlines()[0]}")
            return None

    def release(self):
        self.keep = [[None, None] for _ in self.out_keys]
        held, self.held = self.held, []
        for s in held:
            TAPE.release(s)

    def __del__(self):
        try:
            self.release()
        except Exception:       # interpreter shutdown
            pass

    # ---- inspection ----
    def dump(self, file=None):
        """One line per record (`i: op a b -> out shape dtype`), events indented between."""
        lines = []
        ev = {}
        for e in self.events:
            ev.setdefault(e[0], []).append(e)
        for i in range(len(self.R) + 1):
            lines.extend("   " + _event_text(e) for e in ev.get(i, []))
            if i == len(self.R):
                break
            op, a, b, out, aux, flags = (int(v) for v in self.R[i, :6])
            names = [f"s{s}" if s >= 0 else f"c{-s - 1}" for s in (a, b) if s != NONE]
            dt = "float32" if TAPE.key[out][0] == 0 else "float64"
            tag = " grad" if flags & DIFF else ""
            lines.append(f"{i}: {OPS[op].name} {' '.join(names)} -> s{out} "
                         f"{self.shapes[i]} {dt}{tag}")
        text = "\n".join(lines)
        print(text, file=file)
        return text

    def to_dot(self):
        """Graphviz source of the records: slots as ellipses, records as boxes."""
        out = ["digraph tape {", "  rankdir=LR;", "  node [fontname=monospace];"]
        slots = set()
        for i, r in enumerate(self.R):
            op, a, b, o = (int(v) for v in r[:4])
            out.append(f'  r{i} [shape=box, label="{i}: {OPS[op].name}"];')
            for s in (a, b):
                if s >= 0:
                    slots.add(s)
                    out.append(f"  s{s} -> r{i};")
            slots.add(o)
            out.append(f"  r{i} -> s{o};")
        out.extend(f'  s{s} [label="s{s}"];' for s in sorted(slots))
        out.append("}")
        return "\n".join(out)

    def fingerprint(self):
        """A stable hash of the computation: opcodes, wiring (slot ids renumbered in order of
        first use), shapes, dtypes, metadata, immediates and events."""
        h = hashlib.sha256()
        ids = {}

        def rename(s):
            return s if s < 0 else ids.setdefault(s, len(ids))
        for r in self.R:
            h.update(np.array([r[0], rename(r[1]), rename(r[2]), rename(r[3]), r[4], r[5],
                               TAPE.key[r[3]][0]], np.int64).tobytes())
        h.update(repr(self.shapes).encode())
        h.update(self.M.tobytes())
        for c in self.C:
            h.update(c.tobytes())
        for e in self.events:
            h.update(repr((e[0], e[1])).encode())
        return h.hexdigest()[:16]


def _event_text(e):
    kind, p = e[1], e[2:]
    if kind == P_SEED:
        return f"seed the gradient of s{p[0]}"
    if kind == P_SEEDSLOT:
        return f"seed the gradient of s{p[0]} from s{p[1]}"
    if kind == P_REV:
        return f"backward from record {p[0]} (s{p[1]})"
    if kind == P_TAKE:
        return f"new .grad s{p[1]} from the gradient of s{p[0]}"
    if kind == P_ROWS:
        return f"backward steps ({p[0]})"
    if kind == P_ADDG:
        return f"add s{p[1]} to the gradient of s{p[0]}"
    if kind == P_CMP:
        rhs = f"s{p[2]}" if p[2] >= 0 else "immediate"
        return f"guard s{p[1]} {CMP_TEXT[p[0]]} {rhs} is {bool(p[4])}"
    return f"guard the value of s{p[0]}"


def _program_steps(mod, ptrs, *args):
    """run() of a specialized path: interpret.run_program_steps over its module's program."""
    return run_program_steps(*codegen.entry_point(mod), ptrs, *args)


def _copy(src, dst):
    d, n = TAPE.key[src]
    F = TAPE.F[d]
    F[TAPE.off[dst]:TAPE.off[dst] + n] = F[TAPE.off[src]:TAPE.off[src] + n]


def _fresh_copy(s, shape, dt, rg=False, fn=None):
    g = TAPE.alloc(*TAPE.key[s])
    _copy(s, g)
    return _make(g, shape, dt, rg, -1, fn)


class Compiled:
    """The callable tapegrad.compile returns (see the module docstring)."""

    def __init__(self, fn, max_paths=MAX_PATHS, specialize_after=SPECIALIZE_AFTER):
        self.fn = fn
        self.max_paths = max_paths
        self.specialize_after = specialize_after
        self.paths = {}             # argument signature -> [Path]
        self.log = []               # explain() lines
        self.n_records = 0
        self.eager = False
        self.last = None            # the path of the last call
        self._hot = None            # (its unrolled replay, path) once the path is specialized
        self._gc_n = 0              # tape length from which the next recording collects,
        self._gc_call = 0           # or call number
        self._eager_last = None     # (reason, first call, log length) of eager calls in a row
        self._uncached = None       # the signature of the last recording if it was not cached
        self.calls = 0
        for a in ("__name__", "__qualname__", "__doc__", "__module__"):
            if hasattr(fn, a):
                setattr(self, a, getattr(fn, a))
        self.__wrapped__ = fn

    @property
    def tape(self):
        """The path the last call used (None before the first recorded call)."""
        return self.last

    def explain(self):
        """A readable account of every recording: why it happened, and what was decided."""
        return "\n".join(self.log) if self.log else "no recordings yet"

    def __get__(self, obj, objtype=None):           # decorating a method
        if obj is None:
            return self
        import functools
        return functools.partial(self.__call__, obj)

    # ---- calling ----
    def __call__(self, *args, **kwargs):
        hot = self._hot
        if hot is not None and TAPE.rec is None and not kwargs and TAPE.done == TAPE.n:
            r = hot[0](args)
            if r is not _MISS:
                self.calls += 1
                self.last = hot[1]
                return r
        self.calls += 1
        if self.eager or TAPE.rec is not None or kwargs:
            if kwargs and not self.eager and TAPE.rec is None:
                self.log.append(f"call {self.calls}: keyword arguments -> ran eagerly (pass "
                                f"them positionally to record and replay)")
            return self.fn(*args, **kwargs)
        if TAPE.done != TAPE.n:
            TAPE.flush()
        sig = tuple(map(_arg_key, args))
        reasons = []
        for path in self.paths.get(sig, ()):
            try:
                result = self._replay(path, args)
            except Stale as e:
                reasons.append(str(e))
                continue
            if path.fast_ok and not path.snapshot:
                if path.hot is None:
                    src, ns = _hot_source(path, sig, args)
                    exec(src, ns)
                    path.hot = ns["hot"]
                self._hot = (path.hot, path)
            return result
        return self._record(args, sig, reasons)

    def _prepare(self, path, args, bind=True):
        """Check the guards Python can check and bind the inputs; raise Stale. Returns the
        slot offsets to restore after the run."""
        for cell, obj in path.closure:
            try:
                if cell.cell_contents is not obj:
                    raise Stale("a tensor in the function's closure was rebound")
            except ValueError:
                raise Stale("a closure variable was deleted") from None
        for text, get, expected in path.pyguards:
            v = get(args)
            if v != expected:
                raise Stale(f"{text}: now {v!r}")
        T = TAPE
        copies = []
        for lf in path.leaves:
            t = args[lf.pos] if lf.pos >= 0 else lf.ref()
            if t is None:
                continue
            if lf.pos < 0 and t._slot != lf.slot:
                raise Stale(f"a parameter moved to new storage (s{lf.slot} -> s{t._slot})")
            g = t._grad
            if (g is None) != (lf.grad_in < 0):
                raise Stale(f"s{lf.slot}.grad is {'None' if g is None else 'set'}, it was "
                            f"{'None' if lf.grad_in < 0 else 'set'} when recorded")
            if g is not None and g._slot != lf.grad_in and lf.copy_in:
                copies.append((g._slot, lf.grad_in))
        for d, k, get, _ in path.consts:
            path.C[d][k] = get(args)
        rebound = []
        if not bind:
            return rebound
        for pos, s in path.inputs:
            a = args[pos]
            if isinstance(a, Tensor):
                if a._slot != s:
                    for q in [s] + path.views_of[s]:
                        rebound.append((q, int(T.off[q])))
                        T.off[q] = T.off[a._slot]
            else:
                d, n = T.key[s]
                T.F[d][T.off[s]:T.off[s] + n] = np.asarray(a, T.F[d].dtype).reshape(-1)
        for src, dst in copies:
            _copy(src, dst)
        return rebound

    def _finish(self, path, args):
        """Give the parameters their .grad as the function left them."""
        for lf in path.leaves:
            t = args[lf.pos] if lf.pos >= 0 else lf.ref()
            if t is None:
                continue
            go = lf.grad_out
            if go is None:
                t._grad = None
                TAPE.set_grad_of(t._slot, -1)
            elif go._slot == lf.grad_in:            # accumulated in place
                if t._grad._slot != lf.grad_in:
                    _copy(lf.grad_in, t._grad._slot)
            else:                                   # a new .grad tensor
                t._grad = _fresh_copy(go._slot, go._shape, go._dt)
                TAPE.set_grad_of(t._slot, t._grad._slot)

    def _replay(self, path, args):
        if path.live:
            return self._splice(path, args)
        rebound = self._prepare(path, args)
        saved = [(s, TAPE.value(s).copy()) for s in path.snapshot] if path.snapshot else ()
        P, T = path.P, TAPE
        results = []
        for r, key in path.out_keys:
            free = T.free.get(key)
            results.append(free.pop() if free else T.alloc(*key))
        try:
            path.replays += 1
            j = None
            if path.fast_ok:                    # the common case, kept short
                fa = path.fast_args()           # first: it may make path.fast again
                j = path.fast.program(*fa, *results)
            elif path.fast is not False and self._fast(path, 0) is not None:
                fa = path.fast_args()
                j = path.fast_call(path.fast.program, fa + tuple(results), self.log)
                path.fast_ok = j is not None
            if j is None:
                for (r, _), g in zip(path.out_keys, results):
                    P[r, 2] = g
                t0 = perf_counter()
                try:
                    j = run_program(*path.run_args())
                finally:
                    for r, _ in path.out_keys:
                        P[r, 2] = -1
                path.step_time = perf_counter() - t0
                path.interp_time += path.step_time
        finally:
            for s, o in rebound:
                T.off[s] = o
        if j >= 0:
            for g in results:
                T.refs[g] += 1
                T.release(g)
            for s, v in saved:
                TAPE.value(s)[:] = v
            for G in TAPE.G:
                G[:] = 0
            raise Stale(f"guard failed: {path.row_desc[j]}; now it goes the other way")
        self._finish(path, args)
        self.last = path
        return self._outputs(path.outputs, args, results=iter(results))

    def _fast(self, path, steps):
        """The path's specialized module if it should run now, else None; `steps` replays are
        about to run (0: one call, which _replay has counted)."""
        path.replays += steps
        after = self.specialize_after
        if path.fast is not None or after is None:
            return path.fast or None
        if after != "auto":
            if path.replays <= after:
                return None
            why = f"its {path.replays} replays passed specialize_after={after}"
        else:
            why = self._worth(path, steps)
            if why is None:
                return None
        fast = path.specialized(self.log)
        if fast is not None:
            fused = " with a fused pass" if path.fused else ""
            self.log.append(f"path {path.fingerprint()}: specialized{fused}, {why}")
        return fast

    def _worth(self, path, steps):
        """Why compiling the path pays now (None: it does not, yet). Compiling pays when the
        interpreted steps it would replace take longer than it does: the `steps` about to run
        at the last measured rate (with the interpreted time so far: run() called again and
        again), or, for calls one at a time (how many more is unknown), the interpreted time
        so far. That way the interpreted steps cost at most about as much as the compile, and
        the compile at most about as much as they."""
        if path._cost is None:
            try:
                *path._cost, path._source = codegen.cost(path, TAPE.size, TAPE.dt)
            except Exception:       # specialized() will say why it cannot be compiled
                return "to try it"
        c_prog, c_steps, cached = path._cost
        cost = c_prog + (c_steps if steps else 0.0)
        if cached:
            return f"its compiled code is in the disk cache (loads in about {cost:.2f} s)"
        t, ahead = path.step_time, steps * (path.step_time or 0.0)
        if t is not None and ahead > cost:
            return (f"{steps} steps to run at {t * 1e3:.3g} ms interpreted ({ahead:.1f} s) "
                    f"take longer than compiling (about {cost:.1f} s)")
        if t is not None and steps and path.interp_time + ahead > cost:
            return (f"its interpreted steps have taken {path.interp_time:.1f} s, and with the "
                    f"{steps} to run ({ahead:.1f} s) would take longer than compiling (about "
                    f"{cost:.1f} s)")
        if path.interp_time > cost:
            return (f"its interpreted steps have taken {path.interp_time:.1f} s, more than "
                    f"compiling takes (about {cost:.1f} s)")
        if t is not None and not path.tier_said:
            path.tier_said = True
            self.log.append(
                f"path {path.fingerprint()}: interpreted, {t * 1e3:.3g} ms a step: compiling "
                f"it would take about {cost:.1f} s; it is compiled once a run() has more "
                f"steps to go than that time buys, or once its interpreted steps have taken "
                f"as long")
        return None

    def _splice(self, path, args):
        """Append the path's records to the tape with fresh slots for everything it creates,
        run them (checking its guards), and return results that take part in autograd."""
        self._prepare(path, args, bind=False)
        T = TAPE
        T.flush()
        T._sync()
        remap = np.arange(max(path.held[-1] + 1 if path.held else 0, 1), dtype=np.int64)
        fresh = []
        for s in path.internal:
            g = T.alloc(*T.key[s])
            fresh.append(g)
            remap[s] = g
        for pos, s in path.inputs:
            a = args[pos]
            if isinstance(a, Tensor):
                remap[s] = a._slot
            else:
                g = T.alloc(*T.key[s])
                fresh.append(g)
                remap[s] = g
                d, n = T.key[g]
                T.F[d][T.off[g]:T.off[g] + n] = np.asarray(a, T.F[d].dtype).reshape(-1)
        for g in fresh:
            T.refs[g] += 1                      # held while the new records run
        n0, m0, c0 = T.n, T.nmeta, list(T.nconst)
        R = path.R.copy()
        dts = T.dt[R[:, 3]]                     # the dtype of each record (of its output)
        for col in (1, 2):
            v = R[:, col]
            slot = v >= 0
            R[slot, col] = remap[v[slot]]
            imm = (v < 0) & (v != NONE)
            R[imm, col] = -((-v[imm] - 1) + np.where(dts[imm] == 0, c0[0], c0[1])) - 1
        R[:, 3] = remap[R[:, 3]]
        aux = R[:, 4]
        const_aux = path.const_aux & (aux >= 0)
        meta_aux = ~path.const_aux & (aux >= 0)
        aux[const_aux] += np.where(dts[const_aux] == 0, c0[0], c0[1])
        aux[meta_aux] += m0
        R[:, 6] = np.where(R[:, 5] & 16, T.ver[np.maximum(R[:, 1], 0)], 0)
        R[:, 7] = np.where(R[:, 5] & 32, T.ver[np.maximum(R[:, 2], 0)],
                           np.where(R[:, 5] & 64, T.ver[R[:, 3]], 0))
        T.append(R, path.M, path.C, path.shapes)
        P = path.P[path.P[:, 0] != P_COPY].copy()      # results are the new slots themselves
        fwd = P[:, 0] == P_FWD
        P[fwd, 1:3] += n0
        for j in np.nonzero(~fwd)[0]:
            k = P[j, 0]
            cols = (1,) if k == P_VALUE else (2, 3)
            for c in cols:
                if P[j, c] >= 0:
                    P[j, c] = remap[P[j, c]]
        j = run_program(P, T.R, T.M, T.off, T.goff, T.size, T.dt, T.F[0], T.C[0], T.G[0],
                        *T.f64(), path.V)
        if j >= 0:
            T.truncate(n0, m0, c0)
        for g in fresh:
            T.release(g)
        if j >= 0:
            raise Stale(f"guard failed: {path.row_desc[j]}; now it goes the other way")
        T.done = T.n
        T.n_live += int(np.count_nonzero(R[:, 5] & DIFF))
        self.last = path
        return self._outputs(path.outputs, args, remap, n0)

    def _outputs(self, o, args, remap=None, n0=0, results=None):
        kind = o[0]
        if kind == "T":
            _, s, shape, dt, rg, fn, rec = o
            if remap is not None:               # spliced: the result is a node of the graph
                return _make(int(remap[s]), shape, dt, rg, n0 + rec if rg else -1, fn)
            return _make(next(results), shape, dt, rg, -1, fn)
        if kind == "arg":
            return args[o[1]]
        if kind == "item":
            with Quiet():
                return float(TAPE.value(int(remap[o[1]]) if remap is not None else o[1])[0])
        if kind == "seq":
            return o[1](self._outputs(x, args, remap, n0, results) for x in o[2])
        return o[1]

    def _describe(self, r, args, pre):
        if isinstance(r, Tensor):
            for i, a in enumerate(args):
                if r is a:
                    return ("arg", i)
            if r._slot < 0:
                raise Stale("it returns an integer or bool tensor")
            if id(r) in pre:
                raise Stale("it returns a tensor that existed before the call")
            return ("T", r._slot, r._shape, r._dt, r._rg, r._fn, r._rec)
        if isinstance(r, (tuple, list)):
            return ("seq", type(r), [self._describe(x, args, pre) for x in r])
        if isinstance(r, _Live):
            raise Stale("it returns a Python number computed from its arguments")
        if isinstance(r, _ReadFloat):
            return ("item", r._slot)
        if r is None or isinstance(r, (int, float, str, bool)):
            return ("const", r)
        raise Stale(f"it returns a {type(r).__name__}")

    # ---- recording ----
    def _log_eager(self, head, why):
        """Log an eager call; consecutive calls for the same reason share one line."""
        last = self._eager_last
        if last is not None and last[0] == why and last[2] == len(self.log):
            self.log[-1] = f"calls {last[1]}-{self.calls}: ran eagerly: {why}"
        else:
            self.log.append(f"{head} -> ran eagerly: {why}")
            self._eager_last = (why, self.calls, len(self.log))

    def _record(self, args, sig, reasons):
        n_paths = sum(len(v) for v in self.paths.values())
        why = "; ".join(reasons) if reasons else (
            "first call" if not self.n_records else
            "the last recording was not cached" if sig == self._uncached else
            "new argument shapes, dtypes or types")
        self._uncached = None
        head = f"call {self.calls}: {why}"
        if self.n_records >= self.max_paths:
            self.eager = True
            self._hot = None
            self.log.append(f"{head} -> recorded {self.n_records} times: eager from now on")
            warnings.warn(f"tapegrad.compile: {self.__name__} was recorded "
                          f"{self.n_records} times; it runs eagerly from now on (see "
                          f".explain())", RuntimeWarning, stacklevel=3)
            return self.fn(*args)
        T = TAPE
        if T.n >= self._gc_n or self.calls >= self._gc_call:
            # collect dropped graphs; while one stays alive (eager calls append to the tape),
            # again when the tape has doubled or after 100 calls, not at every call
            T.gc()
            self._gc_n, self._gc_call = 2 * T.n, self.calls + 100
        if T.n:
            self._log_eager(head, "a graph recorded outside the function is still alive")
            return self.fn(*args)
        self._gc_n = 0
        rec = Recorder()
        rec.pyguards.extend(_python_numbers(self.fn))
        wrapped, inputs = [], []
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                if a._slot >= 0:
                    inputs.append((i, a._slot))
                else:
                    key = (a._shape, a._np.tobytes())
                    rec.pyguards.append((f"integer tensor argument {i}", lambda xs, i=i: (
                        xs[i]._shape, xs[i]._np.tobytes()), key))
                wrapped.append(a)
            elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
                from .tensor import _from_array
                t = _from_array(a, D.from_np(a.dtype))
                inputs.append((i, t._slot))
                wrapped.append(t)
            elif isinstance(a, (int, float)) and not isinstance(a, bool):
                wrapped.append(_num(a, lambda xs, i=i: xs[i], f"argument {i}"))
            else:
                wrapped.append(a)
        live0 = {s for s in range(T.nslots) if T.refs[s] > 0}
        bumps0 = T.nbumps
        owners = {}
        for s, r in T.owners.items():
            t = r() if isinstance(r, weakref.ref) else None
            if t is not None:
                owners[s] = (r, t, -1 if t._grad is None else t._grad._slot)
        pre = {id(t) for _, t, _ in owners.values()}
        T.rec = rec
        try:
            result = self.fn(*wrapped)
            T.flush()
        finally:
            T.rec = None
        result = _unwrap(result, args, wrapped)
        problem = rec.impure
        live = T.n_live > 0
        if problem is None and live:
            problem = _splice_problem(rec, owners, bumps0)
        outputs = None
        if problem is None:
            try:
                outputs = self._describe(result, args, pre)
            except Stale as e:
                problem = str(e)
        if problem is not None:
            self.log.append(f"{head} -> ran eagerly, not replayable: {problem}")
            if not T.n_live:
                T.reset()
            return result
        if live:        # a forward whose result takes part in autograd: splice on replay
            path = Path(rec, inputs, [], outputs, _closure_tensors(self.fn), live0)
            path.live = True
            self.n_records += 1
            self.last = path
            self.paths.setdefault(sig, []).append(path)
            self.log.append(f"{head} -> recorded path {n_paths + 1} (result requires grad: "
                            f"replays append its {len(path.R)} records to the tape)")
            return result
        steady = all(get(args) == expected for _, get, expected in rec.pyguards)
        used = set(int(v) for v in T.R[:T.n, 1:4].ravel() if v >= 0)
        for e in rec.events:
            used.update(_slots_of(e))
        leaves = []
        positions = {s: i for i, s in inputs}
        for s, (r, t, g) in owners.items():
            if s not in used:
                continue
            if (t._grad is None) != (g < 0):
                steady = False
            lf = _Leaf()
            lf.ref, lf.pos, lf.slot, lf.grad_in = r, positions.get(s, -1), s, g
            lf.grad_out = t._grad
            leaves.append(lf)
        path = Path(rec, inputs, leaves, outputs, _closure_tensors(self.fn), live0)
        # the result as later calls give it: tensors of their own, not the recorded slots,
        # which every replay writes again (a kept list of losses would change under the user)
        fresh = []
        for o in _tensor_outputs(outputs):
            fresh.append(T.alloc(*T.key[o[1]]))
            _copy(o[1], fresh[-1])
        result = self._outputs(outputs, args, results=iter(fresh))
        T.reset()
        self.n_records += 1
        self.last = path
        if steady:
            self.paths.setdefault(sig, []).append(path)
            self.log.append(f"{head} -> recorded path {n_paths + 1}: {len(path.R)} records, "
                            f"{len(path.P)} program rows, fingerprint {path.fingerprint()}")
        else:
            self.log.append(f"{head} -> recorded, not cached: the call changed the state it "
                            f"starts from (a first .grad, or new optimizer state)")
            self._uncached = sig
            path.release()
        return result

    # ---- many steps in one call ----
    def run(self, n, *args, every=1, batch_size=None, shuffle=False, seed=None,
            drop_last=False):
        """Call the function n times, the steps after the first ones inside one compiled loop;
        return the first value of its result at every `every`-th step (the loss history) as a
        float64 NumPy array.

        With batch_size, each step gets the next batch_size rows (leading dimension) of every
        tensor or array argument, as a DataLoader over them would give: in order, or reshuffled
        every epoch with shuffle=True (seeded by seed). The last batch of an epoch may be
        smaller (it records its own path, by the shape guard) unless drop_last=True."""
        n, every = int(n), int(every)
        if n < 0 or every < 1:
            raise ValueError(f"run: n must be >= 0 and every >= 1 (got n={n}, every={every})")
        hist = np.full(n, np.nan)
        if batch_size is None:
            self._run_same(n, args, hist)
        else:
            self._run_batches(n, args, hist, int(batch_size), shuffle, seed, drop_last)
        return hist[every - 1::every].copy()

    def _cached(self, args):
        path = self.last
        if self.eager or path is None or path.snapshot or path.live:
            return None
        return path if path in self.paths.get(tuple(_arg_key(a) for a in args), ()) else None

    def _untimed(self, path, timed):
        """Whether the path, about to run steps in one call, has no interpreted step time yet
        to choose its tier by (each path is given one call in a run to get one: `timed`)."""
        if self.specialize_after != "auto" or path.fast is not None or path.step_time \
                is not None or id(path) in timed:
            return False
        timed.add(id(path))
        return True

    def _run_same(self, n, args, hist):
        step, timed = 0, set()
        while step < n:
            before = self.n_records
            hist[step] = _scalar(self(*args))
            step += 1
            path = self._cached(args)
            if path is not None and self.n_records == before and step < n:
                if self._untimed(path, timed):
                    continue            # one more call, timed, so that _loop can choose
                step += self._loop(path, args, n - step, hist[step:])

    def _run_batches(self, n, args, hist, B, shuffle, seed, drop_last):
        if B < 1:
            raise ValueError(f"run: batch_size must be positive (got {B})")
        data = {}
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray) and a.ndim:
                from .tensor import _from_array
                a = _from_array(a, D.from_np(a.dtype)) if a.dtype.kind == "f" else a
            if isinstance(a, (Tensor, np.ndarray)) and len(a.shape):
                data[i] = a
        if not data:
            raise ValueError("run: batch_size needs tensor or array arguments to batch")
        N = {len(a) for a in data.values()}
        if len(N) != 1:
            raise ValueError(f"run: batched arguments differ in length: "
                             f"{[tuple(a.shape) for a in data.values()]}")
        N = N.pop()
        if drop_last and N < B or N == 0:
            raise ValueError(f"run: no batches (length {N}, batch_size {B}, "
                             f"drop_last={drop_last})")
        rng, timed = np.random.default_rng(seed), set()
        batches = []                    # the batches (index arrays) of the current epoch

        def next_batches():
            order = rng.permutation(N) if shuffle else np.arange(N)
            cut = N - N % B if drop_last else N
            return [order[k:k + B] for k in range(0, cut, B)]

        def batch_args(ix):
            return tuple(data[i][tg_index(ix, data[i])] if i in data else a
                         for i, a in enumerate(args))
        step = 0
        while step < n:
            if not batches:
                batches = next_batches()
            ix = batches.pop(0)
            bargs = batch_args(ix)
            before = self.n_records
            hist[step] = _scalar(self(*bargs))
            step += 1
            path = self._cached(bargs)
            if path is None or self.n_records != before or len(ix) != B or \
                    self._untimed(path, timed):
                continue
            # full batches ahead, in this epoch and the next ones, run in one compiled call
            ahead = []
            while step + len(ahead) < n:
                if not batches:
                    batches = next_batches()
                if len(batches[0]) != B:
                    break
                ahead.append(batches.pop(0))
            if not ahead:
                continue
            slots = [(i, a) for i, a in enumerate(bargs) if i in data]
            if not all(isinstance(data[i], Tensor) and data[i]._slot >= 0 for i, _ in slots):
                batches = ahead + batches         # integer data: step by step
                continue
            gather = np.array([(data[i]._slot, a._slot, int(np.prod(a._shape[1:], dtype=int)))
                               for i, a in slots], np.int64).reshape(-1, 3)
            idx = np.stack(ahead)
            done = self._loop(path, bargs, len(ahead), hist[step:], gather, idx)
            batches = ahead[done:] + batches
            step += done

    def _loop(self, path, args, m, hist, gather=None, idx=None):
        """Replay `path` m times in one compiled call; stop at a failed guard. Returns the
        number of steps done."""
        out = path.outputs
        while out[0] == "seq" and out[2]:
            out = out[2][0]
        try:
            rebound = self._prepare(path, args)
        except Stale:
            return 0
        if gather is None:
            gather, idx = np.zeros((0, 3), np.int64), np.zeros((m, 0), np.int64)
        T = TAPE
        kept = out[1] if out[0] == "T" else -1        # the slot whose value hist keeps
        try:
            fast = self._fast(path, m)
            r = None
            if fast is not None:
                fa = path.fast_args()           # the thread count may call for another module
                r = path.fast_call(_program_steps, (path.fast, fa[0], m, kept, hist, path.carry,
                                                    gather, idx, T.size, T.dt, T.off, T.F[0],
                                                    T.F[1]),
                                   self.log)
            if r is None:
                t0 = perf_counter()
                r = run_steps(m, kept, hist, path.carry, gather, idx, path.P, path.R, path.M, T.off,
                              T.goff, T.size, T.dt, T.F[0], path.C[0], T.G[0],
                              *T.f64(path.C[1]), path.V)
                if r[0]:
                    path.interp_time += perf_counter() - t0
                    path.step_time = (perf_counter() - t0) / r[0]
            done, j = r
        finally:
            for s, o in rebound:
                T.off[s] = o
        if j >= 0:
            for G in T.G:
                G[:] = 0
            self.log.append(f"run(): guard failed after {done} compiled steps: "
                            f"{path.row_desc[j]}; continuing in Python")
        if done:
            self._finish(path, args)
        return done


# ---- one call, unrolled ----
_MISS = object()


def _alone():
    """What sys.getrefcount says, in the unrolled call's code, of an object that only its
    container refers to: the ring of results (`for q in ring`) and a parameter's .grad
    (`g = t._grad`) are both held once there, by a local and by getrefcount's argument. It
    depends on the interpreter (3 on CPython 3.11); if the two patterns disagree, no object is
    ever taken for reuse (-1)."""
    class Holder:
        pass
    ring, holder = [object(), None], Holder()
    holder._grad = object()
    for q in ring:
        if q is not None:
            in_ring = sys.getrefcount(q)
            break
    g = holder._grad
    as_grad = sys.getrefcount(g)
    return in_ring if in_ring == as_grad else -1


_ALONE = _alone()


def _hot_source(path, sig, args):
    """Python source of `hot(args)`: one replay of `path` with the checks and bookkeeping of
    _prepare/_replay/_finish unrolled for this path (no loops over guards, leaves or inputs).
    It returns _MISS, having changed nothing, when any check fails (the general path then
    decides), or when a value guard fails inside the program (state as before the call).
    A result tensor of an earlier call that nothing else holds any more is reused for the
    result, and so is a .grad tensor for the parameter's next .grad: no one can tell, and it
    saves making one tensor and freeing another.
    """
    ns = {"MISS": _MISS, "Tensor": Tensor, "TAPE": TAPE, "arg_key": _arg_key, "path": path,
          "copy": _copy, "fresh_copy": _fresh_copy, "make": _make, "bind": _bind_array,
          "refcount": sys.getrefcount, "weakcount": weakref.getweakrefcount, "ALONE": _ALONE}
    a = [f"a{i}" for i in range(len(sig))]
    L = ["def hot(args):", f"    if len(args) != {len(sig)}:", "        return MISS"]
    if sig:
        L.append(f"    {', '.join(a)}, = args")
    for i, k in enumerate(sig):
        ns[f"K{i}"] = k
        if k[0] == "T":     # as _arg_key, for this call's classes and objects (else: general)
            x = args[i]
            ns[f"CLS{i}"], ns[f"S{i}"], ns[f"D{i}"], ns[f"RG{i}"] = (
                type(x), x._shape, x._dt, x._rg)
            L += [f"    if (type({a[i]}) is not CLS{i} or {a[i]}._shape != S{i} or "
                  f"{a[i]}._dt is not D{i} or {a[i]}._rg is not RG{i}",
                  f"            or {a[i]}._slot {'<' if k[4] else '>='} 0):", "        return MISS"]
        else:
            L += [f"    if arg_key({a[i]}) != K{i}:", "        return MISS"]
    if path.closure:
        L.append("    try:")
        for j, (cell, obj) in enumerate(path.closure):
            ns[f"CELL{j}"], ns[f"OBJ{j}"] = cell, obj
            L += [f"        if CELL{j}.cell_contents is not OBJ{j}:", "            return MISS"]
        L += ["    except ValueError:", "        return MISS"]
    for j, (_, get, expected) in enumerate(path.pyguards):
        ns[f"PG{j}"], ns[f"PE{j}"] = get, expected
        L += [f"    if PG{j}(args) != PE{j}:", "        return MISS"]
    for j, lf in enumerate(path.leaves):
        if lf.pos >= 0:
            L.append(f"    t{j} = {a[lf.pos]}")
        else:
            ns[f"REF{j}"] = lf.ref
            L += [f"    t{j} = REF{j}()", f"    if t{j} is not None and t{j}._slot != {lf.slot}:",
                  "        return MISS"]
        L.append(f"    g{j} = t{j}._grad if t{j} is not None else None")
        if lf.grad_in < 0:
            L += [f"    if g{j} is not None:", "        return MISS"]
        else:
            L += [f"    if g{j} is None and t{j} is not None:", "        return MISS"]
    # every check has passed: from here on the call replays
    L += ["    T = TAPE", "    off = T.off"]
    for n, (d, k, get, _) in enumerate(path.consts):
        ns[f"CG{n}"] = get
        L.append(f"    path.C[{d}][{k}] = CG{n}(args)")
    rebinds = []
    for pos, s in path.inputs:
        if sig[pos][0] == "T":
            rebinds.append((pos, s))
        else:
            L.append(f"    bind({a[pos]}, {s})")
    if rebinds:
        L.append("    rb = []")
        for pos, s in rebinds:
            qs = ", ".join(str(q) for q in [s] + path.views_of[s])
            L += [f"    if {a[pos]}._slot != {s}:", f"        x = off[{a[pos]}._slot]",
                  f"        for q in ({qs},):", "            rb.append((q, off[q]))",
                  "            off[q] = x"]
    for j, lf in enumerate(path.leaves):
        if lf.copy_in:
            L += [f"    if g{j} is not None and g{j}._slot != {lf.grad_in}:",
                  f"        copy(g{j}._slot, {lf.grad_in})"]
    res = []
    for i, (_, key) in enumerate(path.out_keys):
        ns[f"KEY{i}"] = key
        res.append(f"r{i}")
        # a result of the last calls that nothing else refers to (see _alone) and whose slot
        # no other tensor names takes the result
        L += [f"    ring{i} = path.keep[{i}]", f"    p{i} = None", "    if T.n == 0:",
              f"        for q in ring{i}:",
              "            if (q is not None and refcount(q) == ALONE and T.refs[q._slot] == 1",
              f"                    and T.key[q._slot] == KEY{i} and q._slot not in T.flagged",
              "                    and not weakcount(q) and not q.__dict__):",
              f"                p{i} = q", "                break", "        q = None",
              f"    if p{i} is not None:", f"        r{i} = p{i}._slot", "    else:",
              f"        free = T.free.get(KEY{i})",
              f"        r{i} = free.pop() if free else T.alloc(*KEY{i})"]
    L += ["    path.replays += 1",
          "    fa = path._fargs if path._fgen == T.gen else path.fast_args()"]
    call = f"path.fast.program(*fa{''.join(', ' + r for r in res)})"
    if rebinds:
        L += ["    try:", f"        j = {call}", "    finally:", "        for q, o in rb:",
              "            off[q] = o"]
    else:
        L.append(f"    j = {call}")
    L.append("    if j >= 0:")
    for i in range(len(res)):
        L += [f"        if p{i} is None:", f"            T.refs[r{i}] += 1",
              f"            T.release(r{i})"]
    L += ["        for G in T.G:", "            G[:] = 0", "        return MISS"]
    for j, lf in enumerate(path.leaves):
        go = lf.grad_out
        L.append(f"    if t{j} is not None:")
        if go is None:
            L += [f"        t{j}._grad = None", f"        T.set_grad_of(t{j}._slot, -1)"]
        elif go._slot == lf.grad_in:
            L += [f"        if g{j}._slot != {lf.grad_in}:",
                  f"            copy({lf.grad_in}, g{j}._slot)"]
        else:   # a new .grad tensor; the old one takes its values if only t{j} holds it
            ns[f"GO{j}"], ns[f"GKEY{j}"] = go, TAPE.key[go._slot]
            L += [f"        if (g{j} is not None and T.n == 0 and refcount(g{j}) == ALONE",
                  f"                and T.refs[g{j}._slot] == 1 and T.key[g{j}._slot] == GKEY{j}",
                  f"                and g{j}._shape == GO{j}._shape and g{j}._dt is GO{j}._dt",
                  f"                and not g{j}._rg and g{j}._slot not in T.flagged",
                  f"                and not weakcount(g{j}) and not g{j}.__dict__):",
                  f"            copy({go._slot}, g{j}._slot)", "        else:",
                  f"            t{j}._grad = fresh_copy({go._slot}, GO{j}._shape, GO{j}._dt)",
                  f"            T.set_grad_of(t{j}._slot, t{j}._grad._slot)"]
    counter = iter(range(len(res)))

    def expr(o):
        kind = o[0]
        if kind == "T":
            i = next(counter)
            ns[f"O{i}"] = o
            L.extend([f"    if p{i} is None:",
                      f"        p{i} = make(r{i}, O{i}[2], O{i}[3], O{i}[4], -1, O{i}[5])",
                      "    else:",
                      f"        p{i}._shape, p{i}._dt, p{i}._rg = O{i}[2], O{i}[3], O{i}[4]",
                      f"        p{i}._rec, p{i}._fn, p{i}._epoch = -1, O{i}[5], T.epoch",
                      f"    if ring{i}[1] is not p{i}:",
                      f"        ring{i}[0], ring{i}[1] = ring{i}[1], p{i}"])
            return f"p{i}"
        if kind == "arg":
            return a[o[1]]
        if kind == "item":
            return f"float(T.value({o[1]})[0])"
        k = len(ns)
        if kind == "seq":
            ns[f"SEQ{k}"] = o[1]
            return f"SEQ{k}(iter(({''.join(expr(x) + ', ' for x in o[2])})))"
        ns[f"CONST{k}"] = o[1]
        return f"CONST{k}"
    L.append(f"    return {expr(path.outputs)}")
    return "\n".join(L) + "\n", ns


def _bind_array(a, s):
    """Copy NumPy argument a into the values of input slot s."""
    d, n = TAPE.key[s]
    o = TAPE.off[s]
    TAPE.F[d][o:o + n] = np.asarray(a, TAPE.F[d].dtype).reshape(-1)


def tg_index(ix, a):
    """Rows ix of a tensor (a differentiable gather) or of a NumPy array."""
    if isinstance(a, Tensor):
        from .tensor import _make_np
        return _make_np(np.asarray(ix, np.int64))
    return ix


def _tensor_outputs(o):
    if o is None:
        return []
    if o[0] == "T":
        return [o]
    if o[0] == "seq":
        return [t for x in o[2] for t in _tensor_outputs(x)]
    return []


def _python_numbers(fn):
    """Guards on the Python numbers fn reads from its closure and globals (a changed `lr = ...`
    between calls records again instead of replaying the old value)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    out = []
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if isinstance(v, (int, float)) and not isinstance(v, _Live):
            out.append((f"closure variable {name} == {v!r}",
                        lambda args, c=cell: c.cell_contents, v))
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    g = getattr(fn, "__globals__", {})
    for name in sorted(names):
        v = g.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, _Live):
            out.append((f"global {name} == {v!r}", lambda args, n=name: g.get(n), v))
    return out


def _closure_tensors(fn):
    """(cell, tensor) for the tensors fn's closure holds: rebinding one is a guard."""
    out = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            if isinstance(cell.cell_contents, Tensor):
                out.append((cell, cell.cell_contents))
        except ValueError:
            pass
    return out


def _splice_problem(rec, owners, bumps0):
    """Why a recording whose result requires grad cannot be spliced into later tapes."""
    if any(e[1] not in (P_CMP, P_VALUE) for e in rec.events):
        return "it calls backward() and returns a result that requires grad"
    if rec.hosted:
        return "it applies an autograd.Function and returns a result that requires grad"
    if TAPE.nbumps != bumps0:
        return "it modifies tensors in place and returns a result that requires grad"
    if any(s not in owners for s, r in TAPE.owners.items() if r() is not None):
        return "it creates leaf tensors that require grad"
    return None


def _unwrap(r, args, wrapped):
    """The function's result with live argument wrappers replaced by the arguments."""
    for a, w in zip(args, wrapped):
        if r is w:
            return a
    if isinstance(r, (tuple, list)):
        return type(r)(_unwrap(x, args, wrapped) for x in r)
    return r


def _scalar(r):
    while isinstance(r, (tuple, list)) and r:
        r = r[0]
    if isinstance(r, Tensor):
        with Quiet():
            return float(r._value().reshape(-1)[0])
    try:
        return float(r)
    except (TypeError, ValueError):
        return np.nan


def compile(fn=None, *, max_paths=MAX_PATHS, specialize_after=SPECIALIZE_AFTER):
    """Record fn once and replay its tape on later calls (usable as @tapegrad.compile).

    A path first replays through the interpreter; it is compiled to code of its own for its
    shapes (tapegrad.codegen, cached on disk) when that pays. With specialize_after="auto"
    (the default) that is decided by cost: at once if its code is in the disk cache; for a
    run(n), when the steps still to run at the interpreted rate measured on this path, added
    to its interpreted time so far, would take longer than compiling (about 2 s:
    codegen.COMPILE_COST); for calls one at a time, once the
    interpreted steps so far have taken as long as compiling. explain() says which tier each
    path runs in and why. An integer compiles a path once it has
    replayed more than that many steps (calls plus run() steps); None keeps it interpreted."""
    if fn is None:
        return lambda f: Compiled(f, max_paths, specialize_after)
    return Compiled(fn, max_paths, specialize_after)
