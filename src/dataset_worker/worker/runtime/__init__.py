"""The job-queue runtime: claiming, worker threads, the process, heartbeats, the reaper, the pause
monitor and ownership-checked outcome writes. It knows job bodies only as handlers."""
