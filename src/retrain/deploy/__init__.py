"""retrain.deploy."""
