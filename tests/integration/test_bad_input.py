"""Bad input, end to end through the `retrain` CLI: exit code 2, a message that names the
problem, and nothing written by the failed run to the registry or the GitOps repository.
Broken rows within `data.max_quarantine_share` are the exception: quarantined, and the run
continues.

Every case starts from the loans demo with a champion (window 0 run and deployed), breaks one
input, and runs the next window. The demo and its champion are built once per module and
copied for each test, which keeps the module fast on a small machine.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from retrain.cli import main
from retrain.data.demo import generate_housing, generate_loans
from retrain.registry import AliasState, Registry
from retrain.storage import LocalStorage
from retrain.training.artifact import ModelCard, load_model, serialize_model, sha256_hex

pytestmark = pytest.mark.integration

SEED = 11
ROWS = 400
MODEL = "loans"


@dataclass(frozen=True)
class Demo:
    """A copy of the demo directory: data, labels, config, store and GitOps repository."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "loans.yaml"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def labels(self) -> Path:
        return self.root / "labels"

    @property
    def gitops(self) -> Path:
        return self.root / "gitops"

    def registry(self) -> Registry:
        return Registry(LocalStorage(self.store), MODEL)

    def champion_file(self, name: str) -> Path:
        version = self.registry().get_alias("champion").version
        assert version is not None
        return self.store / "models" / MODEL / "versions" / version / name


@dataclass(frozen=True)
class RegistryState:
    """Everything a run could change in the registry and the GitOps repository."""

    files: dict[str, bytes | None]  # every path below <store>/models; None for a directory
    aliases: dict[str, AliasState]
    gitops_head: str | None
    gitops_status: str


def _tree(root: Path, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, bytes | None]:
    """Every file (with its bytes) and directory below `root`, hidden ones included.

    Git's own directory is left out: `git status` refreshes its index, and the repository is
    compared by HEAD and status instead.
    """
    if not root.exists():
        return {}
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if ".git" not in p.relative_to(root).parts and not skip(rel):
            out[rel] = p.read_bytes() if p.is_file() else None
    return out


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def registry_state(demo: Demo) -> RegistryState:
    reg = demo.registry()
    has_repo = (demo.gitops / ".git").exists()
    return RegistryState(
        files=_tree(demo.store / "models"),
        aliases={alias: reg.get_alias(alias) for alias in ("champion", "canary")},
        gitops_head=_git(demo.gitops, "rev-parse", "HEAD") if has_repo else None,
        gitops_status=_git(demo.gitops, "status", "--porcelain") if has_repo else "",
    )


def assert_untouched(before: RegistryState, after: RegistryState) -> None:
    """Compare two states, naming the paths that differ rather than dumping bytes."""
    changed = sorted(
        rel
        for rel in before.files.keys() | after.files.keys()
        if before.files.get(rel, b"<absent>") != after.files.get(rel, b"<absent>")
    )
    assert changed == [], f"the failed run wrote to the registry: {changed}"
    assert after.aliases == before.aliases
    assert after.gitops_head == before.gitops_head
    assert after.gitops_status == before.gitops_status


