"""`controller.toml`: the controller's configuration, validated strictly on load.

Unknown keys are errors (a typo must not silently open a port or disable a limit). Any value
can be overridden by an environment variable, `VIGIL_SECTION__KEY=value` or a top-level
`VIGIL_KEY=value`, the same scheme as the agent (vigil_common/env_overrides.py); other `VIGIL_*`
names are ignored with one warning. Empty paths and URLs mean "the embedded default inside
data_dir", so a controller runs with nothing but `--data-dir`: SQLite and a local object store
in the data dir, gRPC with mutual TLS on 127.0.0.1:7443 using the PKI made by
`vigil-controller init`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controller.redact import redact_url
from vigil_common.env_overrides import apply_env_overrides, ignored_message

MiB = 1024 * 1024
# A leader steps down this long before its lease ends (controller/leader/lease.py).
CLUSTER_MARGIN_S = 1.0


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


def _wildcard(host: str) -> bool:
    return host.strip("[]") in ("", "0.0.0.0", "::")  # noqa: S104 - detecting it, not binding


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GrpcConfig(_Strict):
    listen: str = "127.0.0.1:7443"
    # Empty: <data_dir>/pki/{server.crt,server.key,ca.crt} from `vigil-controller init`.
    server_cert: str = ""
    server_key: str = ""
    ca_cert: str = ""
    # Worker threads for the blocking work of gRPC calls (uploads, catalog, scheduler); must
    # exceed ingest.max_concurrent_uploads so QueryOffset and the other services still get a
    # thread while every upload slot is busy. Open lease streams hold no thread (grpc.aio).
    max_workers: int = Field(default=256, ge=2, le=4096)
    # Open AgentControl lease streams (one per connected agent) beyond which new streams are
    # refused RESOURCE_EXHAUSTED; each costs memory only (docs/benchmarks.md: bench.agents).
    max_lease_streams: int = Field(default=20_000, ge=1, le=1_000_000)
    # Largest single gRPC message accepted (a chunk plus framing).
    max_message_bytes: int = Field(default=4 * MiB + 64 * 1024, ge=64 * 1024, le=64 * MiB)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        return _host_port(v)


class EnrollmentConfig(_Strict):
    # HOST:PORT of the enrollment listener (AgentControl.Enroll only, server-authenticated
    # TLS: devices have no certificate yet). Empty: no listener (devices get certificates
    # by hand with `issue-cert`).
    listen: str = ""
    # Validity of certificates signed at enrollment; agents renew after two thirds of it.
    cert_days: int = Field(default=90, ge=1, le=825)
    # Default lifetime of an enrollment token (vigil-provision may ask for less).
    token_ttl_s: float = Field(default=7 * 86400.0, ge=60.0, le=90 * 86400.0)
    # How often every replica re-reads the revocations from the database.
    revocation_refresh_s: float = Field(default=1.0, ge=0.1, le=60.0)
    # Enroll calls per peer address (token bucket: burst, then rate); a village's devices
    # behind one NAT share a bucket. Beyond it: RESOURCE_EXHAUSTED, and the agent backs off.
    peer_burst: int = Field(default=10, ge=1, le=10_000)
    peer_rate_per_s: float = Field(default=0.5, gt=0, le=1000.0)
    # Device accounts on an external broker (mqtt.mode = "external"): "none", the city
    # manages them; "dynsec", Mosquitto's dynamic security plugin: enrollment creates the
    # device's client with `broker_role`, retiring or replacing the device deletes it (the
    # controller's MQTT account needs the plugin's admin rights). The managed broker's
    # accounts are always the controller's.
    broker_accounts: Literal["none", "dynsec"] = "none"
    broker_role: str = Field(default="vigil-device", pattern=r"^[A-Za-z0-9_.-]{0,64}$")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        return _host_port(v) if v else ""


class IngestConfig(_Strict):
    max_segment_bytes: int = Field(default=256 * MiB, ge=1024, le=16 * 1024 * MiB)
    max_chunk_bytes: int = Field(default=4 * MiB, ge=1024, le=32 * MiB)
    max_concurrent_uploads: int = Field(default=16, ge=1, le=1024)
    max_duration_s: float = Field(default=3600.0, gt=0, le=86400.0)
    # A segment may start at most this far in the controller's future (clock skew).
    max_future_s: float = Field(default=86400.0, ge=0, le=30 * 86400.0)
    # Staged partial uploads untouched this long are deleted (abandoned by their agent).
    staging_ttl_s: float = Field(default=7 * 86400.0, ge=60.0)
    # A stream that sends nothing for this long is cancelled (frees its slot and thread).
    idle_timeout_s: float = Field(default=120.0, ge=1.0, le=3600.0)
    # Fair shares (controller/ingest/fairness.py): one device's concurrent uploads; free
    # slots kept for devices with none in flight (at most a quarter of the pool); silence
    # after which a stream is cancelled while the pool is short.
    max_uploads_per_device: int = Field(default=4, ge=1, le=1024)
    reserved_upload_slots: int = Field(default=2, ge=0, le=1024)
    stall_timeout_s: float = Field(default=15.0, ge=1.0, le=3600.0)
    # Staged partial uploads kept per device (bytes; 0 = 4 x max_segment_bytes, and count):
    # beyond them that device's oldest abandoned partials are discarded.
    max_staging_bytes_per_device: int = Field(default=0, ge=0, le=1024 * 1024 * MiB)
    max_staged_uploads_per_device: int = Field(default=32, ge=1, le=100_000)

    def staging_budget(self) -> int:
        return self.max_staging_bytes_per_device or 4 * self.max_segment_bytes

    def model_post_init(self, __context: Any) -> None:
        if self.staging_budget() < self.max_segment_bytes:
            raise ValueError(
                "ingest.max_staging_bytes_per_device must be at least max_segment_bytes "
                f"({self.max_staging_bytes_per_device} < {self.max_segment_bytes})"
            )


class MqttConfig(_Strict):
    # managed: the controller runs its own Mosquitto on 127.0.0.1:port (zero set-up);
    # external: use the broker at host:port as is (Mosquitto, EMQX); off: no fleet over MQTT.
    mode: Literal["managed", "external", "off"] = "managed"
    # Only for mode = "external".
    host: str = ""
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = ""
    password_file: str = ""
    ca_cert: str = ""
    # This controller's MQTT client id (and account when `username` is empty). Replicas on
    # one broker each need their own, e.g. "vigil-controller-a": a second connection with
    # the same id knocks the first off. Every vigil-controller-* account has the
    # controller's rights (docs/deployment.md).
    client_id: str = Field(
        default="vigil-controller", pattern=r"^vigil-controller(-[A-Za-z0-9_.-]{1,40})?$"
    )
    # Several replicas share this broker and the database: health is split between them with
    # an MQTT 5 shared subscription and the fleet view is shared through the database.
    # false: this controller alone receives everything (one controller per broker).
    # cluster.enabled implies true (and then client_id must name this replica).
    shared: bool = False

    def model_post_init(self, __context: Any) -> None:
        if self.mode == "external" and not self.host:
            raise ValueError("mqtt.mode 'external' needs mqtt.host")
        if self.mode == "managed" and self.host:
            raise ValueError("mqtt.host is set but mqtt.mode is 'managed': set mode = 'external'")


class RetentionConfig(_Strict):
    # How often `serve` sweeps expired cloud copies (objects and catalog rows together);
    # 0 disables the periodic sweep (run `vigil-controller retention-sweep` from cron instead).
    sweep_interval_s: float = Field(default=3600.0, ge=0.0, le=7 * 86400.0)


class KpiConfig(_Strict):
    # Targets the report's "connected vs target" counts against (Longnan's: 2,100 new village
    # HD cameras, 9,988 existing cameras, 5,000 handheld terminals; docs/kpi.md).
    target_village_hd: int = Field(default=2100, ge=0, le=10_000_000)
    target_existing: int = Field(default=9988, ge=0, le=10_000_000)
    target_handheld: int = Field(default=5000, ge=0, le=10_000_000)

    def targets(self) -> dict[str, int]:
        return {
            "village_hd": self.target_village_hd,
            "existing": self.target_existing,
            "handheld": self.target_handheld,
        }


class SchedulerConfig(_Strict):
    # Link tree (TOML/JSON, see scheduler/topology_file.py); empty: every device gets its own
    # default_link_bps uplink under one city root.
    topology_file: str = ""
    default_link_bps: int = Field(default=8_000_000, ge=8_000, le=10**13)
    root_bps: int = Field(default=10_000_000_000, ge=8_000, le=10**13)
    horizon_s: float = Field(default=10.0, ge=0.1, le=3600.0)
    hysteresis: float = Field(default=0.1, ge=0.0, lt=1.0)
    lease_grace_s: float = Field(default=5.0, ge=0.0, le=3600.0)
    replan_interval_s: float = Field(default=5.0, ge=0.1, le=3600.0)


class HttpConfig(_Strict):
    # The control-centre API, web console, /metrics and /play/ (false: gRPC and MQTT only).
    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client; from
    # anyone else the header is ignored. Login throttling and audit use that address.
    trusted_proxies: list[str] = Field(default_factory=list, max_length=64)
    # File holding the bearer token /metrics requires; empty: /metrics answers loopback only.
    metrics_token_file: str = ""
    # Failed logins allowed at once per client address, and per user id from clients that
    # never logged in as that user; then one per 30 s and one per 60 s (docs/security.md).
    login_failures_per_address: int = Field(default=20, ge=1, le=10_000)
    login_failures_per_user: int = Field(default=10, ge=1, le=10_000)
    # HTTPS (with HSTS). Certificate and key default to <data_dir>/pki/server.{crt,key}, issued
    # by the city CA at `init` (`init --hostname NAME` adds names); or give other files.
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        return _host_port(v)

    def model_post_init(self, __context: Any) -> None:
        if (self.tls_cert or self.tls_key) and not self.tls:
            raise ValueError("http.tls_cert/tls_key are set but http.tls is false")
        if self.enabled and not self.tls and not self.trusted_proxies:
            host = self.listen.rpartition(":")[0].strip("[]")
            if not _loopback(host):
                raise ValueError(
                    f"http.listen {self.listen} is not loopback: plain HTTP only on loopback "
                    "or behind a proxy in http.trusted_proxies; set http.tls = true"
                )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: Any) -> Any:
        return [p for p in v.split(",") if p.strip()] if isinstance(v, str) else v

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, v: list[str]) -> list[str]:
        for entry in v:
            ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the entry
        return [e.strip() for e in v]


class TranscodeConfig(_Strict):
    # The H.264 rendition of H.265 (or other) segments for browsers without HEVC (see
    # docs/playback-hevc.md). false: such clients get only the originals.
    enabled: bool = True
    # Conversions running at once; 0: half the CPUs, at least 1. More wait, then get 503.
    max_concurrent: int = Field(default=0, ge=0, le=256)
    # How long a request waits for a free slot before 503 + Retry-After.
    wait_s: float = Field(default=2.0, ge=0.0, le=60.0)
    # Disk cache of renditions (LRU); empty cache_dir: <data_dir>/renditions.
    cache_dir: str = ""
    cache_bytes: int = Field(default=2 * 1024 * MiB, ge=16 * MiB, le=2**50)
    preset: Literal["ultrafast", "superfast", "veryfast"] = "ultrafast"


class FleetConfig(_Strict):
    """The fleet view's alert rules (controller.fleet.alerts.AlertRules)."""

    # Alert when a device's clock is off the controller's by more than this (its own RPC
    # measure, beyond the error bound); its segments recorded meanwhile are flagged.
    clock_skew_s: float = Field(default=2.0, gt=0.0, le=86400.0)
    # A camera with no frame since its agent started raises no transient alert this long.
    startup_grace_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    # A streaming camera whose last frame is older than this is stale.
    frame_age_s: float = Field(default=30.0, gt=0.0, le=86400.0)


