"""tapegrad.linalg: torch.linalg (solve, inv, det, slogdet, cholesky, solve_triangular, lstsq,
pinv, qr, svd, svdvals, eigh, eigvalsh, norm, vector_norm, matrix_norm, cond).

The factorizations are one record of the tape, OP_LINALG (kernels in ``kernels.py``, which the
interpreters import while the package itself is being imported); the functions are in
``functions.py`` and are read from there on first use (``tapegrad`` imports it once its
tensors exist, which also adds the Tensor methods det, logdet, slogdet, inverse, cholesky and
pinverse).
"""


def _functions():
    import importlib
    return importlib.import_module(__name__ + ".functions")


def __getattr__(name):
    if name.startswith("__") or name == "functions":
        raise AttributeError(f"module 'tapegrad.linalg' has no attribute {name!r}")
    functions = _functions()
    try:
        return getattr(functions, name)
    except AttributeError:
        raise AttributeError(f"module 'tapegrad.linalg' has no attribute {name!r}") from None


def __dir__():
    return sorted(set(_functions().__all__) | set(globals()))
