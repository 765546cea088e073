"""Tape-level fusion of a replayed program: an affine map followed by an elementwise loss.

A training step for a linear model records ``z = X @ w``, a few elementwise records (``- y``,
``** 2``, ...) and a full ``sum`` or ``mean``; its backward pass then reads X a second time for
``X^T dz``. For a large X both passes stream it from memory. Every gradient in that chain is the
loss's gradient times a per-element factor, so one pass over X can compute the loss and the
gradient of w for a loss gradient of 1; the backward pass only scales it. For a single column
(X @ w with w of shape (k, 1)) the pass takes four rows at a time, as a hand-fused loop does:
their dot products, the chain on each row's element, kept in variables, and the rows' part of
the gradient, so X is read once and nothing else. For several columns it takes a block of rows at a time
(the product and its gradient by the row kernels, the chain in loops over the block), reading
the block a second time while it is in cache.

``affine_loss`` finds such regions in a program's rows and replaces their forward records and
their backward rows by two rows, P_AFFINE_FWD (first record, last record, scratch slot) and
P_AFFINE_BWD. The specialized code (tapegrad.codegen) writes the fused pass for them, its
blocks split over tapegrad.set_num_threads runs; the interpreter, which runs a path before it
is specialized, runs the region's records as recorded (no fused kernel to compile). It only
fuses what it can prove equivalent:
- the product is a single (n, k) @ (k, p) larger than SMALL_MATMUL, X needs no gradient (w may
  be a strided view, as nn.Linear's W.t() is);
- each elementwise record reads at least one value of the region (both operands may: d * d,
  or the branches of Huber's loss, a DAG); its other operand is an immediate, a size-1 slot
  (a bias, a scale: if it needs a gradient, the pass sums that gradient over the elements, an
  "extern") or a same-size slot that needs no gradient (the targets); for a product of p > 1
  columns also a row of p broadcast over the rows (the bias of nn.Linear(d, p): an extern of
  width p, its gradient summed over the rows per column);
- the region ends in a sum or mean over all elements;
- each value of the region is written once and read by the region's records only, and no
  record writes a slot that an earlier record of the region read;
- the forward records are consecutive within one run of records, and their backward rows are
  consecutive in the program, last record first.
The scratch slot holds w's gradient (if w needs one) and then each extern's (1 or p values),
for a loss gradient of 1; P_AFFINE_BWD scales them by the loss's gradient into the gradients.
Values are those of the records, computed by the same rules and rounded to the arena's dtype.
The loss sums in the same order; w's gradient is summed per row or block and per run (and
scaled by the loss's gradient after the sum), so it rounds differently from the unfused
product's.

ENABLED switches it off (for comparisons). On the 1,000,000 x 32 float32 step, one thread, the
specialized step took 31.7 ms unfused and 15.4 ms with blocks; a row at a time it takes
10.6-10.8 ms where the hand-fused loop of benchmarks/ takes 11.6-11.8 ms in the same runs (a
2-core Intel Xeon). Four rows at a time (tapegrad.codegen), on a 2-core AMD EPYC: 4.8-5.5 ms, against
12.2 ms a row at a time in the same process.
"""
from .interpret import (P_ACC, P_ADDG, P_AFFINE_BWD, P_AFFINE_FWD, P_BWD, P_CMP, P_COPY, P_FWD,
                        P_SEED, P_SEEDSLOT, P_TAKE, P_VALUE, P_ZERO)
from .kernels import SMALL_MATMUL
from .ops import (DIFF, GA, GB, LAST_BINARY, LAST_UNARY, OP_CAST, OP_COPY, OP_INDEX,
                  OP_MATMUL, OP_MEAN, OP_STRIDED, OP_SUM)


def _readers(R, rows):
    """Slot -> how many records and non-record program rows name it."""
    count = {}
    for r in R:
        for s in (int(r[1]), int(r[2]), int(r[3])):
            if s >= 0:
                count[s] = count.get(s, 0) + 1
    for row in rows:            # seeds, guards, copies...: the fields that are slots
        for f in SLOT_FIELDS.get(int(row[0]), ()):
            s = int(row[f])
            if s >= 0:
                count[s] = count.get(s, 0) + 1
    return count


# The fields of a program row (tapegrad.interpret) that name slots, by kind; the others are
# record numbers, comparison codes and indices of immediates (counted as slots, a slot 0 could
# never be fused: a step whose loss chain reused slot 0 ran unfused, 4x slower on L)
SLOT_FIELDS = {P_SEED: (1,), P_SEEDSLOT: (1, 2), P_TAKE: (1, 2), P_ZERO: (1,), P_ACC: (1, 2),
               P_CMP: (2, 3), P_VALUE: (1,), P_COPY: (1,), P_ADDG: (1, 2)}


