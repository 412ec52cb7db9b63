"""The scale benchmark's report of the monitor section, rendered from a small made-up result.

Nothing is timed here: the figures are invented so that every ratio is known in advance.
"""

from __future__ import annotations

from typing import Any

from bench_script import load_script

bench = load_script("bench_scale")


def _step(seconds: float, rss: float) -> dict[str, Any]:
    return {"seconds": seconds, "rss_mib": rss, "cpu_seconds": seconds}


def _pass(seconds: float, cpu: float, pool: str = "process") -> dict[str, Any]:
    return {"exit_code": 0, "seconds": seconds, "cpu_seconds": cpu, "rss_mib": 250.0,
            "child_rss_mib": 240.0, "pool": pool}  # fmt: skip


def _results() -> dict[str, Any]:
    cycle = {step: _step(1.0, 400.0) for step in bench.STEPS}
    source = {k: _step(1.0, 300.0) for k in ("resolve", "ingest", "read_source")}
    second = bench.SECOND_PASS
    return {
        "rows": 1000,
        "history": {"1": cycle, "5": cycle, "20": cycle},
        "source": {"5": source, "50": source},
        "monitor": {
            "in_process": {
                "1": _pass(0.5, 0.4, "none (one model)"),
                f"1 {second}": _pass(0.25, 0.2, "none (one model)"),
                "10": _pass(2.0, 2.0),
                "50": _pass(8.0, 10.0),
                f"50 {second}": _pass(5.0, 4.0),
                "50 (threads)": _pass(9.0, 11.0, "thread"),
            },
            "cronjob": {
                "1": _pass(2.0, 2.0, "none (one model)"),
                f"1 {second}": _pass(2.0, 1.6, "none (one model)"),
                "10": _pass(5.0, 5.0),
                "50": _pass(30.0, 16.0),
                f"50 {second}": _pass(12.0, 8.0),
            },
            "separate": {
                "runs": 50,
                "first": {"seconds": 100.0, "cpu_seconds": 80.0, "rss_mib": 290.0},
                "second": {"seconds": 96.0, "cpu_seconds": 64.0, "rss_mib": 288.0},
            },
        },
        "ratios_second_pass": {"monitor_time": 1.0, "monitor_cpu": 1.0},  # an older run's
    }


def test_the_goal_is_compared_with_the_cronjob_pass_and_the_warm_ratio_is_shown() -> None:
    results = _results()
    markdown = bench.render(results)
    # CronJob: 30/2 = 15× wall (over the 10× goal), 16/2 = 8× CPU; second 6× and 5×.
    assert (
        "50-model CronJob pass / 1-model CronJob pass: first pass **15.0×** wall, **8.0×** "
        "CPU; second pass **6.0×** wall, **5.0×** CPU. Goal ≤ 10.0× (compared with the "
        "CronJob's first pass): **not met** in wall time, **met** in CPU, with the process "
        "start counted"
    ) in markdown
    # Warm, beside it and in its own section: 8/0.5 = 16×, 10/0.4 = 25×; 20× and 20×.
    warm = "first pass **16.0×** wall, **25.0×** CPU; second pass **20.0×** wall, **20.0×** CPU"
    assert (
        f"on the passes' own work, the warm in-process ratio (below): {warm}, against the same "
        "goal **not met** in wall time, **not met** in CPU."
    ) in markdown
    assert f"50-model pass / 1-model pass in a warm process: {warm}" in markdown
    assert "the 50-model second pass takes 60% less CPU than the first" in markdown
    assert results["ratios"]["monitor_time"] == 15.0
    ratios = results["monitor_ratios"]
    assert ratios["cronjob"]["second"] == {"wall": 6.0, "cpu": 5.0}
    assert ratios["in_process"]["first"] == {"wall": 16.0, "cpu": 25.0}
    assert "ratios_second_pass" not in results


def test_one_fifty_model_pass_is_set_against_fifty_one_model_cronjobs() -> None:
    results = _results()
    markdown = bench.render(results)
    # 30 s of 100 and 16 CPU s of 80; second passes 12 of 96 and 8 of 64.
    assert "| first | 100.0 | 80.0 | 290 | 30.00 | 16.00 | 0.30× | 0.20× |" in markdown
    assert "| second | 96.0 | 64.0 | 288 | 12.00 | 8.00 | 0.12× | 0.12× |" in markdown
    assert (
        "One 50-model CronJob pass takes 30% of the wall time and 20% of the CPU of 50 "
        "one-model CronJob passes (first passes; second passes 12% and 12%)."
    ) in markdown
    versus = results["monitor_ratios"]["cronjob_50_models_over_50_one_model_cronjobs"]
    assert versus["first"] == {"wall": 0.3, "cpu": 0.2}


