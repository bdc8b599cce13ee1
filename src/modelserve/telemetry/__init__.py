"""Telemetry: metrics (Prometheus), system metrics and logging setup."""
