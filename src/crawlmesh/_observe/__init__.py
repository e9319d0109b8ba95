"""Observation: statistics and their rendering, live status and progress,
Prometheus metrics and the request-path counters they read."""