class AuditConfig(_Strict):
    # Sign a checkpoint this often when the audit chain grew, and publish the newest one to
    # the MQTT witness topic (controller/audit/publisher.py, docs/security.md).
    checkpoint_interval_s: float = Field(default=60.0, ge=0.5, le=86400.0)


class LiveConfig(_Strict):
    """Live view (controller/live/hub.py LiveOptions; docs/architecture.md, "Live path")."""

    # A camera's feed runs on this long after its last viewer left (a reload does not restart it).
    linger_s: float = Field(default=5.0, ge=0.0, le=600.0)
    # A viewer this many chunks (~frames) behind is dropped (socket closed "too_slow").
    viewer_chunks: int = Field(default=600, ge=10, le=100_000)
    # A live feed sending nothing this long reads "agent unreachable".
    silent_s: float = Field(default=5.0, ge=1.0, le=300.0)
    # Live feeds one scheduler link carries at most (0: no limit); more read "link busy".
    max_streams_per_link: int = Field(default=4, ge=0, le=10_000)
    # A camera's rate for the link check until its feed has been measured.
    assumed_kbps: int = Field(default=2000, ge=8, le=1_000_000)


class ClusterConfig(_Strict):
    """Replicas sharing one PostgreSQL: which one leads the scheduler (controller/leader)."""

    # true: this controller is one of several replicas on one PostgreSQL database_url, object
    # store and broker; exactly one, elected through a lease row in the database, runs the
    # scheduler (plan and lease streams), job upkeep and the retention sweep; the others
    # serve ingest and the HTTP API and send agents' control calls to the leader.
    # false: a controller alone, always the leader (SQLite, the demo).
    enabled: bool = False
    # This replica's name in the lease row; unique per replica. Empty: the host name and a
    # digest of data_dir.
    replica_id: str = Field(default="", pattern=r"^([A-Za-z0-9][A-Za-z0-9._:-]{0,99})?$")
    # HOST:PORT agents reach this replica's gRPC at (one of the addresses in their controller
    # list): while it leads, followers name it to agents. Empty: grpc.listen, unless that is
    # a wildcard address (then it must be set).
    advertise: str = ""
    # Leadership lease: a leader renews every renew_s; one that dies is replaced lease_s to
    # lease_s + renew_s later; one that cannot renew steps down 1 s before its lease ends.
    lease_s: float = Field(default=6.0, ge=3.0, le=300.0)
    # How often the leader renews (and a follower with no lease to wait for looks again);
    # at most (lease_s - 1) / 2, so two renewals fit before the leader would step down.
    renew_s: float = Field(default=2.0, ge=0.2, le=120.0)

    @field_validator("advertise")
    @classmethod
    def _check_advertise(cls, v: str) -> str:
        if v and _wildcard(_host_port(v).rpartition(":")[0]):
            raise ValueError(f"{v!r} is a wildcard address: give one agents can reach")
        return v

    def model_post_init(self, __context: Any) -> None:
        if self.renew_s > (self.lease_s - CLUSTER_MARGIN_S) / 2:
            raise ValueError(
                "cluster.renew_s must leave two renewals before the leader steps down: "
                f"at most (lease_s - {CLUSTER_MARGIN_S:g}) / 2 = "
                f"{(self.lease_s - CLUSTER_MARGIN_S) / 2:g}"
            )


