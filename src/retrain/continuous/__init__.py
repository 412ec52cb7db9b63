"""Continuous learning: incremental updates on each window, with replay of history."""
