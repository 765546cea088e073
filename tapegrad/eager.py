"""Eager recognition: a training step seen again and again runs as one compiled program.

An eager loop (forward, loss, ``backward()``, ``optimizer.step()``, ``zero_grad()``) records
the same records every step: at ``backward()`` the tape holds the last step's optimizer
update, this step's forward (pending, the forward is deferred) and the loss, and the reverse
schedule from the loss is the same too. ``backward`` here gives that program a key (its records
without their version counters, metadata, the reverse schedule, which slots tensors still
name); a key seen often enough gets a path of its own, the rows a compiled function records
(forward rows, then the schedule, with the affine-then-loss regions fused, tapegrad.fuse),
written by tapegrad.codegen. A later step with that key runs it in one call instead of the
interpreters: the forward, the fused pass over the data and the backward at once.

When: as compile() does, by cost. A key's interpreted steps (flush and reverse) are timed; its
program is compiled once they have taken as long as compiling would (about 2 s the first time
ever, 0.05 s from the disk cache), so a loop pays at most about twice what it would with a
perfect choice. Steps under MIN_STEP seconds interpreted are not keyed at all: the recorded
Python is then most of a step, and recognition would cost more than it saves.

What stays the interpreters': any other backward (retain_graph, autograd.grad, a gradient
argument that is a tensor, while compile() records), a step whose schedule fails its checks
(version counters, a freed graph: the interpreter raises PyTorch's error), and any step whose
key differs from every compiled one (a new shape, a branch, a held intermediate): the program
changes, the key changes, the interpreters run it. Immediates (the learning rate, Adam's bias
corrections) are read at run time, so a scheduler does not change the key, except those inside
a fused region, which the code has as literals (the exponent of ``** 2``) and which the key
holds by value.

Results: a program without a fused region computes what the interpreters do, bit for bit
(tapegrad.codegen). A fused region sums w's gradient per row or block (tapegrad.fuse), so
that gradient rounds differently, as under compile().

Off with ``tapegrad.set_eager_compile(False)`` or ``TAPEGRAD_EAGER_COMPILE=0`` in the
environment; ``tapegrad.eager.explain()`` says what was recognised and compiled.
"""
import os
from time import perf_counter

import numpy as np

from . import threads
from .interpret import (CHECK, P_ACC, P_AFFINE_FWD, P_BWD, P_FWD, P_HOST, P_ZERO,
                        reverse_schedule)
from .kernels import entry
from .ops import FREED, OP_INDEX

ENABLED = os.environ.get("TAPEGRAD_EAGER_COMPILE", "1") != "0"
MIN_STEP = 2e-4     # seconds: interpreted steps shorter than this are not keyed
MIN_SEEN = 2        # sightings of a key before its program may be compiled
COMPILE_AFTER = None    # seconds of interpreted steps before compiling; None: its cost
MAX_KEYS = 64       # keys remembered (their compiled code stays in codegen's module cache)

_entries = {}       # key -> _Entry, oldest first
_times = {}         # rough key (records, done, start, seed) -> last interpreted seconds
_log = []
_V = np.zeros(1)    # the values array programs take (eager programs have no guards)


def set_eager_compile(enabled):
    """Turn eager recognition on or off (tapegrad-only; on by default)."""
    global ENABLED
    ENABLED = bool(enabled)
    if not ENABLED:
        clear()


def explain():
    """What eager recognition did, one line per decision."""
    return "\n".join(_log) if _log else "eager recognition: nothing recognised yet"


def clear():
    """Forget every key (and release the slots their programs hold) and what explain() says."""
    for e in _entries.values():
        e.release()
    _entries.clear()
    _times.clear()
    _log.clear()


class _Entry:
    """One recognised program: how often it was seen, how long its interpreted steps took,
    and once compiled, its module and what the module's call takes."""

    def __init__(self):
        self.seen = 0
        self.interp = 0.0
        self.cost = None        # seconds to compile (or load) its program
        self.path = None
        self.fast = None        # its module; False: it cannot be compiled
        self.freed = None       # the records its backward frees, as the interpreter would
        self.literals = ()      # (dtype code, index) of the immediates its code has as
        self.literal_values = ()    # literals, and their values
        self.args = None
        self.ids = None

    def release(self):
        from .tape import TAPE
        if self.path is not None:
            for s in self.path.scratch:
                TAPE.release(s)
            self.path.scratch = []