class UpperPlatformConfig(_Strict):
    """One GB/T 28181 upper platform Vigil cascades to (级联: Vigil is its lower platform)."""

    # The upper platform's 20-digit SIP server id and its domain (the first 10 digits, usually).
    server_id: str = Field(pattern=r"^[0-9]{20}$")
    server_domain: str = Field(default="", pattern=r"^[0-9A-Za-z.-]{0,64}$")
    # HOST:PORT of its SIP server.
    address: str
    transport: Literal["udp", "tcp"] = "udp"
    # Vigil's 20-digit id as registered on that platform (each platform assigns one).
    local_id: str = Field(pattern=r"^[0-9]{20}$")
    # A file (mode 0600) holding the SIP password the upper platform issued; never logged.
    password_file: str
    register_expiry_s: int = Field(default=3600, ge=60, le=86400)
    keepalive_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    # Unanswered keepalives in a row after which Vigil registers again.
    keepalive_misses: int = Field(default=3, ge=1, le=100)
    # The organisation it acts as (controller/grants policy): it sees only the cameras that
    # organisation is entitled to, narrowed to these area prefixes when any are given.
    org: str = Field(min_length=1, max_length=128)
    areas: list[str] = Field(default_factory=list, max_length=1000)
    # How far back it may look, in days (RecordInfo clipped, older Playback/Download refused
    # 403); 0: no limit (only retention bounds it). At most 3660.
    footage_days: int = Field(default=0, ge=0, le=3660, strict=True)

    @field_validator("address")
    @classmethod
    def _check_address(cls, v: str) -> str:
        return _host_port(v)


