"""The agent's MQTT topics: `vigil/v1/{county}/{site}/{device}/{leaf}`.

A copy of the contract's shape on the agent side (the agent never imports the controller).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "vigil/v1"


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    county: str
    site: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{PREFIX}/{self.county}/{self.site}/{self.device_id}"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def birth(self) -> str:
        return f"{self.base}/birth"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def cmd_ack(self) -> str:
        return f"{self.base}/cmd_ack"

    @property
    def commands(self) -> str:
        """The subscription for every command verb addressed to this device."""
        return f"{self.base}/cmd/#"

    def verb_of(self, topic: str) -> str | None:
        """The verb of a command topic for this device, None for any other topic."""
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix):
            return None
        verb = topic[len(prefix) :]
        return verb if verb and "/" not in verb else None
