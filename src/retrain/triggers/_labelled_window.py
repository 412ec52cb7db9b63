"""The newest labelled window: where the monitor judges the champion on labels.

Labels come late (chargebacks days later, house sales weeks later), so the window a monitor
checks, the newest, has few labels or none. As the backtest's drift policy does, the monitor
measures the drift engine's labelled signal on the newest window, at or before the checked
one, whose labels known as of its clock reach ``labels.min_coverage`` (the label join's
coverage, with its leakage check), against the metric the champion's profile recorded at
training (`retrain.drift.labelled_window_check`). The search goes newest first, stops at the
first window that passes and looks at most ``triggers.labelled_lookback`` windows back, or
one past ``labels.delay`` if that is longer (`retrain.config.labelled_search_depth`; each
older one costs a read of its ids and of their labels, and the one found a read of its rows;
one that cannot be read is left out and named); when none passes, the checked window is
measured with the labels it has for the report, and the report says why, but that
measurement is not a performance signal: below the coverage, the labels known may be a
biased early subset, and the backtest makes no check there either.

A window whose labels the label join refuses (more than 1% dated before their event,
infinite regression labels, a label source it cannot read: `LabelsRefused`; a label source
with no file yet is none of these, only no labels known) is not a window
whose labels have not arrived: the search passes over it, as the backtest's does, and the
report names it with the join's reason (``refused``), the checked window first. A
measurement on an older window is named as one (``measured_on``), and a checked window whose
labels are refused is not measured at all.

Only windows after the newest one the champion was trained on (its card's ``window``, or a
later window whose provisional labels it trained on) are searched: the champion trained on
rows of that window and may have on any before it, so its metric there would flatter it (the
backtest likewise judges the champion only on windows newer than the newest it trained on).
A champion trained on the checked window itself is not judged at all until a newer window is
labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from retrain._card import ModelCard
from retrain.config import Config
from retrain.data.windows import as_of_text, window_sort_key
from retrain.drift import (
    PROFILE_FILE,
    PerformanceCheck,
    ReferenceProfile,
    drop_fired,
    labelled_window_check,
)
from retrain.errors import RetrainError
from retrain.registry import MODEL_CARD_FILE
from retrain.triggers._known_labels import (
    LabelSourceMissing,
    LabelsRefused,
    known_labels,
    window_rows,
)
from retrain.triggers._scores import ChampionScorer
from retrain.triggers._state import Signal

__all__ = [
    "LABELLED_SIGNAL",
    "LABELLED_SLOT",
    "LabelledSearch",
    "LabelledWindow",
    "check_fields",
    "drift_verdict",
    "judged",
    "labelled_performance",
    "newest_labelled_window",
    "performance_block",
    "performance_signal",
    "performance_text",
]

#: The drift engine's signal for the labelled metric drop.
LABELLED_SIGNAL = "performance_drop"
#: The scorer's cache entry for the labelled window (the checked window keeps the default one).
LABELLED_SLOT = "labelled"


@dataclass(frozen=True)
class LabelledWindow:
    """A window whose labels known as of the monitor's clock reach ``labels.min_coverage``."""

    window: str
    rows: pd.DataFrame
    labels: pd.Series  # aligned with `rows`; NaN where not known yet

    @property
    def coverage(self) -> float:
        return float(self.labels.notna().mean())


class LabelledSearch(NamedTuple):
    """What the search for the newest labelled window found (None: no window qualified), how
    many windows it looked at, and those it left out: `unreadable` ("window (error)"), and
    `refused`, window -> the label join's reason, newest first."""

    found: LabelledWindow | None
    looked: int
    unreadable: list[str]
    refused: dict[str, str]


