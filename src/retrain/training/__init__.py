"""retrain.training."""
