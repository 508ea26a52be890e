"""Which compute backend an engine runs on: numba when it imports, else a pure-Python one.

The functional and cycle engines each have a numba kernel and a fallback that needs nothing but
numpy (``"numpy"`` for the functional engine, ``"python"`` for the cycle engine); both give
identical results, so ``"auto"`` only chooses speed.
"""

from ..compiler.errors import EmulatorError

__all__ = ["numba_available", "resolve_backend"]


def numba_available():
    """Whether numba imports (the ``numba`` backends need it)."""
    try:
        import numba  # noqa: F401
    except Exception:   # ImportError, or a numba that fails to initialise
        return False
    return True


def resolve_backend(backend, choices, fallback):
    """The backend an engine runs on.

    Parameters
    ----------
    backend : str
        What the user asked for: one of ``choices``.
    choices : tuple of str
        The engine's backends (``"auto"``, ``"numba"`` and ``fallback``).
    fallback : str
        The backend without numba.

    Returns
    -------
    str
        ``"numba"`` or ``fallback``.

    Raises
    ------
    EmulatorError
        An unknown backend, or ``"numba"`` where numba does not import.
    """
    if backend not in choices:
        raise EmulatorError(f"backend must be one of {', '.join(map(repr, choices))}, "
                            f"not {backend!r}")
    if backend == "auto":
        return "numba" if numba_available() else fallback
    if backend == "numba" and not numba_available():
        raise EmulatorError(f"backend 'numba' needs numba, which does not import here; "
                            f"install neurotile[fast] or use backend={fallback!r}")
    return backend
