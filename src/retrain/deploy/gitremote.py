"""GitOps to a remote: fetch into scratch space, commit, push with a lease.

With ``deploy.gitops_remote`` set, each apply works in a scratch checkout of
``deploy.gitops_branch`` (``deploy.gitops_repo``, or a directory under the system's temporary
directory: the pod's /tmp on a cluster):

1. fetch the branch and reset the checkout to the remote's tip (the scratch checkout holds
   nothing of its own: an unpushed commit left by a crash is simply made again);
2. write and commit exactly as the local GitOps mode does (`GitOpsApplier`: one commit per
   change, the same messages; none if nothing changed);
3. push with ``--force-with-lease`` set to the tip it fetched, so a push never overwrites a
   commit it has not seen. If another writer pushed first (non-fast-forward), fetch again,
   re-apply the same object on the new tip (a rebase of this one commit: the other writer's
   files are kept) and push once more; losing that race too is a transient error (exit 75).

An authentication failure (bad key or token, unknown host key) is bad input (exit 2): retrying
cannot fix it. Network trouble is transient (exit 75).

Credentials come from a mounted Secret (``deploy.gitops_credentials``, a directory), never
from the config or the command line: an SSH key (``ssh-privatekey``, with ``known_hosts``;
host keys are checked strictly) or an HTTPS token (``token``, optional ``username``), handed
to git through environment variables. Nothing logged carries them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrain.deploy._base import ApplyResult
from retrain.deploy.gitops import GitOpsApplier
from retrain.errors import RetrainError, TransientError, ValidationError
from retrain.settings.deploy import redact_remote

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = ["GitCredentials", "RemoteGitOpsApplier", "gitops_applier", "push_verdict"]

_TIMEOUT_S = 120
#: What git and ssh print when the remote refuses who we are (exit 2: retrying cannot help).
_AUTH_FAILURES = (
    "authentication failed",
    "permission denied",
    "could not read username",
    "could not read password",
    "host key verification failed",
    "terminal prompts disabled",
    "returned error: 401",
    "returned error: 403",
)
#: What git prints when the remote branch moved on since we fetched it (a lost race: fetch
#: and push again). Not "[remote rejected]": that is the remote refusing the push itself (a
#: pre-receive hook, a protected branch), which no retry fixes.
_NON_FAST_FORWARD = ("[rejected]", "non-fast-forward", "stale info", "fetch first")
_REMOTE_REJECTED = "[remote rejected]"
#: ... except these reasons, which the remote gives when another push updated the ref while it
#: was checking ours (a lost race at the server: fetch and push again).
_REMOTE_RACE = ("failed to update ref", "failed to lock", "cannot lock ref", "incorrect old value")
_MISSING_REF = "couldn't find remote ref"


@dataclass(frozen=True)
class GitCredentials:
    """The environment git runs with to reach the remote; empty without credentials.

    Built from a mounted Secret's directory: ``ssh-privatekey`` + ``known_hosts`` (SSH), or
    ``token`` (+ ``username``, default ``git``) for HTTPS, sent as a Basic authorization
    header through git's ``GIT_CONFIG_*`` variables (git 2.31+), so it never appears on a
    command line or in a URL.
    """

    env: dict[str, str] = field(default_factory=dict)
    key_copy: Path | None = None

    @classmethod
    def from_directory(cls, directory: str | None, scratch: Path) -> GitCredentials:
        if not directory:
            return cls()
        root = Path(directory)
        if not root.is_dir():
            raise ValidationError(
                f"deploy.gitops_credentials {directory!r} is not a directory (mount the git "
                "Secret there)"
            )
        key, hosts, token = (root / "ssh-privatekey", root / "known_hosts", root / "token")
        if key.is_file():
            if not hosts.is_file():
                raise ValidationError(
                    f"{directory} has ssh-privatekey but no known_hosts: the remote's host "
                    "key is checked strictly, add known_hosts to the Secret"
                )
            # ssh refuses a key readable by others; a Secret volume may mount it 0644.
            scratch.mkdir(parents=True, exist_ok=True)
            copy = scratch / "ssh-key"
            copy.write_bytes(key.read_bytes())
            copy.chmod(0o600)
            command = (
                f"ssh -i {copy} -o IdentitiesOnly=yes -o BatchMode=yes "
                f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={hosts}"
            )
            return cls({"GIT_SSH_COMMAND": command}, copy)
        if token.is_file():
            user_file = root / "username"
            user = user_file.read_text().strip() if user_file.is_file() else "git"
            basic = base64.b64encode(f"{user}:{token.read_text().strip()}".encode()).decode()
            return cls(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
        raise ValidationError(
            f"{directory} holds neither ssh-privatekey (with known_hosts) nor token"
        )


class RemoteGitOpsApplier:
    """Commits the rendered object in a scratch checkout and pushes it to the remote."""

    def __init__(
        self,
        remote: str,
        branch: str,
        path: str,
        checkout: Path,
        credentials: str | None = None,
        author: str = "retrain <retrain@localhost>",
    ) -> None:
        self.remote = remote
        self.branch = branch
        self.path = path
        self.checkout = Path(checkout)
        self.credentials = credentials
        self.author = author

    @classmethod
    def from_config(cls, cfg: Config) -> RemoteGitOpsApplier:
        remote = str(cfg.deploy.gitops_remote)
        checkout = cfg.deploy.gitops_repo or str(
            scratch_checkout(remote, cfg.deploy.gitops_branch, cfg.name)
        )
        return cls(
            remote,
            cfg.deploy.gitops_branch,
            cfg.deploy.gitops_path,
            Path(checkout),
            cfg.deploy.gitops_credentials,
        )

    def apply(self, obj: dict[str, Any], cfg: Config, message: str | None = None) -> ApplyResult:
        """Fetch, commit if changed, push with a lease; one rebase-and-retry on a lost race."""
        with tempfile.TemporaryDirectory(prefix="retrain-git-") as tmp:
            creds = GitCredentials.from_directory(self.credentials, Path(tmp))
            git = _RemoteGit(self.checkout, self.remote, self.branch, creds.env)
            local = GitOpsApplier(self.checkout, self.path, author=self.author)
            for attempt in (1, 2):
                tip = git.sync()
                result = local.apply(obj, cfg, message)
                if result.ref is None or result.ref == tip:
                    return _pushed(result, "nothing to push")
                if git.push(expected=tip):
                    return _pushed(result, f"pushed to {self.branch}")
                if attempt == 2:
                    raise TransientError(
                        f"lost the race to push {self.branch} to the GitOps remote twice "
                        "(another deploy pushed first each time); the next attempt retries"
                    )
        raise AssertionError("unreachable")  # pragma: no cover


def gitops_applier(cfg: Config) -> Any:
    """The GitOps applier ``deploy.gitops_remote`` calls for: remote, or local repository."""
    if cfg.deploy.gitops_remote:
        return RemoteGitOpsApplier.from_config(cfg)
    return GitOpsApplier.from_config(cfg)


def scratch_checkout(remote: str, branch: str, model: str) -> Path:
    """Where a model checks out a remote's branch when ``deploy.gitops_repo`` is not set.

    One per model: one process ticks many models' rollouts at once (`retrain deploy advance`
    over a directory), and models deploying to one repository would otherwise run git in one
    working tree together (its index and config locks refused one of them). Their pushes to
    the shared branch are ordered by the push lease, as any two deploys' are.
    """
    digest = hashlib.sha256(f"{remote}\0{branch}\0{model}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "retrain-gitops" / f"{model}-{digest}"


def _pushed(result: ApplyResult, how: str) -> ApplyResult:
    return ApplyResult(changed=result.changed, ref=result.ref, detail=f"{result.detail}; {how}")


class _RemoteGit:
    """git in the scratch checkout, talking to one remote branch."""

    def __init__(self, checkout: Path, remote: str, branch: str, env: dict[str, str]) -> None:
        self.checkout = checkout
        self.remote = remote
        self.branch = branch
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            **env,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        if shutil.which("git") is None:
            raise RetrainError("the git command is not installed")
        try:
            return subprocess.run(
                ["git", "-C", str(self.checkout), *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TransientError(f"git {args[0]} timed out after {_TIMEOUT_S}s") from None

    @property
    def shown(self) -> str:
        """The remote as messages show it: no user info."""
        return redact_remote(self.remote)

    def _fail(self, what: str, proc: subprocess.CompletedProcess[str]) -> RetrainError:
        err = redact_remote(proc.stderr.strip())
        msg = f"git {what} of {self.shown} ({self.branch}) failed: {err}"
        if any(marker in err.lower() for marker in _AUTH_FAILURES):
            return ValidationError(
                msg + "\ncheck the git Secret mounted at deploy.gitops_credentials and that "
                "its key or token may push to the repository"
            )
        return TransientError(msg)

    def sync(self) -> str | None:
        """Reset the checkout to the remote branch's tip; that tip (None: no branch yet)."""
        if not (self.checkout / ".git").exists():
            self._init()
        if self.run("remote", "get-url", "origin").returncode == 0:
            self._ok("remote", self.run("remote", "set-url", "origin", self.remote))
        else:
            self._ok("remote", self.run("remote", "add", "origin", self.remote))
        ref = f"refs/remotes/origin/{self.branch}"
        proc = self.run("fetch", "--quiet", "--prune", "origin", f"+refs/heads/{self.branch}:{ref}")
        if proc.returncode != 0 and _MISSING_REF not in proc.stderr:
            raise self._fail("fetch", proc)
        if proc.returncode != 0:  # no such branch: only an empty remote may start one
            self._refuse_new_branch()
            shutil.rmtree(self.checkout)
            self._init()
            self._ok("remote", self.run("remote", "add", "origin", self.remote))
            return None
        self._ok("checkout", self.run("checkout", "--quiet", "-B", self.branch, ref))
        self._ok("reset", self.run("reset", "--quiet", "--hard", ref))
        self.run("clean", "-fdxq")
        return self.run("rev-parse", ref).stdout.strip()

    def _refuse_new_branch(self) -> None:
        """ValidationError unless the remote is empty: a misspelt ``deploy.gitops_branch``
        would otherwise start a branch Argo CD / Flux never watches, silently."""
        proc = self.run("ls-remote", "--heads", "origin")
        if proc.returncode != 0:
            raise self._fail("ls-remote", proc)
        heads = sorted(
            line.split("refs/heads/", 1)[1]
            for line in proc.stdout.splitlines()
            if "refs/heads/" in line
        )
        if self.branch in heads:  # created since the fetch, by a deploy racing this one
            raise TransientError(
                f"the branch {self.branch!r} appeared on the GitOps remote {self.shown} while"
                " this deploy fetched it (a concurrent deploy): retry"
            )
        if heads:
            raise ValidationError(
                f"the GitOps remote {self.shown} has no branch {self.branch!r} "
                f"(deploy.gitops_branch); its branches: {', '.join(heads)}. Fix the setting, "
                "or create the branch on the remote (at the commit Argo CD / Flux syncs) first"
            )

    def _init(self) -> None:
        self.checkout.mkdir(parents=True, exist_ok=True)
        self._ok("init", self.run("init", "--quiet", "-b", self.branch))

    def push(self, expected: str | None) -> bool:
        """Push HEAD to the branch if it is still at `expected`; False if someone moved it."""
        lease = f"--force-with-lease=refs/heads/{self.branch}:{expected or ''}"
        proc = self.run("push", "--quiet", "--porcelain", lease, "origin",
                        f"HEAD:refs/heads/{self.branch}")  # fmt: skip
        if proc.returncode == 0:
            return True
        text = redact_remote(proc.stdout + proc.stderr)
        verdict = push_verdict(text)
        if verdict == "refused":  # the remote refused the push itself: no retry helps
            raise ValidationError(
                f"the GitOps remote {self.shown} refused the push to {self.branch}: "
                f"{_remote_reason(text)}\ncheck the branch's protection and the remote's "
                "hooks: the key or token must be allowed to push to it"
            )
        if verdict == "race":
            return False
        raise self._fail("push", proc)

    def _ok(self, what: str, proc: subprocess.CompletedProcess[str]) -> None:
        if proc.returncode != 0:
            err = redact_remote(proc.stderr.strip())
            raise RetrainError(f"git {what} failed in {self.checkout}: {err}")


def push_verdict(text: str) -> str:
    """What a failed push's output says: "race" (the branch moved on: fetch, push again),
    "refused" (the remote said no: a hook, a protected branch) or "other"."""
    lowered = text.lower()
    if _REMOTE_REJECTED in lowered:
        return "race" if any(m in lowered for m in _REMOTE_RACE) else "refused"
    return "race" if any(m in lowered for m in _NON_FAST_FORWARD) else "other"


def _remote_reason(text: str) -> str:
    """The remote's reason for refusing a push: its ``[remote rejected] (...)`` and any
    ``remote:`` lines (what a hook printed)."""
    reasons = []
    for line in text.splitlines():
        if _REMOTE_REJECTED in line:
            reasons.append(line.split(_REMOTE_REJECTED, 1)[1].strip() or "(no reason given)")
        elif line.startswith("remote:") and line[7:].strip():
            reasons.append(line.strip())
    return "; ".join(reasons) or text.strip()
