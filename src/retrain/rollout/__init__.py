"""Progressive rollout: canary analysis as a pure state machine, promotion and rollback."""
