"""The dataset worker: `runtime/` claims and runs jobs; `jobs/` holds the scan, pack and daggen
bodies and the code they share. See docs/architecture.md#the-worker-package."""
