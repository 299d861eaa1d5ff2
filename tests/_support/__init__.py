"""Helpers shared by every test area (importable as ``_support``: pytest puts tests/ on sys.path)."""
