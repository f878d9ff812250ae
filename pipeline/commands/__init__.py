"""CLI command modules; each exposes COMMANDS = [(name, function), ...]."""
