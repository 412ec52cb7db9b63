"""Pipeline wiring: the one place where retries, caching and resources are set."""

from retrain_pipelines.retrain_pipeline import (
    PIPELINE_NAME,
    STEP_POLICY,
    build_pipeline,
    compile_pipeline,
)

__all__ = ["PIPELINE_NAME", "STEP_POLICY", "build_pipeline", "compile_pipeline"]
