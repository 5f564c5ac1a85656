"""Headless entry. Importing this package loads neither torch nor Qt."""
