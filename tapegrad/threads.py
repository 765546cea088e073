"""Thread count for tapegrad's kernels: torch.set_num_threads / torch.get_num_threads.

The kernels run on the calling thread, except the fused pass over large data of a specialized
program (tapegrad.fuse), which splits its blocks of rows into this many runs on Numba's threads
(prange; at most NUMBA_NUM_THREADS run at once). The default is NUMBA_NUM_THREADS, the cores
Numba sees, as torch's default is the number of cores. Numba's thread pool starts at the first
such pass; between passes its threads wait without spinning (workqueue) or spin briefly and
then sleep (OpenMP's default policy).
"""
import numba
import numpy as np

COUNT = np.array([numba.config.NUMBA_NUM_THREADS], np.int64)     # read by compiled code


def set_num_threads(n):
    """Sets the number of threads tapegrad's parallel kernels use (PyTorch's name and checks)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n < 1:
        raise RuntimeError("set_num_threads expects a positive integer")
    COUNT[0] = n


def get_num_threads():
    """The number of threads tapegrad's parallel kernels use."""
    return int(COUNT[0])
