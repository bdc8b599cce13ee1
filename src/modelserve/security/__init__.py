"""Who may call the server: token keys and the exposure policy (docs/security.md)."""
