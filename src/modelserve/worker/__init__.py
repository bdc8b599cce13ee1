"""The worker process that hosts one model version's handler."""
