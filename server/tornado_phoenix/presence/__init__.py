"""Phoenix.Presence: who is on a topic, diffs broadcast as `presence_diff`, state pushed as `presence_state`."""

from .base import Presence
from .local import LocalPresence
from .tracker import PresenceTracker

__all__ = ["Presence", "LocalPresence", "PresenceTracker"]
