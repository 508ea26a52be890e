"""Bitwise reductions over a list of values, for the OR/AND gathers of the RTL."""

__all__ = ["any_of", "all_of"]


def any_of(values):
    """Bitwise OR of an iterable of values (0 if it is empty)."""
    result = 0
    for value in values:
        result = result | value
    return result


def all_of(values):
    """Bitwise AND of an iterable of values (1 if it is empty)."""
    result = 1
    for value in values:
        result = result & value
    return result
