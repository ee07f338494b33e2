"""Backends: what a model can do for a session, behind one small protocol."""

from tokentui.engine.backends.base import Backend, BackendOutput, Capabilities

__all__ = ["Backend", "BackendOutput", "Capabilities"]
