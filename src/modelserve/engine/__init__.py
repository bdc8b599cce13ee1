"""The engine: registry, model versions, batching, worker pools and the dispatcher."""
