"""GitOps to a remote: a bare repository, `git daemon` and `git http-backend` on loopback.

Real git end to end: each deploy fetches into its own scratch checkout, commits and pushes
with a lease; two deploys racing to push both land (the loser rebases once), a deploy that
loses twice exits 75, a refused token exits 2.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deploy_support import V1, V2, make_cfg
from required import unavailable
from retrain.config import Config
from retrain.deploy import DeploymentState, SeldonBackend, applier_for, gitremote
from retrain.deploy.gitops import commit_message
from retrain.deploy.gitremote import GitCredentials, RemoteGitOpsApplier
from retrain.errors import TransientError, ValidationError
from retrain.triggers.fleet import run_for_each

pytestmark = pytest.mark.integration

GIT_DAEMON = "/usr/lib/git-core/git-daemon"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
TOKEN = "s3cret-token-for-tests"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def bare(path: Path) -> Path:
    git("init", "--quiet", "--bare", "-b", "main", str(path))
    return path


def remote_log(remote: Path, branch: str = "main") -> list[str]:
    """Commit subjects on the remote's branch, oldest first."""
    out = git("--git-dir", str(remote), "log", "--reverse", "--format=%s", branch)
    return out.splitlines()


def remote_file(remote: Path, path: str, branch: str = "main") -> str:
    return git("--git-dir", str(remote), "show", f"{branch}:{path}")


def cfg_for(tmp: Path, remote: str, name: str = "fraud-model", **extra: Any) -> Config:
    return make_cfg(
        storage_root=str(tmp / "store"),
        deployment_name=name,
        gitops_remote=remote,
        gitops_repo=str(tmp / f"scratch-{name}-{os.getpid()}-{threading.get_ident()}"),
        **extra,
    )


def render(cfg: Config, canary: bool = False) -> dict[str, Any]:
    name = cfg.deploy.deployment_name
    state = (
        DeploymentState.with_canary(name, "models", V1, V2, 10)
        if canary
        else DeploymentState.single(name, "models", V1)
    )
    return SeldonBackend().render(state, cfg)


def test_each_change_is_one_pushed_commit_with_the_local_modes_message(tmp_path: Path) -> None:
    remote = bare(tmp_path / "remote.git")
    cfg = cfg_for(tmp_path, str(remote))
    applier = applier_for(cfg)
    assert isinstance(applier, RemoteGitOpsApplier)
    first = applier.apply(render(cfg), cfg, "deploy v1")
    again = applier.apply(render(cfg), cfg, "deploy v1")
    second = applier.apply(render(cfg, canary=True), cfg, "canary v2 at 10%")
    assert (first.changed, again.changed, second.changed) == (True, False, True)
    assert remote_log(remote) == ["deploy v1", "canary v2 at 10%"]
    assert git("--git-dir", str(remote), "rev-parse", "main").strip() == second.ref
    full = git("--git-dir", str(remote), "log", "-1", "--format=%B", "main")
    assert full.strip() == commit_message(render(cfg, canary=True), "canary v2 at 10%").strip()
    assert "traffic: 10" in remote_file(remote, "deployments/models/fraud-model.yaml")


def test_a_fresh_scratch_checkout_continues_the_remote_history(tmp_path: Path) -> None:
    # A new pod has an empty /tmp: it fetches what earlier deploys pushed.
    remote = bare(tmp_path / "remote.git")
    one = cfg_for(tmp_path / "a", str(remote))
    applier_for(one).apply(render(one), one, "deploy v1")
    two = cfg_for(tmp_path / "b", str(remote))
    assert applier_for(two).apply(render(two), two, "deploy v1").changed is False
    applier_for(two).apply(render(two, canary=True), two, "canary v2")
    assert remote_log(remote) == ["deploy v1", "canary v2"]


