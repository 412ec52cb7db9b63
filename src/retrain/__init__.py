"""retrain: keep production models good as the world drifts.

The library holds all logic and imports neither kfp nor a Kubernetes client; the KFP
components (`retrain_components`) and the pipeline (`retrain_pipelines`) are thin adapters.
"""

from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["__version__"]
