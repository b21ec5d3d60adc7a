"""State sources: build the engine's ClusterState from a snapshot file or a live cluster."""
