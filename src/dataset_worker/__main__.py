"""`python -m dataset_worker` is the same as the `dataset-worker` command."""

from dataset_worker.cli import main

if __name__ == "__main__":
    main()
