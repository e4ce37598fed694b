"""Content addressing: CIDs, dag-pb/UnixFS nodes, CARv1, commP. Imports nothing else of the project."""
