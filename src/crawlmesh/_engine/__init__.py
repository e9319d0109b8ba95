"""The engine: its stages, wired in one nursery."""
