"""Topic pub/sub behind the `PubSub` interface; `LocalPubSub` serves one process."""

from .base import PubSub, Subscriber
from .local import LocalPubSub

__all__ = ["PubSub", "Subscriber", "LocalPubSub"]
