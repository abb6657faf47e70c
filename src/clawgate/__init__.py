"""clawgate: a local, always-on gateway daemon for AI agents."""

# The one place the version is written; the build reads it from here (pyproject.toml).
# A literal rather than importlib.metadata: that import costs every process ~2 MiB.
__version__ = "0.1.0"

__all__ = ["__version__"]
