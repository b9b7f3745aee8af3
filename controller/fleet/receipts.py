"""Loss receipts: the controller tells an agent which eviction reports it has stored.

An agent keeps an unsent eviction unreported (and resends it) until it reads its fact id in a
`cmd/loss_recorded` command (edge_agent/health/evictions.py). The fleet's history writer
calls `LossReceipts.send` after each batch of losses is in the catalog, new or already there
(a resend of a stored fact must be confirmed again, or the agent would resend forever).
Reports without a fact id (older agents) need no receipt. Receipts are QoS 1 but may still be
lost (controller killed right after the write, broker restarted): the agent's resend then
yields another receipt, and the catalog stores the fact once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import paho.mqtt.client as mqtt

from controller.catalog.history_models import LossEventRow
from controller.fleet.topics import command_topic
from protos.vigil.v1 import fleet_pb2

log = logging.getLogger(__name__)

VERB = "loss_recorded"
# Fact ids are segment ids (≤ 128 characters): 100 keep a receipt well under any broker limit.
FACTS_PER_RECEIPT = 100


def receipts(losses: Iterable[LossEventRow]) -> dict[str, list[str]]:
    """Device id -> the fact ids to confirm to it (each once, in report order)."""
    out: dict[str, list[str]] = {}
    for loss in losses:
        if loss.fact_id:
            facts = out.setdefault(loss.device_id, [])
            if loss.fact_id not in facts:
                facts.append(loss.fact_id)
    return out


def receipt_payloads(fact_ids: Sequence[str]) -> list[bytes]:
    return [
        fleet_pb2.Command(
            verb=VERB, fact_ids=fact_ids[i : i + FACTS_PER_RECEIPT]
        ).SerializeToString()
        for i in range(0, len(fact_ids), FACTS_PER_RECEIPT)
    ]


class LossReceipts:
    """Publishes receipts with the fleet's client; `where` gives a device's (county, site)."""

    def __init__(
        self,
        client: Callable[[], mqtt.Client | None],
        where: Callable[[str], tuple[str, str] | None],
    ) -> None:
        self._client = client
        self._where = where
        self.sent = 0

    def send(self, losses: Sequence[LossEventRow]) -> None:
        client = self._client()
        if client is None:
            return
        for device_id, facts in receipts(losses).items():
            where = self._where(device_id)
            if where is None:
                log.warning("fleet: no site known for %s: loss receipt not sent", device_id)
                continue
            topic = command_topic(where[0], where[1], device_id, VERB)
            for payload in receipt_payloads(facts):
                client.publish(topic, payload, qos=1)
                self.sent += 1
