"""The content provider: serves prepared pieces over HTTP to storage providers (Boost, Curio and
other FRC-0066 retrieval clients), piece metadata and the `/ipfs/` gateway. The matching client
side (`fetch-piece`, `extract`) lives in `retrieve/`."""
