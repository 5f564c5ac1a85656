"""SEA plugin: Specialized Embedding Approximation for urban sound."""