def _push_between(
    monkeypatch: pytest.MonkeyPatch, times: int, other: Callable[[int], None]
) -> list[int]:
    """Run `other` (another writer's push) just before this applier's next `times` pushes."""
    real = gitremote._RemoteGit.push
    calls: list[int] = []

    def push(self: Any, expected: str | None) -> bool:
        calls.append(len(calls))
        if len(calls) <= times:
            with monkeypatch.context() as m:
                m.setattr(gitremote._RemoteGit, "push", real)
                other(len(calls))
        return real(self, expected)

    monkeypatch.setattr(gitremote._RemoteGit, "push", push)
    return calls


def test_a_lost_race_rebases_once_and_keeps_the_other_deploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = bare(tmp_path / "remote.git")
    ours = cfg_for(tmp_path, str(remote), "fraud-model")
    theirs = cfg_for(tmp_path, str(remote), "churn-model")

    def their_deploy(n: int) -> None:
        applier_for(theirs).apply(render(theirs), theirs, "their deploy")

    calls = _push_between(monkeypatch, 1, their_deploy)
    result = applier_for(ours).apply(render(ours), ours, "our deploy")
    assert len(calls) == 2, "rejected once, pushed on the rebased commit"
    assert remote_log(remote) == ["their deploy", "our deploy"]
    kust = remote_file(remote, "deployments/models/kustomization.yaml")
    assert "churn-model.yaml" in kust and "fraud-model.yaml" in kust
    assert git("--git-dir", str(remote), "rev-parse", "main").strip() == result.ref


def test_losing_the_race_twice_is_transient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = bare(tmp_path / "remote.git")
    ours = cfg_for(tmp_path, str(remote), "fraud-model")
    theirs = cfg_for(tmp_path, str(remote), "churn-model")

    def their_deploy(n: int) -> None:
        applier_for(theirs).apply(render(theirs, canary=n == 2), theirs, f"their deploy {n}")

    _push_between(monkeypatch, 2, their_deploy)
    with pytest.raises(TransientError, match="lost the race") as err:
        applier_for(ours).apply(render(ours), ours, "our deploy")
    assert err.value.exit_code == 75
    assert remote_log(remote) == ["their deploy 1", "their deploy 2"]  # nothing overwritten


def _deploy_many(args: tuple[str, str, str, int]) -> list[str]:
    tmp, remote, name, count = args
    cfg = cfg_for(Path(tmp), remote, name)
    refs = []
    for i in range(count):
        obj = render(cfg, canary=i % 2 == 1)
        for _ in range(5):  # a lost race twice is exit 75: the task is retried
            try:
                refs.append(str(applier_for(cfg).apply(obj, cfg, f"{name} change {i}").ref))
                break
            except TransientError:
                time.sleep(0.05)
            except Exception as err:  # shown by the assertion below, not lost in the pool
                refs.append(f"ERROR {type(err).__name__}: {err}")
                break
    return refs


def _race(tmp_path: Path, remote: str, check: Path) -> None:
    names = ["fraud-model", "churn-model", "loans-model"]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(names)) as pool:
        results = pool.map(_deploy_many, [(str(tmp_path), remote, n, 4) for n in names])
    errors = [ref for r in results for ref in r if ref.startswith("ERROR")]
    assert not errors, errors
    assert all(len(r) == 4 for r in results), f"a deploy gave up: {results}"
    subjects = remote_log(check)
    for name in names:
        assert [s for s in subjects if s.startswith(name)] == [
            f"{name} change {i}" for i in range(4)
        ]
    assert len(subjects) == 12, "every change exactly one commit, none lost or doubled"


