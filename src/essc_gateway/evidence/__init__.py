"""The verifiable evidence log."""
