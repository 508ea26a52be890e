"""The package's exception hierarchy.

Every error neurotile raises on purpose derives from :class:`NeurotileError`, so callers can catch
the package's errors in one place. Wrong kinds of argument raise :class:`NeurotileTypeError`
(also a :class:`TypeError`), bad values :class:`NeurotileValueError` (also a :class:`ValueError`).
"""

__all__ = [
    "NeurotileError", "NeurotileTypeError", "NeurotileValueError",
    "ArchError", "NetworkError", "MappingError", "ImageError", "EmulatorError", "ToolchainError",
    "NeurotileWarning",
]


class NeurotileError(Exception):
    """Base class of every error neurotile raises on purpose."""


class NeurotileTypeError(NeurotileError, TypeError):
    """An argument of the wrong kind."""


class NeurotileValueError(NeurotileError, ValueError):
    """An argument of the right kind with a bad value."""


class ArchError(NeurotileValueError):
    """An architecture description that cannot be built."""


class NetworkError(NeurotileValueError):
    """A network definition that is invalid on its own (before mapping)."""


class MappingError(NeurotileValueError):
    """A valid network that does not fit the chosen architecture.

    The message names the population or projection, the limit, by how much it is exceeded and what
    to change.
    """


class ImageError(NeurotileValueError):
    """A chip image that is corrupted, inconsistent or of another format version."""


class EmulatorError(NeurotileValueError):
    """Bad input to the emulator (names, shapes, dtypes, steps, probes)."""


class ToolchainError(NeurotileError):
    """A required external tool (Verilator, yosys, nextpnr) is missing or failed."""


class NeurotileWarning(UserWarning):
    """Something the user should know that is not an error: a result that is exact but not what
    they may assume (a per-step counter that wrapped, as the chip's register does)."""