def newest_labelled_window(
    cfg: Config,
    ids: Sequence[str],
    checked: str,
    checked_labelled: tuple[pd.DataFrame, pd.Series | None],
    as_of: Any,
    lookback: int,
    trained_on: str | None = None,
    *,
    checked_refused: str | None = None,
) -> LabelledSearch:
    """The newest of the `lookback` windows up to `checked` (`ids`: the source's windows in
    time order), and after `trained_on` (the champion's training window, None: no bound),
    whose labels known at `as_of` reach ``labels.min_coverage``. `checked_labelled` holds
    the checked window's rows and its labels, already read (None: none known, or refused:
    `checked_refused` then says why). Windows whose labels are refused, or that cannot be
    read, are passed over and named (not fatal).
    """
    key = window_sort_key(cfg.data, checked)
    older = [w for w in ids if window_sort_key(cfg.data, w) < key]
    older = older[max(0, len(older) - (lookback - 1)) :]  # the checked window counts as one
    if trained_on is not None:
        floor = window_sort_key(cfg.data, trained_on)
        if key <= floor:
            return LabelledSearch(None, 0, [], {})
        older = [w for w in older if window_sort_key(cfg.data, w) > floor]
    looked, unreadable, refused = 0, [], {}
    for window in [checked, *reversed(older)]:  # newest first
        looked += 1
        if window == checked:
            rows, labels = checked_labelled
            if checked_refused is not None:
                refused[window] = checked_refused
                continue
        else:
            try:
                # The coverage needs the ids only; the window found is then read whole.
                rows = window_rows(cfg, window, columns=[cfg.data.id_column])[1]
                labels = known_labels(cfg, rows, as_of) if not rows.empty else None
                if labels is not None and _covered(cfg, labels):
                    rows = window_rows(cfg, window)[1]
                    labels = known_labels(cfg, rows, as_of)
            except LabelsRefused as err:  # not "no labels yet": named with the join's reason
                refused[window] = str(err)
                continue
            except LabelSourceMissing:  # no label file yet: no older window is labelled either
                break
            except Exception as err:  # any failure leaves the window out, named in the report
                unreadable.append(f"{window} ({type(err).__name__}: {err})")
                continue
        if labels is not None and _covered(cfg, labels):
            return LabelledSearch(LabelledWindow(window, rows, labels), looked, unreadable, refused)
    return LabelledSearch(None, looked, unreadable, refused)


def _covered(cfg: Config, labels: pd.Series) -> bool:
    return float(labels.notna().mean()) >= cfg.labels.min_coverage


def check_fields(check: PerformanceCheck) -> dict[str, Any]:
    """A labelled check as the monitor's performance block and report carry it."""
    return {
        "metric": check.metric,
        "reference": check.reference,
        "current": check.current,
        "drop": check.drop,
        "drop_lower": check.drop_lower,
        "drop_upper": check.drop_upper,
        "confidence": check.confidence,
        "rows": check.n,
    }


def labelled_performance(
    cfg: Config,
    scorer: ChampionScorer,
    champion: str,
    found: LabelledWindow,
    checked: str,
    on_checked: dict[str, Any] | None,
) -> dict[str, Any]:
    """The monitor's performance block for the labelled window `found`: on the checked window
    the engine's own measurement `on_checked` (the same definition, already computed), on an
    older one the champion's scores of it (cached in `LABELLED_SLOT`) against its profile.

    Raises:
        ValidationError: the champion's profile is unreadable.
    """
    where = {
        "window": found.window,
        "measured_on": "checked window" if found.window == checked else "newest labelled window",
        "coverage": found.coverage,
        "labelled_rows": int(found.labels.notna().sum()),
    }
    if found.window == checked:
        measured = on_checked
    else:
        try:
            scores = scorer.scores(champion, found.rows, slot=LABELLED_SLOT)
        except RetrainError as err:
            return where | {"note": f"the champion could not score window {found.window} ({err})"}
        profile = ReferenceProfile.from_json(scorer.read_file(champion, PROFILE_FILE))
        check = labelled_window_check(profile, found.labels, scores, cfg)
        measured = check_fields(check) if check is not None else None
    if measured is None:
        return where | {"note": "too few labelled rows, or no reference metric in the profile"}
    return where | measured


def _search_note(
    cfg: Config,
    checked: str,
    looked: int,
    as_of: Any,
    trained_on: str | None,
    refused: bool = False,
) -> str:
    """Why the checked window was measured with the labels it has (`refused`: why it was not
    measured at all)."""
    when = f"as of {as_of_text(as_of)}" if as_of is not None else "in the label source"
    after = f" after {trained_on} (the champion's training window)" if trained_on else ""
    what = (
        "the checked window's labels were refused, so it was not measured either"
        if refused
        else "measured on the checked window with the labels it has"
    )
    return (
        f"no window of the {looked}{after} up to {checked} has labels {when} reaching "
        f"labels.min_coverage {cfg.labels.min_coverage:.0%}: {what}"
    )