def run_window(
    demo: Demo, window: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    """`retrain run` for one window; the exit code and everything printed."""
    capsys.readouterr()  # drop output from fixtures and earlier runs
    code = main(
        ["run", "--config", str(demo.config), "--window", window, "--engine", "direct", *extra]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def failed_line(step: str, error: str = "ValidationError") -> str:
    """The CLI's summary line of a step that failed with a ValidationError (or `error`, one
    of its kinds)."""
    return f"  {step:<9} x FAILED ({error}): "


def rewrite_parquet(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def week_file(directory: Path, window: int) -> Path:
    return directory / f"week-{window:03d}.parquet"


@pytest.fixture(scope="module")
def champion_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loans demo after window 0 ran and its model became the champion."""
    root = tmp_path_factory.mktemp("bad-input") / "loans"
    config = generate_loans(root, windows=4, rows_per_window=ROWS, drift_window=3, seed=SEED)
    assert main(["run", "--config", str(config), "--window", "0", "--engine", "direct"]) == 0
    reg = Registry(LocalStorage(root / "store"), MODEL)
    assert reg.get_alias("champion").version is not None  # the cases below need a champion
    assert _git(root / "gitops", "rev-parse", "HEAD")
    return root


@pytest.fixture
def demo(champion_demo: Path, tmp_path: Path) -> Demo:
    """A private copy of the demo with a champion, so each test may break it freely."""
    root = tmp_path / "loans"
    shutil.copytree(champion_demo, root, symlinks=True)
    return Demo(root)


# --- events ------------------------------------------------------------------------------------


def test_missing_column_in_every_event_file(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    for path in sorted(demo.events.glob("*.parquet")):
        rewrite_parquet(path, lambda df: df.drop(columns=["age"]))
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert failed_line("ingest") + "window 1 [1, 2) failed 1 checks" in out
    assert "missing columns: 'age'" in out
    assert not (demo.store / "datasets" / "1").exists()  # the bad window never enters history
    assert_untouched(before, registry_state(demo))


def test_missing_column_in_the_new_window_only(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    # Older files still have the column: the window is judged on its own file, which has not.
    rewrite_parquet(week_file(demo.events, 1), lambda df: df.drop(columns=["age"]))
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert failed_line("ingest") + "window 1 [1, 2) failed 1 checks" in out
    assert f"missing columns: 'age' in file {week_file(demo.events, 1)}" in out
    assert not (demo.store / "datasets" / "1").exists()
    assert_untouched(before, registry_state(demo))


def _salary_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Seven of the window's 400 rows with 'n/a' for a salary: broken rows, not a broken column."""
    text = df["salary"].astype(str)
    text.iloc[[3, 50, 51, 120, 200, 333, 399]] = "n/a"
    return df.assign(salary=text)


def test_strings_in_a_numeric_column_are_quarantined(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    # 7 of 400 rows (1.75%) is under data.max_quarantine_share (5%): the rows are set aside
    # with their reason and the window proceeds without them.
    rewrite_parquet(week_file(demo.events, 1), _salary_as_text)

    code, out = run_window(demo, "1", capsys)

    assert code == 0, out
    assert "ingest    ok window 1: 393 rows passed schema checks; 7 rows quarantined" in out
    quarantined = pd.read_parquet(demo.store / "quarantine" / "1.parquet")
    assert len(quarantined) == 7
    assert set(quarantined["salary"]) == {"n/a"}
    assert (demo.store / "datasets" / "1").exists()  # the rest of the window entered history


def test_strings_in_a_numeric_column_over_the_quarantine_share(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    text = demo.config.read_text()
    assert "max_quarantine_share" not in text
    limit = "  max_quarantine_share: 0.01\n  min_rows:"  # 1.75% is now over the share
    demo.config.write_text(text.replace("  min_rows:", limit, 1))
    rewrite_parquet(week_file(demo.events, 1), _salary_as_text)
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert failed_line("ingest") in out
    assert "(7 of 400) are broken, more than data.max_quarantine_share 1.0%" in out
    assert "'salary' is not a finite number: 7 rows" in out
    assert not (demo.store / "quarantine" / "1.parquet").exists()
    assert not (demo.store / "datasets" / "1").exists()
    assert_untouched(before, registry_state(demo))


def test_window_without_events(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    before = registry_state(demo)

    code, out = run_window(demo, "9", capsys)

    # No new data is an outcome, not an error: the later steps skip, nothing is retried.
    assert code == 0, out
    assert "ingest    ok window 9: no new data, the later steps skip" in out
    assert "label     ok skipped: no new data (window 9 [9, 10) is empty" in out
    assert (
        "no rows with 'event_week' in the window; the source has 1600 rows spanning 0 to 3" in out
    )
    assert "=> no new data: nothing to train on" in out
    assert not (demo.store / "datasets" / "9").exists()
    assert_untouched(before, registry_state(demo))


# --- labels ------------------------------------------------------------------------------------


def test_labels_missing_entirely(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    for path in demo.labels.iterdir():
        path.unlink()
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert failed_line("label", "SourceNotFound") in out  # a ValidationError: exit 2
    assert f"data source {demo.labels} is a directory with no .parquet files" in out
    assert not (demo.store / "datasets" / "1").exists()
    assert_untouched(before, registry_state(demo))


def test_label_coverage_under_the_threshold(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite_parquet(week_file(demo.labels, 1), lambda df: df.iloc[:200])
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert failed_line("label") + "label join failed" in out
    assert "label coverage 50.0% (200 of 400 events) is below labels.min_coverage 90.0%" in out
    assert not (demo.store / "datasets" / "1").exists()
    assert_untouched(before, registry_state(demo))


# --- config ------------------------------------------------------------------------------------


def test_unknown_config_key(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    text = demo.config.read_text()
    assert "  max_nul_rate" not in text
    demo.config.write_text(text.replace("  min_rows:", "  max_nul_rate: 0.1\n  min_rows:", 1))
    store_before = _tree(demo.store)
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert f"error: {demo.config} is invalid" in out
    assert "data.max_nul_rate: unknown key" in out
    assert _tree(demo.store) == store_before  # refused at load: not even a run record
    assert_untouched(before, registry_state(demo))


# --- the champion's model file -----------------------------------------------------------------


def _garbage(_: bytes) -> bytes:
    return b"this is not a model\n" * 50


def _flip_bytes(data: bytes) -> bytes:
    middle = bytearray(data)
    for i in (len(data) // 3, len(data) // 2, len(data) // 2 + 1):
        middle[i] ^= 0xFF
    return bytes(middle)


def _other_valid_model(_: bytes) -> bytes:
    model = Pipeline([("clf", DummyClassifier(strategy="prior"))])
    model.fit(np.zeros((4, 1)), np.array([0, 1, 0, 1]))
    return serialize_model(model)


@pytest.mark.parametrize(
    "tamper",
    [_garbage, _flip_bytes, _other_valid_model],
    ids=["garbage", "flipped-bytes", "other-valid-model"],
)
def test_champion_model_file_changed_after_registration(
    demo: Demo, capsys: pytest.CaptureFixture[str], tamper: Callable[[bytes], bytes]
) -> None:
    model_file, card_file = demo.champion_file("model.skops"), demo.champion_file("model.json")
    card = ModelCard.from_json(card_file.read_text())
    changed = tamper(model_file.read_bytes())
    assert sha256_hex(changed) != card.model_sha256
    model_file.write_bytes(changed)
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert failed_line("evaluate") in out
    assert (
        f"was modified after registration (sha256 {sha256_hex(changed)} "
        f"!= registered {card.model_sha256}); refusing to use it"
    ) in out
    assert_untouched(before, registry_state(demo))


def test_other_valid_model_loads_when_its_hash_matches() -> None:
    # The tampering case above is refused by the hash alone: the replacement is a model the
    # loader would otherwise accept.
    data = _other_valid_model(b"")
    card = ModelCard(
        version="v",
        parent=None,
        created_at="2024-01-01T00:00:00+00:00",
        task="classification",
        target="defaulted",
        features={},
        estimator="sklearn.dummy.DummyClassifier",
        params={},
        seed=0,
        model_sha256=sha256_hex(data),
    )
    assert load_model(data, card).predict(np.zeros((2, 1))).tolist() == [0, 0]


def test_champion_model_and_card_swapped_together(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    # Model and card replaced consistently (the card's hash matches the new bytes): the
    # registry's own record of the registered bytes still refuses them. (A corrupted file that
    # reaches the skops loader is covered in tests/unit/test_artifact.py.)
    model_file, card_file = demo.champion_file("model.skops"), demo.champion_file("model.json")
    garbage = _garbage(b"")
    card = ModelCard.from_json(card_file.read_text())
    model_file.write_bytes(garbage)
    card_file.write_text(dataclasses.replace(card, model_sha256=sha256_hex(garbage)).to_json())
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys)

    assert code == 2
    assert failed_line("evaluate") in out
    assert "model.json was modified after registration" in out
    assert_untouched(before, registry_state(demo))


# --- inputs that reach storage keys ------------------------------------------------------------


def _run_output(rel: str) -> bool:
    """Paths a failed run may write: its own run record and its log (and their folders)."""
    return rel in ("store", "store/runs", "logs") or rel.startswith(("store/runs/", "logs/"))


@pytest.mark.parametrize("window", ["../../1", "1/../../../models/loans"])
def test_window_id_that_escapes_the_store(
    demo: Demo, capsys: pytest.CaptureFixture[str], window: str
) -> None:
    tree_before = _tree(demo.root, skip=_run_output)
    before = registry_state(demo)

    code, out = run_window(demo, window, capsys)

    assert code == 2
    # Checked before the run lease is taken: reported at resolve, and nothing is written.
    assert failed_line("resolve") + f"window id {window!r} is not an integer period" in out
    assert _tree(demo.root, skip=_run_output) == tree_before
    assert_untouched(before, registry_state(demo))


def test_timestamp_window_id_that_escapes_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = generate_housing(tmp_path, windows=2, rows_per_window=200, drift_window=1, seed=SEED)
    window = "2024-01-08/../../../models/housing"
    tree_before = _tree(tmp_path, skip=_run_output)

    capsys.readouterr()
    code = main(["run", "--config", str(config), "--window", window, "--engine", "direct"])
    out = "".join(capsys.readouterr())

    assert code == 2
    assert failed_line("resolve") + f"window id {window!r} is not an ISO date" in out
    assert _tree(tmp_path, skip=_run_output) == tree_before
    assert not (tmp_path / "store" / "models").exists()
    assert not (tmp_path / "store" / "datasets").exists()


@pytest.mark.parametrize("run_id", ["../models/loans", "..", "ok/../../escaped"])
def test_run_id_that_escapes_the_store(
    demo: Demo, capsys: pytest.CaptureFixture[str], run_id: str
) -> None:
    tree_before = _tree(demo.root)
    before = registry_state(demo)

    code, out = run_window(demo, "1", capsys, "--run-id", run_id)

    assert code == 2
    assert f"error: run id {run_id!r} is invalid" in out
    assert _tree(demo.root) == tree_before  # refused before any step: no record, no log
    assert_untouched(before, registry_state(demo))


# --- the same mapping through the real KFP pipeline --------------------------------------------


def test_missing_column_through_the_kfp_pipeline(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    # Local runs build the pipeline without retries (see build_pipeline): fails at once.
    for path in sorted(demo.events.glob("*.parquet")):
        rewrite_parquet(path, lambda df: df.drop(columns=["age"]))
    before = registry_state(demo)

    capsys.readouterr()
    code = main(["run", "--config", str(demo.config), "--window", "1", "--engine", "kfp-local"])
    out = "".join(capsys.readouterr())

    assert code == 2
    assert failed_line("ingest") + "window 1 [1, 2) failed 1 checks" in out
    assert "missing columns: 'age'" in out
    assert "  label     - skipped (not run)" in out
    assert not (demo.store / "datasets" / "1").exists()
    assert_untouched(before, registry_state(demo))
