"""Dask and nothing scientific: clusters, checkpointed flows, task pools, plugins, event logs."""
