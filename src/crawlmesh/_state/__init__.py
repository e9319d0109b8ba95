"""A crawl's state: the backend's roles (request store, dedupe store, journal,
shared limits, lifecycle), in memory (the default), --jobdir (SQLite) and
--backend redis://."""
