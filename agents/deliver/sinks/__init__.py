"""Delivery destinations behind one small interface."""

from agents.deliver.sinks._base import Sink, SinkError
from agents.deliver.sinks.filesystem import FilesystemSink

__all__ = ["FilesystemSink", "Sink", "SinkError"]
