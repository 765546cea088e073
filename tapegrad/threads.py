"""Thread count for tapegrad's kernels: torch.set_num_threads / torch.get_num_threads.

tapegrad's kernels run on the calling thread today, so tapegrad starts no thread pool and never
leaves one spinning against NumPy's BLAS or torch. The count is kept for kernels that run in
parallel (Numba's prange): they will use this many threads, capped at the cores Numba sees
(NUMBA_NUM_THREADS). The default is that number, as torch's default is the number of cores.
"""
import numba

_threads = [numba.config.NUMBA_NUM_THREADS]


def set_num_threads(n):
    """Sets the number of threads tapegrad's parallel kernels use (PyTorch's name and checks)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n < 1:
        raise RuntimeError("set_num_threads expects a positive integer")
    _threads[0] = n


def get_num_threads():
    """The number of threads tapegrad's parallel kernels use."""
    return _threads[0]
