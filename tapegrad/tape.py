"""The tape: integer records, the slot table and the arenas that hold tensor values.

Invariants:
- A slot is a fixed block of one float arena (dtype code 0 = float32, 1 = float64); a tensor
  names its slot, aliases (``.data``, ``view``, ``detach``) share it. Slots are reference-counted
  by the tensors that name them; a slot whose last tensor dies while records exist is freed only
  when the tape is reset, so no record ever sees a slot reused under it.
- Records run in order. The forward is deferred: ops append records, and ``flush()`` runs the
  pending ones in one compiled call before any value is read.
- The tape is reset (emptied) whenever no record is pending and no differentiable record is
  still live, which in a training loop is right after each ``backward()``.
"""
import weakref

import numpy as np

from . import eager
from .interpret import (_NO_VALUES, CHECK, FREE, GRAPH_FREED, run_forward, run_program,
                        run_reverse)
from .ops import DIFF, FREED, GA, GB, NF, OP_HOST, OP_SETSTRIDED, OPS

NP_FLOATS = (np.float32, np.float64)


def _grown(a, need, fill=0):
    # Doubling, or a quarter more than a large request: what follows a large tensor (its
    # targets, a step's intermediates) then fits without copying it. Zeros come from the OS
    # untouched: headroom, and a gradient arena the size of the values, cost memory only where
    # they are written.
    n = max(need + need // 4, 2 * len(a))
    new = np.zeros(n, a.dtype) if fill == 0 else np.full(n, fill, dtype=a.dtype)
    new[:len(a)] = a
    return new




class Tape:
    def __init__(self):
        self.F = [np.zeros(4096, t) for t in NP_FLOATS]     # values
        self.G = [np.zeros(4096, t) for t in NP_FLOATS]     # gradients, same offsets
        self.top = [0, 0]
        cap = 1024
        self.off = np.zeros(cap, np.int64)          # where a slot's value is in F
        self.goff = np.zeros(cap, np.int64)         # where its gradient is in G (its own block)
        self.vid = np.zeros(cap, np.int64)          # the slot whose version counter it shares
        self.size = np.zeros(cap, np.int64)
        self.dt = np.zeros(cap, np.int64)
        self.leaf = np.zeros(cap, np.int8)          # slot of a leaf that requires grad
        self.retain = np.zeros(cap, np.int8)        # slot of a non-leaf with retain_grad()
        self.grad_of = np.full(cap, -1, np.int64)   # slot holding the .grad of this slot
        self.ver = np.zeros(cap, np.int64)          # version counter, bumped by in-place ops
        self.bumped = set()                         # slots whose version is not 0
        self.nbumps = 0                             # in-place writes so far
        self.needs = np.zeros(cap, np.int8)         # scratch for the reverse interpreter
        self.nslots = 0
        self.key = []                               # (dtype code, size) of each slot
        self.refs = []                              # tensors naming each slot
        self.free = {}                              # (dtype code, size) -> free slot ids
        self.deferred = []                          # freed while records may refer to them
        self.flagged = set()                        # slots with leaf/retain/grad_of set
        self.aliased = {}                           # slot made by alias() -> its base slot
        self.owners = {}                            # slot -> weakref of the tensor owning .grad
        self.rows = []                              # records not yet synced, NF ints each
        self.shapes = []                            # output shape of each record (dump only)
        self.recrefs = []                           # tensors whose grad_fn is each record
        self.gc_at = 512                            # collect unreachable graphs past this size
        self.R = np.zeros((1024, NF), np.int64)
        self.meta = []                              # op metadata (shapes, strides, offsets)
        self.M = np.zeros(1024, np.int64)
        self.consts = ([], [])                      # immediates per dtype code
        self.C = [np.zeros(256, t) for t in NP_FLOATS]
        self.n = 0              # records
        self.synced = 0         # records copied into R
        self.done = 0           # records executed
        self.nmeta = 0
        self.nconst = [0, 0]
        self.n_live = 0         # differentiable records not yet freed
        self.epoch = 0          # bumped at every reset; records of older epochs are gone
        self.rec = None         # the Recorder while tapegrad.compile records a function
        self.gen = 0            # bumped whenever an arena or the slot table is reallocated
        self.wide = False       # a float64 slot exists (see f64)
        self.hosts = []         # the Python backward of each OP_HOST record (autograd.Function)
        self.busy = 0           # > 0 while a Python backward runs: no reset, no collection

    # ---- slots ----
    def alloc(self, dt, n):
        free = self.free.get((dt, n))
        if free:
            return free.pop()
        s = self.nslots
        if s == len(self.off):
            self._grow_slots(s + 1)
        if dt == 1 and not self.wide:
            self.wide = True
            self.gen += 1                   # the interpreters' arguments change type
        o = self.top[dt]
        if o + n > len(self.F[dt]):
            self.F[dt] = _grown(self.F[dt], o + n)
            self.gen += 1
            self.G[dt] = _grown(self.G[dt], len(self.F[dt]))   # keeps gradients in flight
        self.top[dt] = o + n
        self.off[s] = self.goff[s] = o
        self.vid[s] = s
        self.size[s] = n
        self.dt[s] = dt
        self.key.append((dt, n))
        self.free.setdefault((dt, n), [])
        self.refs.append(0)
        self.nslots = s + 1
        return s

    def f64(self, C64=None):
        """The float64 values, constants (C64, else the tape's) and gradients as the
        interpreters take them. Until a float64 slot exists they are None: the interpreters
        then run in a variant that has only the float32 code, so float32-only work never
        compiles the float64 kernels (half the first-ever compile)."""
        if self.wide:
            return self.F[1], self.C[1] if C64 is None else C64, self.G[1]
        return None, None, None

    def _grow_slots(self, need):
        self.gen += 1
        for name in ("off", "goff", "vid", "size", "dt", "leaf", "retain", "ver", "needs"):
            setattr(self, name, _grown(getattr(self, name), need))
        self.grad_of = _grown(self.grad_of, need, -1)

    def release(self, s):
        self.refs[s] -= 1
        if self.refs[s] == 0:
            if self.n:
                self.deferred.append(s)
            else:
                self._free(s)

    def alias(self, base):
        """A new slot naming base's values (a view) with a gradient block of its own."""
        dt, n = self.key[base]
        s = self.alloc(dt, n)
        self.off[s] = self.off[base]
        self.vid[s] = self.vid[base]
        self.aliased[s] = base
        self.refs[base] += 1                # the values live in base's block: keep it
        return s

    def _free(self, s):
        base = self.aliased.pop(s, None)
        if base is not None:
            self.off[s] = self.goff[s]
            self.vid[s] = s
        if s in self.flagged:
            self.flagged.discard(s)
            self.leaf[s] = self.retain[s] = 0
            self.grad_of[s] = -1
            self.owners.pop(s, None)
        self.free.setdefault(self.key[s], []).append(s)
        if base is not None:
            self.release(base)

    def set_leaf(self, s, tensor, flag):
        self.leaf[s] = flag
        self.flagged.add(s)
        if flag:
            self.owners[s] = weakref.ref(tensor)

    def set_grad_of(self, s, g):
        self.grad_of[s] = g
        self.flagged.add(s)

    def value(self, s):
        """The raveled value of slot s (a view into the arena), after running pending records."""
        if self.done != self.n:
            self.flush()
        if self.rec is not None:
            self.rec.read(s)
        o = self.off[s]
        return self.F[self.key[s][0]][o:o + self.key[s][1]]

    # ---- records ----
    def const(self, dt, v):
        """The slot id naming immediate v (a Python number) cast to dtype code dt."""
        c = self.consts[dt]
        if type(v) is not float:
            if self.rec is not None:
                self.rec.bind_const(dt, len(c) + self.nconst[dt], v)
            plain = getattr(v, "_plain", None)     # a compile input: its value, no guard
            v = plain() if plain is not None else v
        c.append(float(v))
        return -len(c) - self.nconst[dt]

    def add_meta(self, values):
        i = self.nmeta + len(self.meta)
        self.meta.extend(values)
        return i

    def add_meta_array(self, head, values):
        """add_meta(head + values) for an int64 array of values (an index's rows), written
        into M without a list."""
        self._sync_meta()
        i, n = self.nmeta, len(head) + values.size
        if i + n > len(self.M):
            self.M = _grown(self.M, i + n)
        self.M[i:i + len(head)] = head
        self.M[i + len(head):i + n] = values
        self.nmeta = i + n
        return i

    def _sync_meta(self):
        if self.meta:
            m0, m1 = self.nmeta, self.nmeta + len(self.meta)
            if m1 > len(self.M):
                self.M = _grown(self.M, m1)
            self.M[m0:m1] = self.meta
            self.meta.clear()
            self.nmeta = m1

    def record(self, op, a, b, out, shape, aux=-1, flags=0, va=0, vb=0):
        self.rows.extend((op, a, b, out, aux, flags, va, vb))
        self.shapes.append(shape)
        self.recrefs.append(0)
        if flags & DIFF:
            self.n_live += 1
        self.n += 1
        return self.n - 1

    def _sync(self):
        n0, n1 = self.synced, self.n
        if n1 > n0:
            if n1 > len(self.R):
                R = np.zeros((max(n1, 2 * len(self.R)), NF), np.int64)
                R[:n0] = self.R[:n0]
                self.R = R
            self.R[n0:n1] = np.array(self.rows, np.int64).reshape(-1, NF)
            self.rows.clear()
            self.synced = n1
        if self.meta:
            self._sync_meta()
        for dt in (0, 1):
            c = self.consts[dt]
            if c:
                k0, k1 = self.nconst[dt], self.nconst[dt] + len(c)
                if k1 > len(self.C[dt]):
                    self.C[dt] = _grown(self.C[dt], k1)
                with np.errstate(over="ignore"):    # 1e39 is inf in float32, silently as
                    self.C[dt][k0:k1] = c            # in torch
                c.clear()
                self.nconst[dt] = k1

    def append(self, R, M, C, shapes):
        """Append records (with their metadata and immediates) recorded elsewhere; the caller
        has renumbered their slots, metadata and immediates to follow this tape's."""
        self._sync()
        n0, k = self.n, len(R)
        if n0 + k > len(self.R):
            grown = np.zeros((max(n0 + k, 2 * len(self.R)), NF), np.int64)
            grown[:n0] = self.R[:n0]
            self.R = grown
        self.R[n0:n0 + k] = R
        self.n = self.synced = n0 + k
        self.shapes.extend(shapes)
        self.recrefs.extend([0] * k)
        m0 = self.nmeta
        if m0 + len(M) > len(self.M):
            self.M = _grown(self.M, m0 + len(M))
        self.M[m0:m0 + len(M)] = M
        self.nmeta = m0 + len(M)
        for d in (0, 1):
            c0 = self.nconst[d]
            if c0 + len(C[d]) > len(self.C[d]):
                self.C[d] = _grown(self.C[d], c0 + len(C[d]))
            self.C[d][c0:c0 + len(C[d])] = C[d]
            self.nconst[d] = c0 + len(C[d])

    def truncate(self, n, nmeta, nconst):
        """Drop the records appended after the first n (they never ran)."""
        self.n = self.synced = self.done = n
        del self.shapes[n:]
        del self.recrefs[n:]
        self.nmeta = nmeta
        self.nconst = list(nconst)

    def flush(self):
        """Run every pending record."""
        if self.done == self.n:
            return
        self._sync()
        run_forward(self.R, self.done, self.n, self.M, self.off, self.goff, self.size, self.dt,
                    self.F[0], self.C[0], self.G[0], *self.f64())
        self.done = self.n
        if self.rec is not None or self.busy:
            return
        if self.n_live == 0:
            self.reset()
        elif self.n > self.gc_at:
            self.gc()

    def reset(self):
        self.rows.clear()
        self.shapes.clear()
        self.recrefs.clear()
        self.gc_at = 512
        self.meta.clear()
        for c in self.consts:
            c.clear()
        self.n = self.synced = self.done = self.nmeta = 0
        self.nconst = [0, 0]
        self.n_live = 0
        self.epoch += 1
        self.hosts.clear()
        refs, flagged, free, key = self.refs, self.flagged, self.free, self.key
        for s in dict.fromkeys(self.deferred):     # a slot may be deferred twice
            if refs[s] == 0:
                if s in flagged or s in self.aliased:
                    self._free(s)
                else:
                    free[key[s]].append(s)
        self.deferred.clear()

    # ---- backward ----
    def backward(self, rec, seed, grad, retain_graph, grad_of=None, retain=None, grad_slot=-1):
        """Seed G[seed] with grad (raveled; or the value of slot grad_slot) and run the reverse
        interpreter from record rec.

        `grad_of` and `retain` may replace the slot table's (autograd.grad collects gradients
        without touching any .grad). An eager step's backward may run as the compiled program
        of its step instead (tapegrad.eager)."""
        if (eager.ENABLED and self.rec is None and grad_of is None and retain is None
                and grad_slot < 0 and not retain_graph):
            return eager.backward(self, rec, seed, grad, lambda: self._backward(
                rec, seed, grad, False, None, None, -1))
        return self._backward(rec, seed, grad, retain_graph, grad_of, retain, grad_slot)

    def _backward(self, rec, seed, grad, retain_graph, grad_of, retain, grad_slot):
        self.flush()
        self._sync()
        dt = self.key[seed][0]
        o = self.goff[seed]
        if grad_slot >= 0:
            og = self.off[grad_slot]
            grad = self.F[self.key[grad_slot][0]][og:og + self.key[grad_slot][1]]
        self.G[dt][o:o + self.key[seed][1]] = grad
        retain = self.retain if retain is None else retain
        grad_of = self.grad_of if grad_of is None else grad_of
        if self.rec is not None:
            self.rec.backward(rec, seed, grad, grad_slot, grad_of, retain, bool(self.hosts))
        try:
            status, bad, n_freed, reached = run_reverse(
                self.R, rec, seed, self.M, self.vid, self.leaf, retain, grad_of, self.ver,
                self.needs, CHECK | (0 if retain_graph else FREE), self._arenas,
                self._host if self.hosts else None)
        except BaseException:
            for G in self.G:                # a Python backward raised: no gradient is left
                G[:] = 0
            self._sync()                    # and the records the pass freed are not live
            flags = self.R[:self.n, 5]
            self.n_live = int(np.count_nonzero((flags & DIFF) & ~flags & FREED))
            raise
        self.n_live -= n_freed
        if status:
            for G in self.G:
                G[:] = 0
            if status == GRAPH_FREED:
                raise RuntimeError(
                    "Trying to backward through the graph a second time (or directly access "
                    "saved tensors after they have already been freed). Saved intermediate "
                    "values of the graph are freed when you call .backward() or autograd.grad()."
                    " Specify retain_graph=True if you need to backward through the graph a "
                    "second time or if you need to access saved tensors after calling backward.")
            op = OPS[int(self.R[bad, 0])]
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: the input of {op.grad_fn} (record {bad}) is at a newer "
                "version than when it was saved. Hint: the operation that failed to compute its "
                "gradient is the in-place one that modified it.")
        return self.reached(reached)

    def _arenas(self):
        return (self.off, self.goff, self.size, self.dt, self.F[0], self.C[0], self.G[0],
                *self.f64())

    def _host(self, i, rows):
        """Within a reverse pass: run `rows`, then the Python backward of host record i (if
        i >= 0)."""
        if self.rec is not None:
            self.rec.rows(rows)
        run_program(rows, self.R, self.M, *self._arenas(), _NO_VALUES)
        if i < 0:
            return
        self.busy += 1
        try:
            self.hosts[int(self.M[self.R[i, 4]])](i)
            self.flush()
            self._sync()
        finally:
            self.busy -= 1

    def add_grad(self, s, g):
        """G[s] += the value of slot g (the gradient a Python backward gives an input)."""
        self.flush()
        dt, n = self.key[s]
        o, og = self.goff[s], self.off[g]
        self.G[dt][o:o + n] += self.F[dt][og:og + n]
        if self.rec is not None:
            self.rec.add_grad(s, g)

    def host_io(self, i):
        """The input and output slots of host record i."""
        m = int(self.R[i, 4])
        nin, nout = int(self.M[m + 1]), int(self.M[m + 2])
        io = self.M[m + 3:m + 3 + nin + nout].tolist()
        return io[:nin], io[nin:]

    def reached(self, reached):
        """The end of a backward pass: the slots it reached (see reverse_schedule) as (leaves
        whose gradient is left in G, retained slots); the tape is reset or collected."""
        new, retained = [], []
        target = new
        for s in reached.tolist():
            if s < 0:
                target = retained
            else:
                target.append(s)
        if self.rec is not None:
            pass
        elif self.n_live == 0 and self.done == self.n:
            self.reset()
        elif self.n > self.gc_at:
            self.gc()
        return new, retained

    def last_write(self, s, rec):
        """The last differentiable record after `rec` that writes slot s (else rec)."""
        self._sync()
        R = self.R[rec + 1:self.n]
        hits = np.nonzero((R[:, 3] == s) & ((R[:, 5] & DIFF) != 0))[0]
        return rec + 1 + int(hits[-1]) if len(hits) else rec

    def gc(self):
        """Free the graphs no tensor can reach any more (a grad-requiring result that was
        dropped without backward), then reset the tape or free the slots no live record uses."""
        if self.rec is not None:
            return
        self.flush() if self.done != self.n else None
        self._sync()
        R = self.R
        needed = set()
        used = set()
        for i in range(self.n - 1, -1, -1):
            op, a, b, out, _, flags = (int(v) for v in R[i, :6])
            if not flags & DIFF or flags & FREED:
                continue
            if op == OP_HOST:
                ins, outs = self.host_io(i)
                if self.recrefs[i] > 0 or needed.intersection(outs):
                    used.update(ins + outs)
                    needed.difference_update(outs)
                    needed.update(ins)
                else:
                    self.hosts[int(self.M[R[i, 4]])] = None     # its saved tensors go
                    R[i, 5] = flags | FREED
                    self.n_live -= 1
            elif self.recrefs[i] > 0 or out in needed:
                used.update((a, b, out))
                if op == OP_SETSTRIDED and flags & GB or a == out or b == out:
                    needed.add(out)         # a partial or in-place write: earlier ones count
                else:
                    needed.discard(out)
                needed.update(s for s, bit in ((a, GA), (b, GB)) if s >= 0 and flags & bit)
            else:
                R[i, 5] = flags | FREED
                self.n_live -= 1
        if self.n_live == 0:
            self.reset()
            return
        pending, self.deferred = self.deferred, []
        for s in dict.fromkeys(pending):           # a slot may be deferred twice
            if s in used:
                self.deferred.append(s)
            elif self.refs[s] == 0:
                self._free(s)                       # (a view's base may be deferred now)
        self.gc_at = 2 * self.n

    def take_grad(self, s):
        """Move the gradient left in G[s] into a fresh slot, for a new .grad tensor."""
        dt, n = self.key[s]
        g = self.alloc(dt, n)
        o, og = self.goff[s], self.off[g]
        self.F[dt][og:og + n] = self.G[dt][o:o + n]
        self.G[dt][o:o + n] = 0
        if self.rec is not None:
            self.rec.take(s, g)
        return g

    # ---- inspection ----
    def dump(self, file=None):
        """Print one line per record: `i: op a b -> out shape-size dtype [flags]`."""
        self._sync()
        lines = []
        for i in range(self.n):
            op, a, b, out, aux, flags = (int(v) for v in self.R[i, :6])
            names = [f"s{s}" if s >= 0 else f"c{-s - 1}" for s in (a, b) if s != NONE]
            dt = "float32" if self.key[out][0] == 0 else "float64"
            tags = ("grad " if flags & DIFF else "") + ("freed " if flags & FREED else "")
            tags += "" if i < self.done else "pending"
            lines.append(f"{i}: {OPS[op].name} {' '.join(names)} -> s{out} "
                         f"{self.shapes[i]} {dt} {tags.strip()}".rstrip())
        text = "\n".join(lines)
        print(text, file=file)
        return text


NONE = -(1 << 40)   # slot id meaning "no input"

TAPE = Tape()
