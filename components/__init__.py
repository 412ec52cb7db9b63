"""KFP v2 components: thin adapters over the retrain library, one file per step."""
