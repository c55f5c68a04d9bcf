"""recagent: an LLM agent that recommends by calling classical recommenders as tools."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recagent")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
