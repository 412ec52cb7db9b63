"""Reports people look at: each step's HTML report and the model history page.

Pure functions from what the loop records to self-contained HTML with plots as inline SVG:

- `step_html`: one step's report (the KFP ``HTML`` artifact and ``runs/<run_id>/<step>.html``),
  drawn from the details the step records: reference vs current distributions of the drifted
  features (ingest), the gate's bootstrap intervals against its thresholds (evaluate), traffic
  and check values per analysis (rollout), coverage (label), the training mix (train), the
  serving split (deploy), and the step's Markdown text.
- `build_history` and `history_html`: the model history page (`retrain report`): the metric
  per window, drift, retrains, deploys and canaries on one page.

Every page carries its style inline and a Content-Security-Policy that forbids scripts and
fetches; every text is escaped, so a feature or category named ``<script>`` is shown as text.
No JavaScript is needed to read a page. This package reads nothing and writes nothing.
"""

from __future__ import annotations

from retrain.reports._drift import drift_section
from retrain.reports._history import Canary, ModelHistory, WindowRow, build_history, history_html
from retrain.reports._page import CSP
from retrain.reports._rollout import rollout_plots
from retrain.reports._steps import step_html

__all__ = [
    "CSP",
    "Canary",
    "ModelHistory",
    "WindowRow",
    "build_history",
    "drift_section",
    "history_html",
    "rollout_plots",
    "step_html",
]
