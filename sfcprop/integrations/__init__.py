"""Integrations with other tools (optional extras, imported only where used)."""
