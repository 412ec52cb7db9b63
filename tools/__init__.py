"""Development tools run by the Makefile and the tests; not part of the `retrain` package."""
