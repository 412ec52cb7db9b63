"""Errors that carry their meaning to the process exit code.

A `ValidationError` is the caller's to fix (bad config, bad data, tampered model): retrying
cannot help, so it exits 2 and KFP must not retry it. A `TransientError` is an I/O hiccup
(network, storage throttling, a lost compare-and-swap race): it exits 75 (EX_TEMPFAIL) and is
worth retrying.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_TRANSIENT",
    "EXIT_VALIDATION",
    "AlreadyExists",
    "NotFound",
    "PreconditionFailed",
    "RetrainError",
    "Terminated",
    "TransientError",
    "ValidationError",
    "classify_os_error",
    "exit_code_for",
    "sample_text",
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


class Terminated(TransientError):
    """The process was asked to stop (SIGTERM) and stopped at a safe point: re-run it."""


#: OSErrors no retry can fix, each with the one line that does.
_PERMANENT_OS_ERRORS = {
    errno.EACCES: "permission denied on {where}: give this process's user write access to it, "
    "or point the config at a location it may write",
    errno.EPERM: "operation not permitted on {where}: give this process's user access to it, "
    "or point the config at a location it may write",
    errno.EROFS: "read-only file system at {where}: point storage_root (or the path named) at "
    "a writable volume",
}
#: OSErrors that may clear on their own (space freed, a volume back): retried, with a hint.
_TRANSIENT_OS_HINTS = {
    errno.ENOSPC: "no space left on the device holding {where}: free space or grow the volume; "
    "the run is safe to retry",
    errno.EDQUOT: "disk quota exceeded at {where}: free space or raise the quota; the run is "
    "safe to retry",
}


def classify_os_error(err: OSError, where: str | None = None) -> RetrainError:
    """An OSError as one of ours, with a one-line fix: permanent ones exit 2, the rest 75.

    Permission denied and a read-only file system cannot clear by retrying (a
    `ValidationError`); a full disk and any other I/O error may (a `TransientError`).
    """
    place = where or err.filename or "the store"
    code = err.errno or (errno.EACCES if isinstance(err, PermissionError) else 0)
    permanent = _PERMANENT_OS_ERRORS.get(code)
    if permanent is not None:
        return ValidationError(permanent.format(where=place))
    hint = _TRANSIENT_OS_HINTS.get(code)
    if hint is not None:
        return TransientError(hint.format(where=place))
    reason = err.strerror or str(err)
    return TransientError(f"I/O error on {place}: {reason}; the run is safe to retry")


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception (an OSError as `classify_os_error` maps it)."""
    if isinstance(exc, RetrainError):
        return exc.exit_code
    if isinstance(exc, OSError):
        return classify_os_error(exc).exit_code
    return EXIT_INTERNAL


def sample_text(values: Iterable[object], *, limit: int = 3, width: int = 40) -> str:
    """A few values for a message, each cut to `width` characters: ``'a', 'b', 'cc…' (+9 chars)``.

    Every message or report that lists sample values goes through this, so a hostile value
    (one field of hundreds of megabytes) is never echoed or stored whole.
    """
    out = []
    for i, value in enumerate(values):
        if i >= limit:
            break
        text = repr(value)
        if len(text) > width:
            text = f"{text[:width]}… ({len(text) - width} more chars)"
        out.append(text)
    return ", ".join(out)