class _Program:
    """What tapegrad.codegen reads of a program (as of compile.Path): records, metadata,
    immediates and program rows, on canonical slots; which immediates are read at run time;
    which values tensors still name (a fused pass must store them)."""

    def __init__(self, T, step):
        from . import fuse
        self.R, self.M = step.R, T.M[:T.nmeta].copy()
        self.C = [T.C[d][:T.nconst[d]].copy() for d in (0, 1)]
        self.consts = []        # none live: only fused code has literals, and the key
        self.kept = step.kept   # holds those by value
        self.nslots = len(step.slots)
        self.scratch = []       # the tape's slots of the fused passes' scratch
        self.parallel = self.fused = self.serial = False
        self.size, self.dt = T.size[step.slots], T.dt[step.slots]
        rows = [(P_FWD, T.done, T.n, 0, 0, 0)] + [tuple(r) for r in step.rows.tolist()]
        rows, _ = fuse.affine_loss(rows, [None] * len(rows), self.R, self.M, self.size,
                                   self.dt, self._scratch)
        self.P = np.array(rows, np.int64).reshape(-1, 6)

    def _scratch(self, dt, n):
        from .tape import TAPE
        s = TAPE.alloc(dt, n)
        TAPE.refs[s] += 1
        self.scratch.append(s)
        self.size = np.append(self.size, n)
        self.dt = np.append(self.dt, dt)
        return self.nslots + len(self.scratch) - 1


class _Step:
    """This step's program with its slots renamed in order of first use: a loop's steps
    allocate their slots in a cycle (the last step's loss is still alive when this one's is
    made), and renamed, they are one program. The compiled code takes the slots' offsets
    gathered in that order. The key and the renamed records come from one compiled call
    (_key): built from NumPy pieces it was a sixth of an eager step's time on 10,000 x 100."""

    def __init__(self, T, rec, seed, rows, reached):
        global _canon, _buf
        n, R = T.n, T.R
        if len(_canon) < T.nslots:
            _canon = np.full(2 * T.nslots, -1, np.int64)
        size = (17 + 7 * n + 6 * len(rows) + T.nmeta + len(reached)
                + 4 * (3 * n + 2 * len(rows) + 1))
        if len(_buf) < size:
            _buf = np.empty(2 * size, np.int64)
        refs = T.refs
        kept = np.array([s for s in R[T.done:n, 3].tolist() if refs[s] > 0], np.int64)
        m, k = _key(R[:n], rows, seed, T.vid, _canon, T.M[:T.nmeta], T.size, T.dt, kept,
                    reached, T.done, rec, int(int(threads.COUNT[0]) == 1), _buf)
        buf = _buf[:k].copy()
        self.key = buf[:k - m].tobytes()
        self.n, self.nrows = n, len(rows)
        self.slots = buf[k - m:].copy()
        self._buf = buf

    @property
    def R(self):
        """The records, renamed (columns opcode, a, b, out, aux, flags)."""
        n = self.n
        return self._buf[16:16 + 6 * n].reshape(n, 6).copy()

    @property
    def rows(self):
        """The reverse schedule's rows, its zero and accumulate rows renamed."""
        a = 16 + 6 * self.n
        return self._buf[a:a + 6 * self.nrows].reshape(self.nrows, 6).copy()

    @property
    def kept(self):
        """Which renamed slots tensors still name (of the pending records' results)."""
        k, nkept = len(self._buf) - len(self.slots), int(self._buf[5])
        return frozenset(self._buf[k - nkept:k].tolist())


_canon = np.full(0, -1, np.int64)   # _key's renaming scratch (all -1 between calls)
_buf = np.empty(0, np.int64)        # _key's output


