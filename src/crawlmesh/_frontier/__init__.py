"""The frontier: admission (filters, dedupe), the queue, the fingerprint set."""