def _region(R, M, size, dt, i0, uses):
    """The last record of a fusable region that starts with the product at record i0, or -1.

    The region is the product and the records after it, up to a full sum or mean: each
    elementwise, each reading at least one of the region's values (several: a DAG, as Huber's
    loss is), or a further product of a region value (n, p) by an operand outside it (a
    hidden layer's output by the next layer's weights: the width becomes that product's); or
    a side record, which reads no value of the region, and whose result only the region reads
    (the next nn.Linear's W.t(), recorded between the layers; y[idx] of a minibatch, recorded
    after the model): run before the pass, its backward after; and no value of the region
    read outside it."""
    op, a, b, z, aux, flags = (int(v) for v in R[i0, :6])
    if op != OP_MATMUL or flags & GA or not flags & DIFF or M[aux] != 1:
        return -1
    n, k, p = (int(v) for v in M[aux + 1:aux + 4])
    if n * k * p <= SMALL_MATMUL:
        return -1
    N, inside, reads, read, i = n * p, {z}, {}, {a, b}, i0 + 1
    side = set()
    while i < len(R):
        op, a, b, out, aux, flags = (int(v) for v in R[i, :6])
        operands = (a, b) if op > LAST_UNARY else (a,)
        if out in inside or out in read or out in side:
            return -1
        if _is_side(op, operands, inside):
            # a record of operands from outside (a later layer's W.t(), y[idx] of a minibatch):
            # run before the pass, its backward (if it has one) after it
            side.add(out)
            for s in operands:
                if s in side:
                    reads[s] = reads.get(s, 0) + 1
            read.update(operands)
            i += 1
            continue
        read.update(operands)
        if not flags & DIFF or dt[out] != dt[z]:
            return -1
        for s in operands:
            if s in inside or s in side:
                reads[s] = reads.get(s, 0) + 1
        if op in (OP_SUM, OP_MEAN):
            if a not in inside or tuple(int(v) for v in M[aux:aux + 3]) != (1, N, 1):
                return -1
            # each value of the region and of its side records: written once, read by the
            # region's records only
            if any(uses.get(s, 0) != 1 + reads.get(s, 0) or not reads.get(s)
                   for s in inside | side):
                return -1
            return i
        if op == OP_MATMUL:
            # a product of a region value (n, p) by an operand from outside
            if (a not in inside or b in inside or M[aux] != 1 or M[aux + 4] != 0
                    or (int(M[aux + 1]), int(M[aux + 2])) != (n, p)):
                return -1
            p = int(M[aux + 3])
            N = n * p
        elif size[out] != N:
            return -1
        elif op <= LAST_UNARY:
            if a not in inside:
                return -1
        elif op <= LAST_BINARY and aux >= 0 and p > 1:
            # a bias of the product's p columns: the other operand a row of p broadcast
            # over the rows (if it needs a gradient, the pass sums it over the rows)
            if row_vector(M, aux, size, a, b, inside, p) is None:
                return -1
        elif op <= LAST_BINARY and aux < 0 and (a in inside or b in inside):
            for s, bit in ((a, GA), (b, GB)):
                if s in inside or s < 0:
                    continue
                # another operand: a size-1 slot (its gradient, if it needs one, is summed
                # over the rows) or a same-size slot that needs no gradient
                if size[s] != 1 and (size[s] != N or flags & bit):
                    return -1
        else:
            return -1
        if size[out] != N:
            return -1
        inside.add(out)
        i += 1
    return -1


def _is_side(op, operands, inside):
    """A record that reads no value of the region and computes a fresh value: a side record
    of the region (a product among them would be taken for one of the region's)."""
    return (not any(s in inside for s in operands)
            and (op <= LAST_BINARY or op in (OP_STRIDED, OP_INDEX, OP_COPY, OP_CAST)))


def members(R, i0, im):
    """The records of region i0..im that the pass computes (the product first) and its side
    records, in order."""
    inside, own, side = {int(R[i0, 3])}, [i0], []
    for i in range(i0 + 1, im):
        op, a, b, out = (int(v) for v in R[i, :4])
        if _is_side(op, (a, b) if op > LAST_UNARY else (a,), inside):
            side.append(i)
        else:
            own.append(i)
            inside.add(out)
    return own, side


def products(R, M, i0, im):
    """The products of region i0..im, in order: (record, k, p, ba, bb, kw), kw = k * p if its
    other operand needs a gradient (the region sums it), else 0; and the region's side
    records (run before the pass, their backward after it)."""
    found = []
    own, side = members(R, i0, im)
    for i in own:
        op, aux, flags = int(R[i, 0]), int(R[i, 4]), int(R[i, 5])
        if op == OP_MATMUL:
            k, p, ba, bb = (int(v) for v in M[aux + 2:aux + 6])
            found.append((i, k, p, ba, bb, k * p if flags & GB else 0))
    return found, side


