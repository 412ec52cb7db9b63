"""Errors that carry their meaning to the process exit code.

A `ValidationError` is the caller's to fix (bad config, bad data, tampered model): retrying
cannot help, so it exits 2 and KFP must not retry it. A `TransientError` is an I/O hiccup
(network, storage throttling, a lost compare-and-swap race): it exits 75 (EX_TEMPFAIL) and is
worth retrying.
"""

from __future__ import annotations

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_TRANSIENT",
    "EXIT_VALIDATION",
    "AlreadyExists",
    "NotFound",
    "PreconditionFailed",
    "RetrainError",
    "TransientError",
    "ValidationError",
    "exit_code_for",
]

EXIT_OK = 0
EXIT_VALIDATION = 2
EXIT_TRANSIENT = 75
EXIT_INTERNAL = 1


class RetrainError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = EXIT_INTERNAL


class ValidationError(RetrainError):
    """Bad input: config, data, labels or a model artifact. Do not retry."""

    exit_code = EXIT_VALIDATION

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class TransientError(RetrainError):
    """A temporary I/O failure. Retrying may help."""

    exit_code = EXIT_TRANSIENT


class NotFound(RetrainError):
    """An object that should exist does not."""

    exit_code = EXIT_VALIDATION


class AlreadyExists(RetrainError):
    """A create-only write found an object already at the path."""

    exit_code = EXIT_VALIDATION


class PreconditionFailed(TransientError):
    """A compare-and-swap lost a race: someone else changed the object first."""


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception."""
    if isinstance(exc, RetrainError):
        return exc.exit_code
    return EXIT_INTERNAL
