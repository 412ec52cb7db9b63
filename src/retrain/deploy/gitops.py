"""GitOps applier: commit the rendered object to a git repository that Argo CD or Flux syncs.

Layout inside the repository::

    <path>/<namespace>/<name>.yaml          the object, canonical YAML (see `to_yaml`)
    <path>/<namespace>/kustomization.yaml   lists the directory's resources

Applying is idempotent: an unchanged object makes no commit (and, when HEAD, our files and
git's index are as the last apply left them, costs one git call instead of six). Only our
two files are ever committed (other staged work in the repository is left alone), and a file
someone edited by hand without committing is refused rather than overwritten. The git CLI
does the work, with the identity passed on the command line so no global git config is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from retrain.deploy._base import ApplyResult, annotated_roles, to_yaml
from retrain.errors import RetrainError, TransientError, ValidationError

if TYPE_CHECKING:
    from retrain.config import Config

__all__ = ["KUSTOMIZATION", "GitOpsApplier", "commit_message"]

KUSTOMIZATION = "kustomization.yaml"
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>\s*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Variables that would point git at another repository than ours.
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")
_TIMEOUT_S = 120
#: In the git directory: what the last apply left committed (`_unchanged_since_last_apply`).
_APPLIED_FILE = "retrain-applied.json"


class GitOpsApplier:
    """Writes objects into a git working tree and commits them.

    Args:
        repo: local repository; created with ``git init -b main`` if missing.
        path: directory inside the repository that holds one folder per namespace.
        author: commit identity, ``"Name <email>"``.
        push: push after applying (also when nothing changed, so an earlier failed push is
            retried); requires `remote` to be configured in the repository.
        remote: the remote to push to.
    """

    def __init__(
        self,
        repo: Path,
        path: str,
        author: str = "retrain <retrain@localhost>",
        push: bool = False,
        remote: str = "origin",
    ) -> None:
        self.repo = Path(repo)
        self.path = path
        self.author = author
        self.push = push
        self.remote = remote

    @classmethod
    def from_config(
        cls, cfg: Config, *, push: bool = False, remote: str = "origin"
    ) -> GitOpsApplier:
        """The applier for ``cfg.deploy.gitops_repo`` / ``cfg.deploy.gitops_path``."""
        if not cfg.deploy.gitops_repo:
            raise ValidationError("deploy.gitops_repo is required when deploy.mode is 'gitops'")
        return cls(Path(cfg.deploy.gitops_repo), cfg.deploy.gitops_path, push=push, remote=remote)

    def apply(self, obj: dict[str, Any], cfg: Config, message: str | None = None) -> ApplyResult:
        """Write `obj` and its kustomization, and commit them if they changed.

        `message` becomes the commit subject (default: a summary of versions and traffic);
        the body always lists each role's version, traffic and model URI.
        """
        namespace, name = _object_key(obj, cfg)
        base = _check_path(self.path)
        folder = posixpath.normpath(posixpath.join(base, namespace))
        rel_obj = f"{folder}/{name}.yaml"
        rel_kust = f"{folder}/{KUSTOMIZATION}"
        author_name, author_email = _parse_author(self.author)
        git = _Git(self.repo, author_name, author_email)

        git.ensure_repo()
        if self.push:
            git.require_remote(self.remote)
        obj_text = to_yaml(obj)
        sha = _unchanged_since_last_apply(git, rel_obj, rel_kust, obj_text)
        changed = False
        if sha is None:
            changed, sha = self._commit(git, obj, message, obj_text, rel_obj, rel_kust)
        pushed = ""
        if self.push:
            git.push(self.remote)
            pushed = f", pushed to {self.remote}"
        short = (sha or "")[:12]
        detail = (
            f"committed {short}: {rel_obj}{pushed}"
            if changed
            else f"{rel_obj} unchanged at {short}{pushed}"
        )
        return ApplyResult(changed=changed, ref=sha, detail=detail)

    def _commit(
        self,
        git: _Git,
        obj: dict[str, Any],
        message: str | None,
        obj_text: str,
        rel_obj: str,
        rel_kust: str,
    ) -> tuple[bool, str | None]:
        """Write our two files and commit them if they changed: (committed?, HEAD)."""
        with git.lock():
            # Built on the committed kustomization, so an uncommitted edit to it shows up
            # as a hand edit below instead of slipping into our commit.
            resource = posixpath.basename(rel_obj)
            kust_text = _kustomization(git.committed(rel_kust), rel_kust, resource)
            wanted = {rel_obj: obj_text, rel_kust: kust_text}
            _refuse_hand_edits(git, self.repo, wanted)
            for rel, text in wanted.items():
                _write_if_different(self.repo / rel, text)
            paths = list(wanted)
            git.run("add", "--", *paths)
            changed = git.has_staged_changes(paths)
            if changed:
                git.run("commit", "--quiet", "-m", commit_message(obj, message), "--", *paths)
            sha = git.head()
            if sha is not None:
                _remember_apply(git, sha, rel_obj, rel_kust, obj_text)
        return changed, sha


def commit_message(obj: Mapping[str, Any], subject: str | None = None) -> str:
    """Subject (default: versions and traffic) plus one body line per role.

    The body always names each role's version, traffic and model URI, so `git log` alone
    tells what served when.
    """
    meta = obj.get("metadata") or {}
    kind = obj.get("kind", "object")
    target = f"{meta.get('namespace')}/{meta.get('name')}"
    roles = annotated_roles(meta.get("annotations") or {})
    if subject is None or not subject.strip():
        split = ", ".join(f"{role} {version} {traffic}%" for role, version, traffic, _ in roles)
        subject = f"deploy {target}: {split or kind}"
    body = [f"{kind} {target}"]
    body += [
        f"{role}: {version} ({traffic}%) {uri}".rstrip() for role, version, traffic, uri in roles
    ]
    return subject.strip() + "\n\n" + "\n".join(body) + "\n"


def _object_key(obj: Mapping[str, Any], cfg: Config) -> tuple[str, str]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        raise ValidationError("object to apply has no metadata mapping")
    name, namespace = meta.get("name"), meta.get("namespace")
    problems = []
    for key, value in (("metadata.name", name), ("metadata.namespace", namespace)):
        # These become file names, so they must be plain Kubernetes names.
        if not isinstance(value, str) or not _DNS_LABEL.match(value):
            problems.append(f"{key} {value!r}: must be a Kubernetes name")
    if not obj.get("apiVersion") or not obj.get("kind"):
        problems.append("apiVersion and kind are required")
    if problems:
        raise ValidationError("object to apply is invalid", problems)
    expected = (cfg.deploy.namespace, cfg.deploy.deployment_name)
    if (namespace, name) != expected:
        raise ValidationError(
            f"object {namespace}/{name} is not this config's deployment "
            f"{expected[0]}/{expected[1]} (deploy.namespace/deploy.deployment_name)"
        )
    return str(namespace), str(name)


def _check_path(path: str) -> str:
    norm = posixpath.normpath(path or ".")
    if path.startswith("/") or "\\" in path or norm == ".." or norm.startswith("../"):
        raise ValidationError(
            f"deploy.gitops_path {path!r} must be a relative path inside the repository"
        )
    return norm


def _parse_author(author: str) -> tuple[str, str]:
    m = _AUTHOR.match(author)
    if not m:
        raise ValidationError(f"git author {author!r} must look like 'Name <email>'")
    return m.group("name"), m.group("email")


def _kustomization(current: str | None, where: str, resource: str) -> str:
    """The kustomization text with `resource` listed; other keys and entries are kept."""
    data: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [],
    }
    if current is not None:
        try:
            loaded = yaml.safe_load(current)
        except yaml.YAMLError as err:
            raise ValidationError(f"{where} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("resources", []), list):
            raise ValidationError(f"{where}: expected a mapping with a 'resources' list")
        data = {**data, **loaded}
    data["resources"] = sorted({*map(str, data.get("resources") or []), resource})
    return to_yaml(data)


def _refuse_hand_edits(git: _Git, repo: Path, wanted: Mapping[str, str]) -> None:
    """Refuse if a target file has uncommitted changes we did not make.

    A dirty file whose content is exactly what we are about to write is ours from an apply
    that stopped before committing; that one is committed now instead of refused.
    """
    problems = []
    for rel in git.dirty(list(wanted)):
        target = repo / rel
        current = target.read_text() if target.exists() else None
        if current != wanted[rel]:
            problems.append(f"{rel}: has uncommitted changes (edited by hand?)")
    if problems:
        raise ValidationError(
            f"refusing to overwrite uncommitted changes in {repo}; commit or revert them first",
            problems,
        )


def _tree_stamp(git: _Git, git_dir: Path, paths: list[str]) -> dict[str, Any]:
    """The sha256 of our files' bytes, and the inode, size and mtime of git's index (git
    replaces the index file whenever it writes it: a checkout, a staged edit, a commit)."""
    files: list[str | None] = []
    for rel in paths:
        try:
            files.append(hashlib.sha256((git.repo / rel).read_bytes()).hexdigest())
        except FileNotFoundError:
            files.append(None)
    try:
        st = (git_dir / "index").stat()
        index: list[int] | None = [st.st_ino, st.st_size, st.st_mtime_ns]
    except FileNotFoundError:
        index = None
    return {"files": files, "index": index}


def _applied_record(
    git: _Git, git_dir: Path, head: str, rel_obj: str, rel_kust: str, obj_text: str
) -> dict[str, Any]:
    return {
        "head": head,
        "paths": [rel_obj, rel_kust],
        "object_sha256": hashlib.sha256(obj_text.encode()).hexdigest(),
        **_tree_stamp(git, git_dir, [rel_obj, rel_kust]),
    }


def _remember_apply(git: _Git, head: str, rel_obj: str, rel_kust: str, obj_text: str) -> None:
    """Record what the tree held after an apply that left our files committed at `head`."""
    git_dir = Path(git.run("rev-parse", "--absolute-git-dir").stdout.strip())
    record = _applied_record(git, git_dir, head, rel_obj, rel_kust, obj_text)
    _write_if_different(git_dir / _APPLIED_FILE, json.dumps(record, sort_keys=True))


def _unchanged_since_last_apply(
    git: _Git, rel_obj: str, rel_kust: str, obj_text: str
) -> str | None:
    """HEAD if the last apply left this same object committed there and nothing touched the
    tree since (HEAD, our files' bytes and the index as recorded), else None: apply in full.

    One git call instead of the full apply's six: a monitor ticks every model's rollout at
    every check, and the tree rarely changes. A commit by anyone, a checkout, a staged or an
    unstaged edit of our files all change what is compared, so they get the full apply (which
    restores, commits or refuses as before).
    """
    proc = git.run("rev-parse", "--absolute-git-dir", "--verify", "HEAD", check=False)
    lines = proc.stdout.split()
    if proc.returncode != 0 or len(lines) != 2:
        return None  # no commit yet, or git refused: the full apply says why
    git_dir, head = Path(lines[0]), lines[1]
    try:
        recorded = json.loads((git_dir / _APPLIED_FILE).read_text())
    except (OSError, ValueError):
        return None
    now = _applied_record(git, git_dir, head, rel_obj, rel_kust, obj_text)
    return head if recorded == json.loads(json.dumps(now)) else None


def _write_if_different(target: Path, text: str) -> None:
    data = text.encode()
    if target.exists() and target.read_bytes() == data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader (or a crash) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _Git:
    """The git CLI on one repository, with a fixed identity and a clean environment."""

    def __init__(self, repo: Path, name: str, email: str) -> None:
        self.repo = repo
        self.identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
        env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
        # Never wait for a credential prompt; keep messages parseable.
        env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["git", "-C", str(self.repo), *self.identity, "-c", "commit.gpgsign=false", *args]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=self.env, timeout=_TIMEOUT_S, check=False
            )
        except FileNotFoundError:
            raise RetrainError("the git command is not installed") from None
        except subprocess.TimeoutExpired:
            raise TransientError(f"git {args[0]} timed out after {_TIMEOUT_S}s") from None
        if check and proc.returncode != 0:
            msg = f"git {' '.join(args[:2])} failed in {self.repo}: {proc.stderr.strip()}"
            # Another process holding the index lock is worth a retry; the rest is not.
            if "index.lock" in proc.stderr:
                raise TransientError(msg)
            raise RetrainError(msg)
        return proc

    def ensure_repo(self) -> None:
        if (self.repo / ".git").exists():
            return
        if self.repo.exists() and not self.repo.is_dir():
            raise ValidationError(f"gitops repository {self.repo} exists and is not a directory")
        self.repo.mkdir(parents=True, exist_ok=True)
        self.run("init", "--quiet", "-b", "main")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise appliers on this repository (git's own index lock fails, not waits)."""
        git_dir = Path(self.run("rev-parse", "--absolute-git-dir").stdout.strip())
        with open(git_dir / "retrain-apply.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def dirty(self, paths: list[str]) -> list[str]:
        """Paths with staged, unstaged or untracked changes against HEAD."""
        out = self.run(
            "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths
        ).stdout
        # Entries are "XY <path>\0"; our paths never contain renames.
        return sorted({entry[3:] for entry in out.split("\0") if entry})

    def has_staged_changes(self, paths: list[str]) -> bool:
        proc = self.run("diff", "--cached", "--quiet", "--", *paths, check=False)
        if proc.returncode not in (0, 1):
            raise RetrainError(f"git diff failed in {self.repo}: {proc.stderr.strip()}")
        return proc.returncode == 1

    def committed(self, path: str) -> str | None:
        """The file's text at HEAD, or None if HEAD or the file does not exist."""
        proc = self.run("show", f"HEAD:{path}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def head(self) -> str | None:
        proc = self.run("rev-parse", "--verify", "--quiet", "HEAD", check=False)
        return proc.stdout.strip() or None

    def require_remote(self, remote: str) -> None:
        if self.run("remote", "get-url", remote, check=False).returncode != 0:
            raise ValidationError(
                f"push requested but {self.repo} has no remote {remote!r}; "
                f"add it with: git -C {self.repo} remote add {remote} <url>"
            )

    def push(self, remote: str) -> None:
        proc = self.run("push", "--quiet", remote, "HEAD", check=False)
        if proc.returncode == 0:
            return
        msg = f"git push to {remote!r} failed: {proc.stderr.strip()}"
        if "rejected" in proc.stderr or "non-fast-forward" in proc.stderr:
            # The remote moved on; retrying the same push cannot succeed until someone
            # reconciles the branches.
            raise RetrainError(msg)
        # Network or server trouble: the commit is safe locally and the next apply pushes.
        raise TransientError(msg)


def served_split(cfg: Config) -> list[tuple[str, str, str]] | None:
    """``(role, version, traffic)`` the GitOps tree's HEAD serves (None: nothing committed).

    Read from the committed object, not the working tree: HEAD is what Argo CD or Flux sync.
    """
    if not cfg.deploy.gitops_repo or not (Path(cfg.deploy.gitops_repo) / ".git").exists():
        return None
    folder = posixpath.normpath(
        posixpath.join(_check_path(cfg.deploy.gitops_path), cfg.deploy.namespace)
    )
    git = _Git(Path(cfg.deploy.gitops_repo), "retrain", "retrain@localhost")
    text = git.committed(f"{folder}/{cfg.deploy.deployment_name}.yaml")
    if text is None:
        return None
    obj = yaml.safe_load(text)
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    roles = annotated_roles(annotations if isinstance(annotations, Mapping) else {})
    return [(role, version, traffic) for role, version, traffic, _ in roles]