def _champion_card(scorer: ChampionScorer, champion: str) -> ModelCard | None:
    """The champion's model card, or None when it cannot be read."""
    try:
        return ModelCard.from_json(scorer.read_file(champion, MODEL_CARD_FILE).decode())
    except (RetrainError, ValueError, TypeError, KeyError, AttributeError):
        return None


def champion_launch_window(scorer: ChampionScorer, champion: str) -> str | None:
    """The window the champion's training run was launched for (its card's ``window``): the
    snapshot of that launch, which the catch-up rule follows (None: not recorded)."""
    card = _champion_card(scorer, champion)
    return None if card is None or card.window is None else str(card.window)


def serving_launches(scorer: ChampionScorer, champion: str | None) -> dict[str, str | None]:
    """The launches behind the serving champion (``serving_from``) and behind a canary still
    in analysis (``canary_from``), from their cards' ``window``: the drift back-off learns
    from them what became of its drift launches (`retrain.triggers._backoff`)."""
    if champion is None:
        return {"serving_from": None, "canary_from": None}
    canary = scorer.registry.get_alias("canary").version
    return {
        "serving_from": champion_launch_window(scorer, champion),
        "canary_from": None
        if canary is None or canary == champion
        else champion_launch_window(scorer, canary),
    }


def champion_window(cfg: Config, scorer: ChampionScorer, champion: str) -> str | None:
    """The newest window the champion trained on rows of, from its card: its ``window``, or a
    later one whose provisional labels it used (None: none recorded that is a window of this
    source's cadence, e.g. a model registered by hand; an entry that is not is skipped)."""
    card = _champion_card(scorer, champion)
    if card is None:
        return None
    try:
        provisional = (card.provenance.get("provisional") or {}).get("windows") or []
    except (TypeError, AttributeError):
        return None
    named = [card.window] + [
        w.get("window") for w in provisional if isinstance(w, dict) and w.get("labelled")
    ]
    trained = []
    for window in named:
        try:
            trained.append((window_sort_key(cfg.data, str(window)), str(window)))
        except (RetrainError, ValueError, TypeError):
            continue  # not a window of this source: no bound from it
    return max(trained)[1] if trained else None


def performance_block(
    cfg: Config,
    scorer: ChampionScorer,
    champion: str | None,
    on_checked: dict[str, Any] | None,
    checked: tuple[pd.DataFrame, pd.Series | None],
    window: str,
    ids: Sequence[str],
    *,
    as_of: Any,
    lookback: int,
    refused: str | None = None,
    missing: str | None = None,
) -> dict[str, Any]:
    """The monitor's performance block for a check of `window` (its rows and labels as of
    `as_of` in `checked`, None: none known, or refused by the label join, `refused` then
    saying why, or no label file exists yet, `missing` then naming the source; `on_checked`:
    the engine's measurement there, or a note why there is none):
    the champion on the newest labelled window, or, when none of the `lookback` newest is
    labelled, the checked window with the labels it has (saying so in ``search``). Windows
    whose labels are refused are passed over and named in ``refused`` (window -> reason), the
    checked one too; older ones that cannot be read, in ``unreadable``.

    Raises:
        ValidationError: the champion's profile cannot be read.
    """
    if champion is None:
        return on_checked or {"note": "no champion yet"}
    own = {"refused": {window: refused}} if refused is not None else {}
    trained_on = champion_window(cfg, scorer, champion)
    if trained_on is not None and window_sort_key(cfg.data, window) <= window_sort_key(
        cfg.data, trained_on
    ):
        return {
            "note": f"not measured: the champion was trained on {trained_on}, and no newer "
            "window is labelled yet (its metric there would flatter it)"
        } | own
    search = newest_labelled_window(
        cfg, ids, window, checked, as_of, lookback, trained_on, checked_refused=refused
    )
    skipped: dict[str, Any] = {"unreadable": search.unreadable} if search.unreadable else {}
    if search.refused:
        skipped["refused"] = search.refused
    if search.found is not None:
        measured = labelled_performance(cfg, scorer, champion, search.found, window, on_checked)
        # A newer labelled window than the champion's own: the catch-up rule's evidence.
        launched = {"champion_from": champion_launch_window(scorer, champion)}
        return measured | launched | skipped
    if on_checked is not None:
        fallback = on_checked
    elif refused is not None:
        fallback = {"note": "not measured: the label join refused the labels"}
    elif missing is not None:
        fallback = {"note": f"no labels yet: {missing}"}
    else:
        fallback = {"note": "no labels for this window yet"}
    labels = checked[1]
    where: dict[str, Any] = {"window": window, "measured_on": "checked window"}
    if refused is None:  # refused labels have no coverage: the join gave none
        where["coverage"] = 0.0 if labels is None else float(labels.notna().mean())
    where["search"] = _search_note(
        cfg, window, search.looked, as_of, trained_on, refused=refused is not None
    )
    return fallback | where | skipped


