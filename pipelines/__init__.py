"""Pipeline wiring: retries, caching and resources in one place."""
