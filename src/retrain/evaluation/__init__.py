"""retrain.evaluation."""
