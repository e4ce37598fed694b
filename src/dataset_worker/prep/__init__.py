"""prep layer."""
