"""The scan job: list the source, record files and ranges, fill pack jobs."""