def row_vector(M, aux, size, a, b, inside, p):
    """For a broadcasting binary record (metadata at aux) of a region of p columns: the
    operand that is a row of p broadcast over the rows, the other being a value of the
    region laid out as the result; else None."""
    nd = int(M[aux])
    shape = [int(v) for v in M[aux + 1:aux + 1 + nd]]
    strides = {a: [int(v) for v in M[aux + 1 + nd:aux + 1 + 2 * nd]],
               b: [int(v) for v in M[aux + 1 + 2 * nd:aux + 1 + 3 * nd]]}
    if a == b or nd < 1 or shape[-1] != p:
        return None
    full, run = [], 1
    for n in reversed(shape):
        full.insert(0, run)
        run *= n
    for s, t in ((a, b), (b, a)):
        if (s >= 0 and s not in inside and t in inside and size[s] == p
                and strides[s] == [0] * (nd - 1) + [1]
                and [st for st, n in zip(strides[t], shape) if n > 1]
                == [f for f, n in zip(full, shape) if n > 1]):
            return s
    return None


def row_vectors(R, M, size, i0, im):
    """{record: its operand that is a row of the product's p columns broadcast over the rows}
    in region i0..im (p: the columns of the last product before the record)."""
    inside, found = set(), {}
    for i in members(R, i0, im)[0]:
        op, a, b, out, aux = (int(v) for v in R[i, :5])
        if op == OP_MATMUL:
            p = int(M[aux + 3])
        elif LAST_UNARY < op <= LAST_BINARY and aux >= 0:
            found[i] = row_vector(M, aux, size, a, b, inside, p)
        inside.add(out)
    return found


def externs(R, i0, im, M=None, size=None):
    """The operands of region i0..im (not the product's) whose gradient it sums, in order of
    first use, with their widths: (slot, 1) for a size-1 operand (a bias of one column, a
    learned scale), (slot, p) for a row of the product's p columns (a bias of p)."""
    inside, found, seen = {int(R[i0, 3])}, [], set()
    for i in members(R, i0, im)[0][1:]:
        a, b, out, aux, flags = (int(v) for v in R[i, 1:6])
        if int(R[i, 0]) == OP_MATMUL:       # a product's other operand: not summed here
            inside.add(out)
            continue
        for s, bit in ((a, GA), (b, GB)) if R[i, 0] > LAST_UNARY else ():
            if s >= 0 and s not in inside and flags & bit and s not in seen:
                seen.add(s)
                found.append((s, 1 if aux < 0 else int(size[s])))
        inside.add(out)
    return found


ENABLED = True
BLOCK = 4096        # elements of A per block of rows (16 KB in float32), the unit split over
                    # threads; with several columns the block is still in the L1 cache when it
                    # is read the second time, for the gradient. On the 10,000 x 100 step 4096
                    # was 9% faster than 16384 and 2048 (one thread, blocks of rows).
PARALLEL_MIN = 1 << 17     # elements of A from which a fused pass is split over threads


def affine_loss(rows, descs, R, M, size, dt, alloc):
    """`rows` (program rows, tuples of 6) and their `descs` with every fusable chain replaced.
    alloc(dtype code, n) gives a slot for the gradient scratch of a chain (n = w's size)."""
    if not ENABLED:
        return rows, descs
    uses = _readers(R, rows)
    i = 0
    while i < len(R):
        im = _region(R, M, size, dt, i, uses)
        if im < 0:
            i += 1
            continue
        # the backward rows: every record's, but side records that need no gradient have none
        bwd = [(P_BWD, r) for r in range(im, i - 1, -1) if int(R[r, 5]) & DIFF]
        pos = [j for j, row in enumerate(rows) if tuple(row[:2]) == bwd[0]]
        run = [j for j, row in enumerate(rows) if row[0] == P_FWD and row[1] <= i and im < row[2]]
        if len(pos) != 1 or not run or [tuple(r[:2]) for r in
                                          rows[pos[0]:pos[0] + len(bwd)]] != bwd:
            i = im + 1
            continue
        # the scratch: each product's other operand's gradient (w's, if it needs one), then
        # each extern's, for a loss gradient of 1 (the backward row scales them by the loss's
        # gradient)
        kp = sum(kw for *_, kw in products(R, M, i, im)[0])
        ne = sum(w for _, w in externs(R, i, im, M, size))
        S = alloc(int(dt[R[i, 3]]), kp + ne) if kp + ne else -1
        j, f = pos[0], run[0]
        rows[j:j + len(bwd)] = [(P_AFFINE_BWD, i, im, S, 0, 0)]
        descs[j:j + len(bwd)] = [None]
        _, lo, hi = rows[f][:3]
        new = [(P_FWD, lo, i, 0, 0, 0)] if lo < i else []
        new.append((P_AFFINE_FWD, i, im, S, 0, 0))
        if im + 1 < hi:
            new.append((P_FWD, im + 1, hi, 0, 0, 0))
        rows[f:f + 1] = new
        descs[f:f + 1] = [None] * len(new)
        i = im + 1
    return rows, descs
