"""dataset-worker: prepare datasets for Filecoin storage deals, Singularity v1.0 compatible."""

__version__ = "0.1.0"
