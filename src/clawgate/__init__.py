"""clawgate: a local, always-on gateway daemon for AI agents."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clawgate")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