def test_concurrent_deploys_to_a_bare_repository_all_land(tmp_path: Path) -> None:
    remote = bare(tmp_path / "remote.git")
    _race(tmp_path, str(remote), remote)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`git daemon` on loopback serving one bare repository with push enabled."""
    if not Path(GIT_DAEMON).exists():
        unavailable(f"{GIT_DAEMON} is missing (Debian package git)")
    root = tmp_path / "served"
    root.mkdir()
    repo = bare(root / "deploy.git")
    port = _free_port()
    proc = subprocess.Popen(
        [GIT_DAEMON, "--reuseaddr", "--export-all", "--enable=receive-pack",
         f"--base-path={root}", "--listen=127.0.0.1", f"--port={port}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"git://127.0.0.1:{port}/deploy.git", repo
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_deploys_push_through_git_daemon_and_race(
    tmp_path: Path, git_daemon: tuple[str, Path]
) -> None:
    url, repo = git_daemon
    cfg = cfg_for(tmp_path, url)
    applier_for(cfg).apply(render(cfg), cfg, "deploy v1")
    assert remote_log(repo) == ["deploy v1"]
    git("--git-dir", str(repo), "update-ref", "-d", "refs/heads/main")  # start the race afresh
    _race(tmp_path, url, repo)


class _GitHTTP(BaseHTTPRequestHandler):
    """`git http-backend` as CGI behind Basic authentication (one token)."""

    root: Path

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        auth = self.headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(f"git:{TOKEN}".encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "git",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
        }
        out = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _handle
    do_POST = _handle


@pytest.fixture
def git_http(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not Path(HTTP_BACKEND).exists():
        unavailable(f"{HTTP_BACKEND} is missing (Debian package git)")
    root = tmp_path / "http-served"
    root.mkdir()
    repo = bare(root / "deploy.git")
    handler = type("Handler", (_GitHTTP,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/deploy.git", repo
    finally:
        server.shutdown()


def _secret(tmp_path: Path, token: str) -> Path:
    mount = tmp_path / "secret"
    mount.mkdir()
    (mount / "token").write_text(token + "\n")
    return mount


def test_an_https_token_from_the_mounted_secret_pushes(
    tmp_path: Path, git_http: tuple[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    url, repo = git_http
    cfg = cfg_for(tmp_path, url, gitops_credentials=str(_secret(tmp_path, TOKEN)))
    result = applier_for(cfg).apply(render(cfg), cfg, "deploy v1")
    assert remote_log(repo) == ["deploy v1"]
    assert TOKEN not in result.detail + cfg.to_yaml()
    scratch = Path(str(cfg.deploy.gitops_repo))
    assert TOKEN not in (scratch / ".git" / "config").read_text()
    assert TOKEN not in "".join(capfd.readouterr())


def test_a_refused_token_is_bad_input_and_never_shown(
    tmp_path: Path, git_http: tuple[str, Path]
) -> None:
    url, repo = git_http
    cfg = cfg_for(tmp_path, url, gitops_credentials=str(_secret(tmp_path, "wrong-token")))
    with pytest.raises(ValidationError, match="gitops_credentials") as err:
        applier_for(cfg).apply(render(cfg), cfg, "deploy v1")
    assert err.value.exit_code == 2
    assert "wrong-token" not in str(err.value)
    assert git("--git-dir", str(repo), "for-each-ref").strip() == ""


def test_ssh_credentials_check_host_keys_strictly_with_a_private_key_copy(
    tmp_path: Path,
) -> None:
    mount = tmp_path / "ssh-secret"
    mount.mkdir()
    (mount / "ssh-privatekey").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    (mount / "ssh-privatekey").chmod(0o644)  # as a Secret volume may mount it
    (mount / "known_hosts").write_text("git.example.com ssh-ed25519 AAAA\n")
    creds = GitCredentials.from_directory(str(mount), tmp_path / "scratch")
    command = creds.env["GIT_SSH_COMMAND"]
    assert "StrictHostKeyChecking=yes" in command and "BatchMode=yes" in command
    assert f"UserKnownHostsFile={mount / 'known_hosts'}" in command
    assert creds.key_copy is not None and (creds.key_copy.stat().st_mode & 0o777) == 0o600
    (mount / "known_hosts").unlink()
    with pytest.raises(ValidationError, match="known_hosts"):
        GitCredentials.from_directory(str(mount), tmp_path / "scratch2")


def test_a_token_in_the_remote_url_is_refused_at_load_time(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="gitops_credentials"):
        cfg_for(tmp_path, "https://bot:abc123@git.example.com/deploy.git")


def test_the_loop_pushes_every_traffic_change_to_the_remote(tmp_path: Path) -> None:
    # The demo's loop (weeks trained once their labels are in, a canary analysed, promoted or
    # rolled back) with deploy.gitops_remote set: every traffic change the registry records
    # with a commit is a commit on the remote's branch, and the remote has no other commit.
    from retrain.config import load_config
    from retrain.data.demo import generate_loans
    from retrain.registry import Registry
    from retrain.runner import run_cycle
    from retrain.storage import open_storage

    remote = bare(tmp_path / "remote.git")
    cfg = load_config(
        generate_loans(tmp_path / "run", windows=5, rows_per_window=800, drift_window=2, seed=7)
    )
    deploy = cfg.deploy.model_copy(update={"gitops_remote": str(remote)})
    cfg = cfg.model_copy(update={"deploy": deploy})
    for week in range(3):
        result = run_cycle(cfg, str(week), engine="direct", as_of=str(week + 2))
        assert result.exit_code == 0, result.lines()
    events = Registry(open_storage(cfg.storage_root), cfg.name).events()
    refs = list(dict.fromkeys(e["ref"] for e in events if e.get("ref")))
    assert len(refs) >= 2, f"the loop made too few traffic changes to test: {events}"
    pushed = git("--git-dir", str(remote), "rev-list", "--reverse", "main").split()
    assert pushed == refs, "each traffic change one pushed commit, in order, and nothing else"
    subjects = remote_log(remote)
    assert all(s.startswith(("retrain: ", "retrain rollout: ")) for s in subjects), subjects


def _hook(remote: Path, script: str) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\n" + script)
    hook.chmod(0o755)


def test_a_push_the_remote_refuses_is_bad_input_naming_its_reason(tmp_path: Path) -> None:
    # A pre-receive hook (or a protected branch) says no: no retry helps, and it is no race.
    remote = bare(tmp_path / "remote.git")
    _hook(remote, "echo 'GitLab: You are not allowed to push to protected branches' >&2\nexit 1\n")
    cfg = cfg_for(tmp_path, str(remote))
    with pytest.raises(ValidationError, match="refused the push") as err:
        applier_for(cfg).apply(render(cfg), cfg, "deploy v1")
    assert err.value.exit_code == 2
    assert "pre-receive hook declined" in str(err.value)
    assert "not allowed to push to protected branches" in str(err.value)
    assert git("--git-dir", str(remote), "for-each-ref").strip() == ""


def test_a_misspelt_branch_is_refused_naming_the_remotes_branches(tmp_path: Path) -> None:
    remote = bare(tmp_path / "remote.git")
    good = cfg_for(tmp_path / "a", str(remote))
    applier_for(good).apply(render(good), good, "deploy v1")
    typo = cfg_for(tmp_path / "b", str(remote), gitops_branch="mian")
    with pytest.raises(ValidationError, match="no branch 'mian'") as err:
        applier_for(typo).apply(render(typo), typo, "deploy v1")
    assert err.value.exit_code == 2 and "its branches: main" in str(err.value)
    assert git("--git-dir", str(remote), "branch", "--format=%(refname:short)").split() == ["main"]


def test_an_empty_remote_gets_its_first_branch(tmp_path: Path) -> None:
    remote = bare(tmp_path / "remote.git")
    cfg = cfg_for(tmp_path, str(remote), gitops_branch="deploy/prod")
    applier_for(cfg).apply(render(cfg), cfg, "deploy v1")
    assert remote_log(remote, "deploy/prod") == ["deploy v1"]


@pytest.mark.parametrize(
    "url",
    [
        "https://ghp_abc123@git.example.com/deploy.git",  # a token as the user name
        "https://bot@git.example.com/deploy.git",
        "http://x-access-token:t@git.example.com/deploy.git",
        "ssh://git:pw@git.example.com/deploy.git",
    ],
)
def test_any_user_info_in_an_http_remote_is_refused_and_not_echoed(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(ValidationError, match="must not carry user info") as err:
        cfg_for(tmp_path, url)
    assert "abc123" not in str(err.value) and ":t@" not in str(err.value)


@pytest.mark.parametrize(
    "url", ["git@git.example.com:team/deploy.git", "ssh://git@git.example.com/team/deploy.git"]
)
def test_an_ssh_login_in_the_remote_stays_allowed(tmp_path: Path, url: str) -> None:
    assert cfg_for(tmp_path, url).deploy.gitops_remote == url


def test_messages_redact_the_user_info_of_remotes() -> None:
    from retrain.settings.deploy import redact_remote

    text = "fatal: unable to access 'https://ghp_abc@host/r.git/': 403"
    assert redact_remote(text) == "fatal: unable to access 'https://***@host/r.git/': 403"
    assert redact_remote("ssh://git@host/r.git") == "ssh://git@host/r.git"
    assert redact_remote("ssh://git:pw@host/r.git") == "ssh://***@host/r.git"
    assert redact_remote("/srv/git/r.git") == "/srv/git/r.git"


def test_git_errors_never_show_a_token_in_the_remote(tmp_path: Path) -> None:
    # A remote that slipped past the config check (built in code): git's error is redacted.
    applier = RemoteGitOpsApplier(
        "http://ghp_secret@127.0.0.1:9/deploy.git", "main", "deployments", tmp_path / "scratch"
    )
    cfg = cfg_for(tmp_path, str(bare(tmp_path / "remote.git")))
    with pytest.raises((TransientError, ValidationError)) as err:
        applier.apply(render(cfg), cfg, "deploy v1")
    assert "ghp_secret" not in str(err.value) and "***@127.0.0.1" in str(err.value)


@pytest.mark.parametrize(
    ("output", "verdict"),
    [
        ("!\tHEAD:refs/heads/main\t[rejected] (stale info)", "race"),
        ("!\tHEAD:refs/heads/main\t[rejected] (fetch first)", "race"),
        ("!\tHEAD:refs/heads/main\t[rejected] (non-fast-forward)", "race"),
        # Another push landed while the server checked ours: a race at the server.
        (
            "!\tHEAD:refs/heads/main\t[remote rejected] (failed to update ref)\n"
            "remote: error: cannot lock ref 'refs/heads/main': is at 7b but expected 10",
            "race",
        ),
        ("!\tHEAD:refs/heads/main\t[remote rejected] (pre-receive hook declined)", "refused"),
        ("!\tHEAD:refs/heads/main\t[remote rejected] (protected branch hook declined)", "refused"),
        ("fatal: unable to access 'https://host/r.git/': Could not resolve host", "other"),
    ],
)
def test_push_output_tells_a_lost_race_from_a_refusal(output: str, verdict: str) -> None:
    assert gitremote.push_verdict(output) == verdict


def test_the_demo_refuses_a_token_in_its_remote_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retrain.cli import main

    work = tmp_path / "demo"
    url = "https://ghp_abc123@git.example.com/deploy.git"
    assert main(["demo", "--workdir", str(work), "--gitops-remote", url]) == 2
    err = capsys.readouterr().err
    assert "must not carry user info" in err and "ghp_abc123" not in err
    assert not work.exists()


def test_models_ticked_together_on_one_remote_each_have_their_own_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One `retrain deploy advance` pass ticks many models on threads; two deploying to one
    # repository, with no gitops_repo set, must not run git in one working tree together.
    (tmp_path / "pod-tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "pod-tmp"))
    remote = bare(tmp_path / "remote.git")
    models = [
        make_cfg(
            storage_root=str(tmp_path / name), deployment_name=name, gitops_remote=str(remote)
        ).model_copy(update={"name": name})
        for name in ("fraud", "loans")
    ]
    checkouts = {RemoteGitOpsApplier.from_config(c).checkout for c in models}
    assert len(checkouts) == 2 and all(c.parent.name == "retrain-gitops" for c in checkouts)
    for turn in range(6):

        def deploy(cfg: Config, turn: int = turn) -> Any:
            return applier_for(cfg).apply(render(cfg, canary=turn % 2 == 1), cfg, f"turn {turn}")

        results = run_for_each(models, deploy, workers=2)
        assert [r.error for r in results] == [None, None]
    assert len(remote_log(remote)) == 12  # every change of both models landed
    for name in ("fraud", "loans"):
        assert "traffic: 10" in remote_file(remote, f"deployments/models/{name}.yaml")
