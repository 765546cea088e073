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
    gathered in that order."""

    def __init__(self, T, rec, seed, rows, reached):
        n = T.n
        self.R, self.rows = T.R[:n, :6].copy(), rows.copy()
        canon = np.full(T.nslots, -1, np.int64)
        self.slots, aliasing = _canonical(self.R, self.rows, seed, T.vid, canon)
        self.kept = frozenset(int(canon[s]) for s in T.R[T.done:n, 3] if T.refs[s] > 0)
        got = reached[reached >= 0]
        self.key = b"|".join([
            self.R.tobytes(), _shape_metadata(self.R, T.M[:T.nmeta]), self.rows.tobytes(),
            canon[got].tobytes(), T.size[self.slots].tobytes(), T.dt[self.slots].tobytes(),
            aliasing.astype(np.int64).tobytes(),
            repr((n, T.done, rec, int(canon[seed]), sorted(self.kept),
                  int(threads.COUNT[0]) == 1)).encode()])


def _shape_metadata(R, M):
    """The metadata as the step's key holds it: without the rows an index record gathers
    (X[idx] of a minibatch), which the compiled program reads from the tape's metadata at run
    time, as the interpreter does; their count and width stay in the key. So the batches of
    an epoch drawn by index are one program, not a key each."""
    at = R[R[:, 0] == OP_INDEX, 4]
    if not len(at):
        return M.tobytes()
    M = M.copy()
    for m in at.tolist():
        M[m + 2:m + 2 + M[m]] = 0
    return M.tobytes()


@entry
def _canonical(R, rows, seed, vid, canon):
    """Rename the slots of records R and of the schedule's zero and accumulate rows in place,
    in order of first use (the records' operands and results, then those rows, then the
    seed); canon (all -1) receives the renaming. Returns the slots in that order, and for
    each, the position of the first of them that shares its storage (vid). One compiled
    call: done with NumPy's unique and fancy indexing it took most of an eager step's
    Python time on 10,000 x 100."""
    order = np.empty(3 * R.shape[0] + 2 * rows.shape[0] + 1, np.int64)
    m = 0
    for i in range(R.shape[0]):
        for c in range(1, 4):
            s = R[i, c]
            if s >= 0 and canon[s] < 0:
                canon[s] = m
                order[m] = s
                m += 1
    for c in (1, 2):
        for j in range(rows.shape[0]):
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
    for i in range(R.shape[0]):
        for c in range(1, 4):
            if R[i, c] >= 0:
                R[i, c] = canon[R[i, c]]
    for j in range(rows.shape[0]):
        kind = rows[j, 0]
        if kind == P_ACC:
            rows[j, 1], rows[j, 2] = canon[rows[j, 1]], canon[rows[j, 2]]
        elif kind == P_ZERO:
            rows[j, 1] = canon[rows[j, 1]]
    slots = order[:m].copy()
    aliasing = np.arange(m)
    for j in range(m):
        for i in range(j):
            if vid[slots[i]] == vid[slots[j]]:
                aliasing[j] = i
                break
    return slots, aliasing


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
    at = e.at
    at[:len(step.slots)] = step.slots
    np.take(T.off, at, out=e.off)
    np.take(T.goff, at, out=e.goff)
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
    T.R[e.freed, 5] |= FREED
    T.n_live -= len(e.freed)
    T.done = T.n
    return True
