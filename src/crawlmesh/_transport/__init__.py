"""Transports: how a request reaches its target (one per node kind)."""