@entry
def _key(R, rows, seed, vid, canon, M, size, dt, kept, reached, done, rec, one_thread, out):
    """Rename the slots of records R (columns 0-5) and of the schedule's zero and accumulate
    rows in order of first use (the records' operands and results, then those rows, then the
    seed), and write into `out` the step's key: a header of counts, the renamed records and
    rows, the metadata without the rows an index record gathers (X[idx] of a minibatch: the
    compiled program reads them from the tape at run time, as the interpreter does; their
    count and width stay in the key, so the batches of an epoch are one program), the
    renamed slots the pass reached, the slots' sizes and dtypes, for each slot the first that
    shares its storage (vid), the renamed slots tensors still name (`kept`, sorted); then the
    slots in their new order. Returns (number of slots, length written); `canon` (all -1) is
    left all -1."""
    n, nr, nm = R.shape[0], rows.shape[0], M.shape[0]
    order = np.empty(3 * n + 2 * nr + 1, np.int64)
    m = 0
    for i in range(n):
        for c in range(1, 4):
            s = R[i, c]
            if s >= 0 and canon[s] < 0:
                canon[s] = m
                order[m] = s
                m += 1
    for c in (1, 2):
        for j in range(nr):
            kind = rows[j, 0]
            if kind == P_ACC or (kind == P_ZERO and c == 1):
                s = rows[j, c]
                if s >= 0 and canon[s] < 0:
                    canon[s] = m
                    order[m] = s
                    m += 1
    if seed >= 0 and canon[seed] < 0:
        canon[seed] = m
        order[m] = seed
        m += 1
    k = 16
    for i in range(n):
        for c in range(6):
            v = R[i, c]
            out[k] = canon[v] if 1 <= c <= 3 and v >= 0 else v
            k += 1
    for j in range(nr):
        kind = rows[j, 0]
        for c in range(6):
            v = rows[j, c]
            if (kind == P_ACC and (c == 1 or c == 2)) or (kind == P_ZERO and c == 1):
                v = canon[v]
            out[k + c] = v
        k += 6
    out[k:k + nm] = M
    for i in range(n):
        if R[i, 0] == OP_INDEX:
            a = k + R[i, 4]
            out[a + 2:a + 2 + M[R[i, 4]]] = 0
    k += nm
    nreach = 0
    for j in range(reached.shape[0]):
        if reached[j] >= 0:
            out[k] = canon[reached[j]]
            k += 1
            nreach += 1
    for j in range(m):
        out[k + j] = size[order[j]]
        out[k + m + j] = dt[order[j]]
        out[k + 2 * m + j] = j
        for i in range(j):
            if vid[order[i]] == vid[order[j]]:
                out[k + 2 * m + j] = i
                break
    k += 3 * m
    named = np.sort(np.array([canon[s] for s in kept], np.int64))
    nkept = 0
    for j in range(named.shape[0]):
        if j == 0 or named[j] != named[j - 1]:
            out[k] = named[j]
            k += 1
            nkept += 1
    head = (n, nr, nm, nreach, m, nkept, done, rec, canon[seed] if seed >= 0 else -1,
            one_thread)
    for j in range(10):
        out[j] = head[j]
    out[10:16] = 0
    for j in range(m):
        out[k + j] = order[j]
        canon[order[j]] = -1
    return m, k + m


def _literals(T, path):
    """The immediates that fused code has as literals: those of its regions' records."""
    out = []
    for r in path.P:
        if r[0] == P_AFFINE_FWD:
            for i in range(int(r[1]), int(r[2]) + 1):
                for s in (int(T.R[i, 1]), int(T.R[i, 2])):
                    d = int(T.dt[T.R[i, 3]])
                    if -(1 << 39) < s < 0 and np.isfinite(T.C[d][-s - 1]):
                        out.append((d, -s - 1))
    return tuple(out)


def backward(T, rec, seed, grad, interpreted):
    """T.backward(rec, seed, grad, retain_graph=False) for an eager step: run its compiled
    program if it has one, else `interpreted()` (timed, for the choice of compiling)."""
    T._sync()
    rough = (T.n, T.done, rec)
    last = _times.get(rough)
    if last is None or last < MIN_STEP:
        return _timed(interpreted, rough, None)
    status, _, _, rows, reached = reverse_schedule(
        T.R, rec, seed, T.M, T.vid, T.leaf, T.retain, T.grad_of, T.ver, T.needs, CHECK)
    if status or T.hosts and (rows[:, 0] == P_HOST).any():
        return _timed(interpreted, rough, None)     # it raises the interpreter's error, or
                                                    # runs a backward that is Python
    step = _Step(T, rec, seed, rows, reached)
    e = _entries.get(step.key)
    if e is None:
        e = _entries[step.key] = _Entry()
        if len(_entries) > MAX_KEYS:
            old = next(iter(_entries))
            _entries.pop(old).release()
    elif e.fast:
        if all(T.C[d][k] == v for (d, k), v in zip(e.literals, e.literal_values)):
            if _run(T, e, step, seed, grad):
                return T.reached(reached)
    e.seen += 1
    if e.fast is None and e.seen >= MIN_SEEN:
        _consider(T, e, step)
        if e.fast and _run(T, e, step, seed, grad):
            return T.reached(reached)
    return _timed(interpreted, rough, e)


