"""Drift detection: statistical methods registered by name, reference profiles, reports."""
