"""Host core: plugin discovery, run store, job engine, profiling, export. No Qt."""
