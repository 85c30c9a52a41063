"""Dispatches: agent processes the kernel starts, supervises to a real end, and accounts tokens for.

The public surface is `kernel.dispatch.api`; this package file stays empty so that importing one
submodule (the supervisor, the agent definitions in `agents/`) costs only that submodule.
"""
