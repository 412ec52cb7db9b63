"""Which code produced a result: the commit of the checkout `retrain` is imported from."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["code_version"]


def code_version(cwd: Path | None = None) -> str:
    """The commit of the checkout the imported `retrain` package comes from (or `cwd`'s),
    short hash, with ``+ uncommitted changes`` when the tree differs from it (the
    `benchmarks/results` directory aside: it holds the results themselves); "unknown" outside
    a git checkout (an installed package)."""
    if cwd is None:
        cwd = Path(__file__).resolve().parent
    git = ["git", "-C", str(cwd)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--", ":/", ":(exclude,top)benchmarks/results"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted changes" if changes else head
