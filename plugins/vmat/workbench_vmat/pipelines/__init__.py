"""Pipelines of the VMAT plugin: generators ``run(config, ctx)`` yielding ``Progress``."""