def test_the_warm_table_keeps_every_row_and_the_cronjob_table_its_own() -> None:
    markdown = bench.render(_results())
    assert "| 50 (threads) | 9.00 | 11.00 | 250 | – |" in markdown
    assert "| 1 | 0.50 | 0.40 | 250 | – |" in markdown  # one model: no worker
    assert "| 50 | 30.00 | 16.00 | 250 |" in markdown
    cronjob, warm = markdown.index("### As the CronJob"), markdown.index("### In a warm")
    assert cronjob < markdown.index("| 50 | 30.00 |") < warm < markdown.index("| 50 | 8.00 |")


def _measured(results: dict[str, Any], commits: dict[str, str]) -> dict[str, Any]:
    results["measured"] = {
        key: {"rows": 1000, "machine": "x86_64", "date": "2026-12-03", "commit": commit}
        for key, commit in commits.items()
    }
    return results


def test_each_section_names_its_commit_and_one_commit_is_said_once() -> None:
    commits = {"history": "abc1234", "source": "abc1234", "monitor": "abc1234"}
    markdown = bench.render(_measured(_results(), commits))
    assert markdown.count("Measured 2026-12-03 on commit `abc1234`, x86_64 (`--rows 1000`).") == 3
    assert "Every section measured on one commit, `abc1234`." in markdown
    mixed = {**commits, "source": "def5678 + uncommitted changes"}
    markdown = bench.render(_measured(_results(), mixed))
    assert "on commit `def5678 + uncommitted changes`, x86_64" in markdown
    assert "not all measured on one commit" in markdown
    assert "Every section measured on one commit" not in markdown
    old = _results()  # figures from before commits were recorded
    old["measured"] = {"history": {"rows": 1000, "date": "2026-12-01", "machine": "x86_64"}}
    assert "on a commit not recorded, x86_64" in bench.render(old)


def test_each_goal_line_says_met_or_not_met() -> None:
    results = _results()
    results["history"]["20"] = {**results["history"]["20"], "train": _step(1.0, 500.0)}
    fast = {k: _step(1.0, 300.0) for k in ("resolve", "ingest", "read_source")}
    slow = {**fast, "resolve": _step(3.0, 300.0)}  # (3 + 1) / (1 + 1) = 2×
    results["source"] = {"5": fast, "50": slow}
    markdown = bench.render(results)
    assert "with 20 windows / with 1: **1.25×** (goal ≤ 1.2×: **not met**)" in markdown
    assert "at 50 windows / at 5: **2.00×** (goal ≤ 1.5×: **not met**); resolve alone: 3.00×" in (
        markdown
    )
    results = _results()
    markdown = bench.render(results)
    assert "**1.00×** (goal ≤ 1.2×: **met**)" in markdown
    assert "**1.00×** (goal ≤ 1.5×: **met**); resolve alone: 1.00×" in markdown


def test_the_commit_is_marked_when_the_tree_differs_from_it(tmp_path: Any) -> None:
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "scale.md").write_text("old\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "--short", "HEAD")
    inner = tmp_path / "benchmarks"
    assert bench.code_version(inner) == head
    (tmp_path / "benchmarks" / "results" / "scale.md").write_text("new figures\n")
    assert bench.code_version(inner) == head  # the benchmark's own output is not code
    (tmp_path / "code.py").write_text("x = 2\n")
    assert bench.code_version(inner) == f"{head} + uncommitted changes"
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "new.py").write_text("y = 1\n")
    assert bench.code_version(inner) == f"{head} + uncommitted changes"
    assert bench.code_version(tmp_path.parent) == "unknown"


def test_resolve_and_ingest_state_the_spread_of_their_rounds() -> None:
    results = _results()
    for size, rounds in (("5", [0.04, 0.03, 0.05]), ("50", [0.06, 0.045, 0.05])):
        resolve = {**_step(min(rounds), 300.0), "rounds_seconds": rounds}
        ingest = {**_step(10.0, 900.0), "rounds_seconds": [10.0, 12.5]}
        results["source"][size] = {**results["source"][size], "resolve": resolve, "ingest": ingest}
    markdown = bench.render(results)
    assert "resolve alone: 1.50×" in markdown
    assert (
        "resolve is the fastest of 3 rounds per size, the sizes side by side "
        "(5 windows 0.030–0.050 s; 50 windows 0.045–0.060 s)." in markdown
    )
    assert (
        "ingest is the fastest of 2 rounds per size, the sizes side by side "
        "(5 windows 10.000–12.500 s; 50 windows 10.000–12.500 s)." in markdown
    )
