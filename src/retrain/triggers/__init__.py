"""Trigger policy: when to retrain (schedule, drift, performance, new data), and the monitor."""
