"""The daemon: configuration, the composition root that builds a running node from the
layers (``daemon.py``), and the command line (``cli.py``: ``timnode``, ``timnode chat``,
``timnode store``, ``timnode admin`` ...). See ``docs/architecture.md``."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
