"""The retrieval client side: `fetch-piece` (download a piece from a content provider, piece CID
checked while it arrives) and `extract` (files rebuilt from CAR files and a root CID). No server
code lives here; it imports only `content/`."""
