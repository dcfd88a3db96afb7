"""The version of mlimpute (one place: the package, the files it writes and the CLI read it)."""

__version__ = "0.1.0"
