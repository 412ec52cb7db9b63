"""retrain.data."""
