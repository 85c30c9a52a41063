"""Kernel errors carry the `ic` exit code they map to, so the CLI never has to guess.

Exit codes (DESIGN 3.2): 0 success, 1 expected negative, 2 unexpected (database, I/O, cycle), 3 usage.
"""

from __future__ import annotations


class KernelError(Exception):
    """Base error: a one-line message plus the exit code the CLI reports."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(KernelError):
    """An id, key or database that does not exist: an expected negative."""

    exit_code = 1


class Refused(KernelError):
    """The kernel said no on purpose: gate blocked, terminal run, lost race, limit, budget."""

    exit_code = 1


class UsageError(KernelError):
    """The caller's input is malformed: missing or invalid argument, bad JSON."""

    exit_code = 3


class StorageError(KernelError):
    """The database or the filesystem failed us: unreadable, corrupt, newer schema, I/O."""

    exit_code = 2
