"""SEA pipelines (imported only when a run starts)."""
