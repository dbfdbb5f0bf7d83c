"""Cluster lifecycle on the Hetzner Cloud: TLS, SSH and local state."""