def judged(performance: dict[str, Any], cfg: Config) -> bool:
    """A measured drop on a window whose labels reach ``labels.min_coverage``: evidence for the
    performance rule. Below it (the fallback on the checked window) the labels known may be
    a biased early subset, so the measurement is reported but launches nothing."""
    coverage = performance.get("coverage")
    return (
        "drop" in performance
        and coverage is not None
        and float(coverage) >= cfg.labels.min_coverage
    )


def performance_signal(performance: dict[str, Any], checked: str) -> Signal:
    """The performance signal of a judged measurement. Its snapshot is the window measured, so
    a re-check of the same labelled window is a duplicate of its launch, not a new one."""
    window = performance.get("window", checked)
    return Signal(
        "performance",
        window,
        value=float(performance["drop"]),
        details={
            "metric": performance["metric"],
            "drop_lower": performance.get("drop_lower"),
            "reference": performance.get("reference"),
            "current": performance.get("current"),
            "window": window,
            "champion_from": performance.get("champion_from"),
        },
    )


def drift_verdict(
    fired: Sequence[str], performance: dict[str, Any], cfg: Config
) -> tuple[bool, list[str]]:
    """The checked window's drift verdict as the backtest's drift policy forms it, and the
    signals it counts: the engine's signals on the checked window, but its labelled one only
    where the labels reach ``labels.min_coverage`` (`judged`), so a few early labels cannot
    count toward the hysteresis; and the labelled signal of the window judged, when it fired.
    """
    counted = [name for name in fired if name != LABELLED_SIGNAL]
    if judged(performance, cfg) and drop_fired(
        str(performance["metric"]),
        performance.get("reference"),
        float(performance["drop"]),
        performance.get("drop_lower"),
        cfg.drift,
    ):
        counted.append(LABELLED_SIGNAL)
    return bool(counted), counted


def performance_text(perf: dict[str, Any]) -> str:
    """The performance block in words, for the monitor's Markdown report."""
    where = ""
    if "window" in perf:
        where = f" of window {perf['window']} ({perf.get('measured_on', 'checked window')}"
        if "coverage" in perf:
            where += f", labels cover {perf['coverage']:.0%}"
        where += ")"
    if "drop" not in perf:
        text = f"{perf.get('note', 'not measured')}{where}."
    else:
        interval = ""
        if perf.get("drop_lower") is not None and perf.get("drop_upper") is not None:
            level = f"{perf['confidence']:.0%} " if perf.get("confidence") else ""
            interval = f", {level}interval [{perf['drop_lower']:+.4f}, {perf['drop_upper']:+.4f}]"
        text = (
            f"{perf['metric']} {perf['current']:.4f} on {perf['rows']} labelled rows{where} "
            f"vs {perf['reference']:.4f} at training (drop {perf['drop']:.4f}{interval})."
        )
    if perf.get("search"):
        text += f" {perf['search'][0].upper()}{perf['search'][1:]}."
    if perf.get("refused"):
        named = "; ".join(f"{w} ({why})" for w, why in perf["refused"].items())
        text += f" Labels refused by the label join, left out of the search: {named}."
    if perf.get("unreadable"):
        text += f" Left out of the search, unreadable: {'; '.join(perf['unreadable'])}."
    return text