class Gb28181Config(_Strict):
    """GB/T 28181 signalling (controller/gb28181, docs/gb28181.md)."""

    enabled: bool = False
    # HOST:PORT of Vigil's SIP endpoint (UDP; TCP to upper platforms connects out from it).
    listen: str = "0.0.0.0:5060"
    # The address written in SDP answers (where media comes from); empty: listen's host, or
    # the host's address toward each upper platform when listen is a wildcard.
    media_ip: str = ""
    # Catalog items per MESSAGE (each ~450 bytes: 10 keep a page in one UDP datagram's reach).
    catalog_page: int = Field(default=10, ge=1, le=100)
    # Concurrent cascade streams (live and recorded) over all upper platforms; beyond: 486.
    max_streams: int = Field(default=64, ge=1, le=10_000)
    upper: list[UpperPlatformConfig] = Field(default_factory=list, max_length=64)
    # Device access: Vigil's own 20-digit SIP server id that NVRs and cameras REGISTER to
    # (their passwords: `vigil-controller gb28181 issue`). Empty: devices are not taken in.
    server_id: str = Field(default="", pattern=r"^(\d{20})?$")
    # The digest realm devices authenticate in; empty: the first 10 digits of server_id.
    realm: str = Field(default="", max_length=64)
    # With device access on: accept SIP over TCP from devices on `listen`'s port too (devices
    # set to TCP register over a connection, and are reached back over it; once it is closed,
    # over one Vigil opens to the port of their authenticated REGISTER's Contact).
    device_tcp: bool = True
    # A registered device not heard from (keepalive or any message) for this long is offline.
    device_timeout_s: float = Field(default=180.0, ge=5.0, le=3600.0)
    # A registered device's catalog is asked again (Query/Catalog) on its first keepalive this
    # long after the last query: its channels' own Status (ON/OFF) is kept from the answer. A
    # Catalog NOTIFY from the device asks again at once. Asked anyway when it first registers.
    catalog_refresh_s: float = Field(default=600.0, ge=10.0, le=86_400.0)
    # Device channels recorded continuously (INVITEd and kept): shell-style globs matched
    # against a channel's 20-digit code and its device's code (a device's code takes all its
    # channels; "*" every channel). Empty: none (live on demand only).
    record: list[str] = Field(default_factory=list, max_length=1000)
    # Recorded segments are cut at the first keyframe this long or more after the last cut.
    record_segment_s: float = Field(default=10.0, ge=1.0, le=60.0)
    # A recorded channel's stream with no RTP for this long is taken as dropped: BYE, and
    # INVITEd again after `reinvite_min_s`, doubling up to `reinvite_max_s` while it fails.
    rtp_timeout_s: float = Field(default=10.0, ge=0.5, le=600.0)
    reinvite_min_s: float = Field(default=2.0, ge=0.1, le=600.0)
    reinvite_max_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    # Devices (globs over device and channel codes, as `record`) whose media is asked over
    # TCP (RTP over TCP, RFC 4571; Vigil listens, the device connects: `a=setup:passive`),
    # e.g. behind NAT or on lossy links. Others: UDP.
    media_tcp: list[str] = Field(default_factory=list, max_length=1000)
    # Devices (globs, as `media_tcp`) that can only listen for TCP media: Vigil offers
    # `a=setup:active` and connects to the port of the device's SDP answer. Before media_tcp.
    media_tcp_active: list[str] = Field(default_factory=list, max_length=1000)
    # An INVITE to a device that sends nothing back in this long (not even 100 Trying) fails
    # at once (408), and its other channels' INVITEs fail without waiting until the device
    # is heard from again (a keepalive): it vanished without unregistering.
    invite_answer_s: float = Field(default=2.0, ge=0.5, le=32.0)

    @property
    def device_realm(self) -> str:
        return self.realm or self.server_id[:10]

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        return _host_port(v)


