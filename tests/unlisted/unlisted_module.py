"""A module the test workers do not list in FARPOOL_INCLUDE."""


def double(x: int) -> int:
    return 2 * x
