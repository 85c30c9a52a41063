"""The embedded orchestration kernel: the durable record of runs, dispatches and events of a project."""

__version__ = "0.1.0"
