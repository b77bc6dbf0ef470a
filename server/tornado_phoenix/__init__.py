"""tornado-phoenix: a Phoenix Channels server on Tornado that speaks Phoenix 1.7's wire protocol exactly."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tornado-phoenix")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