def _timed(interpreted, rough, e):
    t0 = perf_counter()
    out = interpreted()
    t = perf_counter() - t0
    if len(_times) > 4 * MAX_KEYS:
        _times.clear()
    _times[rough] = t
    if e is not None:
        e.interp += t
    return out


def _consider(T, e, step):
    """Compile e's program once its interpreted steps have taken as long as that would."""
    from . import codegen
    if e.path is None:
        path = e.path = _Program(T, step)
        e.freed = step.rows[step.rows[:, 0] == P_BWD, 1].copy()
        e.literals = _literals(T, path)
        e.literal_values = [T.C[d][k] for d, k in e.literals]
        e.at = np.concatenate([np.zeros(path.nslots, np.int64),
                               np.array(path.scratch, np.int64)])
        e.off, e.goff = np.zeros(len(e.at), np.int64), np.zeros(len(e.at), np.int64)
        try:
            e.cost, _, cached, e.text = codegen.cost(path, path.size, path.dt)
        except Exception as err:        # too large, or a record codegen has no code for
            e.fast = False
            e.release()
            _log.append(f"eager step of {T.n} records: stays interpreted "
                        f"({type(err).__name__}: {err})")
            return
    if e.interp < (e.cost if COMPILE_AFTER is None else COMPILE_AFTER):
        return
    try:
        e.fast = codegen.load(e.text)
    except Exception as err:
        e.fast = False
        e.release()
        _log.append(f"eager step of {T.n} records: compiling failed, it stays interpreted "
                    f"({type(err).__name__}: {err})")
        return
    fused = " with a fused pass" if e.path.fused else ""
    _log.append(f"eager step of {T.n} records{fused}: compiled after {e.seen} steps that took "
                f"{e.interp:.2f} s interpreted (compiling: about {e.cost:.2f} s)")


def _args(T, e):
    ids = (T.gen, id(T.C[0]), id(T.C[1]), id(T.M))
    if e.ids != ids:
        from . import codegen
        have = {"off": e.off, "goff": e.goff, "F32": T.F[0], "C32": T.C[0], "G32": T.G[0],
                "F64": T.F[1], "C64": T.C[1], "G64": T.G[1], "V": _V, "M": T.M,
                "TH": threads.COUNT, "TABLE": e.path.table}
        e.arrays = tuple(have[a] for a in e.fast.ARRAYS)
        e.args = codegen.pointers(e.arrays, e.fast)
        e.ids = ids
    return e.args


def _run(T, e, step, seed, grad):
    """Run e's program for this step (True), or say it cannot run (False)."""
    from numba.core.errors import NumbaError
    _bind(e.at, step.slots, T.off, T.goff, e.off, e.goff)
    dt, n = T.key[seed]
    o = T.goff[seed]
    T.G[dt][o:o + n] = grad
    try:
        e.fast.program(_args(T, e))
    except NumbaError as err:       # not compiled yet: the first call compiles
        T.G[dt][o:o + n] = 0
        e.fast = False
        e.release()
        _log.append(f"eager step of {T.n} records: its code did not compile, it stays "
                    f"interpreted: {str(err).splitlines()[0]}")
        return False
    T.n_live -= _mark_freed(T.R, e.freed, FREED)
    T.done = T.n
    return True


@entry
def _bind(at, slots, off_of, goff_of, off, goff):
    """The offsets of the program's slots: its canonical slots are this step's `slots`, then
    its scratch slots (already in `at`)."""
    at[:slots.shape[0]] = slots
    for j in range(at.shape[0]):
        off[j] = off_of[at[j]]
        goff[j] = goff_of[at[j]]


@entry
def _mark_freed(R, freed, flag):
    """Flag records `freed` as the interpreter's backward does; returns how many."""
    for i in freed:
        R[i, 5] |= flag
    return freed.shape[0]
