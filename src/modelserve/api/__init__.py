"""HTTP planes: inference, management and metrics, each a small Starlette app."""
