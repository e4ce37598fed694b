"""`dataset-worker extract`: files and folders rebuilt from CAR files (pieces) and a root CID."""
