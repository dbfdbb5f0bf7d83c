"""The Dask side: HetznerCluster, its scheduler and worker nodes, the async Cluster API, and
what they stand on (TLS, SSH, local state, inventory by label, environment images)."""
