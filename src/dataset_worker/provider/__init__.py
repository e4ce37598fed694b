"""The content provider: serves prepared pieces over HTTP to storage providers (Boost and other
FRC-0066 retrieval clients), and the matching download client behind `fetch-piece`."""
