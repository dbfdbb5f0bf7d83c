"""scherbelberg: Dask clusters on the Hetzner Cloud, and a local Hetzner to try them on."""

__version__ = "0.1.0.dev0"
