"""Independent read-back of prepared pieces: CAR framing, block hashes, piece CIDs, files."""
