"""Leadership on /metrics, scraped and parsed with the Prometheus text parser."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from controller.clock import ManualClock
from controller.leader import SoleLeader
from controller.leader.election import Election
from controller.leader.metrics import LeaderCollector


def scrape(collector: LeaderCollector) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_sole_leader_leads_in_epoch_one() -> None:
    assert scrape(LeaderCollector(SoleLeader())) == {"vigil_leader": 1.0, "vigil_leader_epoch": 1.0}


def test_an_election_that_never_won_follows_and_counts_its_bids() -> None:
    engine = create_engine("sqlite://")  # never connected: no bid is made here
    election = Election(engine, "r1", "10.0.0.1:7443", ManualClock())
    election.counters.update(bids=5, failed=2, terms=1)
    samples = scrape(LeaderCollector(election))
    assert samples["vigil_leader"] == 0.0 and samples["vigil_leader_epoch"] == 0.0
    assert samples["vigil_leader_bids_total|kind=bids"] == 5.0
    assert samples["vigil_leader_bids_total|kind=failed"] == 2.0
    assert samples["vigil_leader_bids_total|kind=terms"] == 1.0
    engine.dispose()