class ControllerConfig(_Strict):
    data_dir: str = "/var/lib/vigil-controller"
    # Empty: sqlite:///<data_dir>/catalog.db
    database_url: str = ""
    # Empty: the local object store in <data_dir>/objects
    storage_url: str = ""
    # A file (mode 0600, >= 32 random bytes) whose key wraps the sharing keys replicas share
    # through the database (AES-GCM); every replica on the database gives the same file.
    # Empty: they are stored unwrapped (docs/security.md, "Shared keys").
    key_encryption_file: str = ""
    # The tier policy (which organisation sees which areas and classes, roles, grant
    # lifetimes) as a TOML or JSON file (controller/grants/policy.py, `policy_from_mapping`).
    # Empty: the built-in Longnan policy (city, 综治, 公安 and nine counties).
    policy_file: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "json": one JSON object per log line (for a log shipper); "text": human-readable lines.
    log_format: Literal["text", "json"] = "text"
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    transcode: TranscodeConfig = Field(default_factory=TranscodeConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    gb28181: Gb28181Config = Field(default_factory=Gb28181Config)
    enrollment: EnrollmentConfig = Field(default_factory=EnrollmentConfig)
    kpi: KpiConfig = Field(default_factory=KpiConfig)

    def model_post_init(self, __context: Any) -> None:
        if self.grpc.max_workers <= self.ingest.max_concurrent_uploads:
            raise ValueError(
                "grpc.max_workers must be greater than ingest.max_concurrent_uploads "
                f"({self.grpc.max_workers} <= {self.ingest.max_concurrent_uploads})"
            )
        if self.grpc.max_message_bytes < self.ingest.max_chunk_bytes + 1024:
            raise ValueError("grpc.max_message_bytes must exceed ingest.max_chunk_bytes + 1 KiB")
        if self.cluster.enabled:
            if not self.resolved_database_url().startswith(("postgresql", "postgres:")):
                raise ValueError(
                    "cluster.enabled needs a PostgreSQL database_url shared by the replicas"
                )
            if not self.cluster.advertise and _wildcard(self.grpc.listen.rpartition(":")[0]):
                raise ValueError(
                    f"cluster.advertise must be set: grpc.listen {self.grpc.listen} is a "
                    "wildcard address agents cannot be sent to"
                )

    # Resolved values (embedded defaults filled in from data_dir).

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'catalog.db'}"

    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{self.data_path / 'objects'}"

    def tls_paths(self) -> tuple[Path, Path, Path]:
        """(server_cert, server_key, ca_cert), defaulting to the PKI in the data dir."""
        pki = self.data_path / "pki"
        return (
            Path(self.grpc.server_cert or pki / "server.crt"),
            Path(self.grpc.server_key or pki / "server.key"),
            Path(self.grpc.ca_cert or pki / "ca.crt"),
        )

    def renditions_dir(self) -> Path:
        return Path(self.transcode.cache_dir or self.data_path / "renditions")

    def http_tls_paths(self) -> tuple[Path, Path]:
        """(certificate, key) of the HTTPS listener, defaulting to the controller's own."""
        pki = self.data_path / "pki"
        return (
            Path(self.http.tls_cert or pki / "server.crt"),
            Path(self.http.tls_key or pki / "server.key"),
        )

    def replica_id(self) -> str:
        """cluster.replica_id, or the host name and a digest of data_dir (stable across
        restarts, different for two controllers on one host)."""
        if self.cluster.replica_id:
            return self.cluster.replica_id
        digest = hashlib.sha256(str(self.data_path.resolve()).encode()).hexdigest()[:8]
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:80] or "controller"
        return f"{host}:{digest}"

    def advertised_address(self) -> str:
        """Where agents reach this replica's gRPC: cluster.advertise, else grpc.listen."""
        return self.cluster.advertise or self.grpc.listen

    def staging_dir(self) -> Path:
        return self.data_path / "staging"

    def describe(self) -> str:
        """One line for the log: where things are, credentials scrubbed (user:password in
        URLs, and the S3 access and secret keys a storage URL may carry in its query)."""
        from controller.storage.factory import redact_store_url

        return (
            f"data_dir={self.data_dir} database={redact_url(self.resolved_database_url())} "
            f"storage={redact_store_url(self.resolved_storage_url())} grpc={self.grpc.listen}"
        )


def parse_config(
    text: str, source: str, env: Mapping[str, str] | None = None, **overrides: Any
) -> ControllerConfig:
    """Parse and validate controller.toml text; `source` names it in errors.

    `overrides` are top-level keys set by the command line (e.g. data_dir), applied last.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    if env is not None:
        overlay = apply_env_overrides(data, env, ControllerConfig)
        data = overlay.data
        if overlay.ignored:
            logging.getLogger(__name__).warning(ignored_message(overlay.ignored))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ControllerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{source}: invalid configuration: {problems}") from None


def load_config(
    path: Path | None, env: Mapping[str, str] | None = None, **overrides: Any
) -> ControllerConfig:
    """Read and validate controller.toml (None: embedded defaults plus env and overrides)."""
    if path is None:
        return parse_config("", "(defaults)", os.environ if env is None else env, **overrides)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    return parse_config(text, str(path), os.environ if env is None else env, **overrides)
