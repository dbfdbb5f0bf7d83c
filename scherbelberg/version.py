"""The package version (a module of its own: anything may import it without the package root)."""

__version__ = "0.1.0.dev0"
