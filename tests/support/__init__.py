"""Helpers shared by tests (importable as `support`: pytest puts tests/ on the path, pyproject.toml)."""
