"""The HTTP API (SPEC "Entry point", DESIGN §4)."""
