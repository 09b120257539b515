"""Delivery destinations behind one small interface."""

from agents.deliver.sinks._base import PATH_TAKEN, Located, Sink, SinkError
from agents.deliver.sinks.filesystem import FilesystemSink
from agents.deliver.sinks.http import HttpSink, HttpSinkConfig
from agents.deliver.sinks.retry import write_with_retry
from agents.deliver.sinks.s3 import S3Config, S3Sink

__all__ = [
    "PATH_TAKEN",
    "FilesystemSink",
    "HttpSink",
    "HttpSinkConfig",
    "Located",
    "S3Config",
    "S3Sink",
    "Sink",
    "SinkError",
    "write_with_retry",
]
