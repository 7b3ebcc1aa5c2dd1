"""The ``gdscope`` command: parse arguments into typed configs, call the jobs, format results."""

from gdscope.cli.main import main

__all__ = ["main"]
