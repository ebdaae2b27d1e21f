"""notifierd: a notification daemon with a durable queue and worker processes."""

__version__ = "0.1.0"
