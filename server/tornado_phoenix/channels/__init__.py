"""Channels: one small class per topic pattern (like Phoenix.Channel), the router, and the per-socket runtime."""

from .base import Channel, NoReply, Reply, Stop, error, ok
from .router import Router

__all__ = ["Channel", "NoReply", "Reply", "Stop", "error", "ok", "Router"]
