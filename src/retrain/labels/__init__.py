"""retrain.labels."""
