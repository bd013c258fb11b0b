"""The package version (a module of its own: low modules read it without importing the package)."""

__version__ = "0.1.0"
