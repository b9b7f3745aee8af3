"""`agent.toml`: the agent's configuration, validated strictly on load.

Unknown keys are errors (a typo must not silently disable a camera). Any value can be
overridden by an environment variable, `VIGIL_SECTION__KEY=value` or a top-level
`VIGIL_KEY=value` (vigil_common/env_overrides.py); other `VIGIL_*` names are ignored with one
warning. A bad file gives
one `ConfigError` naming the file and the offending field; the caller keeps its old config.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_agent.redact import redact_url
from vigil_common.env_overrides import apply_env_overrides, ignored_message

READ_PAUSE_S = 0.25  # a live camera's default pause between bursts of reading (pacing.py)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: Literal["rtsp", "nvr_folder", "handheld_folder"] = "rtsp"
    # rtsp: rtsp:// URL (credentials allowed; never logged). Folders: a local path.
    url: str = ""
    path: str = ""
    transport: Literal["tcp", "udp"] = "tcp"
    segment_seconds: float = Field(default=10.0, ge=2.0, le=60.0)
    container: Literal["ts", "mp4"] = "ts"
    # Folder sources: a file is complete when unchanged for this long.
    settle_seconds: float = Field(default=2.0, ge=0.0, le=600.0)
    # The camera's policy keeps a cloud copy: its backlog is "archive", not "backfill".
    archive: bool = False
    # Folder sources: the IANA time zone file names are written in (NVRs name recordings in
    # local time; Vigil keeps UTC inside). A name ending in "Z" is UTC whatever this says.
    timezone: str = "Asia/Shanghai"
    # RTSP: once caught up, capture pauses this long, then reads what queued in one burst
    # (fewer wake-ups: ~30 % less agent CPU; edge_agent/capture/pacing.py). Never while the
    # camera is watched live or over UDP. 0: read packet by packet, for a camera whose RTSP
    # server drops frames when its send queue fills during a pause.
    read_pause_s: float = Field(default=READ_PAUSE_S, ge=0.0, le=1.0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Asia/Shanghai)"
            ) from exc
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("url")
    @classmethod
    def _rtsp_only(cls, v: str) -> str:
        if v and not v.lower().startswith(("rtsp://", "rtsps://")):
            raise ValueError(f"camera URL must be rtsp:// or rtsps://, got {redact_url(v)!r}")
        return v

    def model_post_init(self, __context: Any) -> None:
        if self.kind == "rtsp" and not self.url:
            raise ValueError(f"camera {self.id}: kind 'rtsp' needs a url")
        if self.kind != "rtsp" and not self.path:
            raise ValueError(f"camera {self.id}: kind {self.kind!r} needs a path")


class BufferConfig(_Strict):
    quota_bytes: int = Field(default=50 * 1024**3, ge=1024 * 1024)
    # Below this much free disk the agent raises a disk-low event.
    disk_low_bytes: int = Field(default=1024**3, ge=0)


MAX_CONTROLLERS = 8


def check_address(value: str) -> str:
    """One controller gRPC address, `host:port` (IPv6 as `[addr]:port`), or a clear error."""
    v = value.strip()
    host, sep, port = v.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (
        not sep
        or not host
        or any(c.isspace() or c in "/,[]@" for c in host)
        or (":" in host and not v.startswith("["))
        or not port.isdigit()
        or not 1 <= int(port) <= 65535
    ):
        raise ValueError(
            f"controller address must be HOST:PORT (e.g. ctl1.city.local:7443), got {value!r}"
        )
    return v


class UplinkConfig(_Strict):
    # host:port of the controller's gRPC endpoint; empty disables uploading. One address;
    # several replicas go in `controllers` instead.
    controller: str = ""
    # Several controller replicas, host:port each, in order of preference (at most 8, no
    # duplicates; the environment takes a comma-separated list). The agent uploads to the
    # first reachable one (its home replica), follows the scheduler leader for inventories and
    # leases (only to an address in this list), and fails over in order when one is down.
    # Set `controller` or `controllers`, not both.
    controllers: list[str] = Field(default_factory=list)
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    rate_bps: int = Field(default=8_000_000, ge=8_000)
    chunk_bytes: int = Field(default=1024 * 1024, ge=16 * 1024, le=4 * 1024 * 1024)
    concurrency: int = Field(default=1, ge=1, le=8)
    # leased: upload only what the controller's scheduler leases (the city plans its links);
    # free: upload everything oldest first at rate_bps (a controller without a scheduler).
    mode: Literal["leased", "free"] = "leased"
    inventory_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)

    @field_validator("controller")
    @classmethod
    def _one_controller(cls, v: str) -> str:
        if "," in v:
            raise ValueError(
                "uplink.controller takes one HOST:PORT; list several replicas in "
                'uplink.controllers = ["a:7443", "b:7443"]'
            )
        return check_address(v) if v.strip() else ""

    @field_validator("controllers", mode="before")
    @classmethod
    def _split_controllers(cls, v: object) -> object:
        # From the environment a list arrives as one comma-separated string.
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v

    @field_validator("controllers")
    @classmethod
    def _check_controllers(cls, v: list[str]) -> list[str]:
        if len(v) > MAX_CONTROLLERS:
            raise ValueError(f"at most {MAX_CONTROLLERS} controller addresses, got {len(v)}")
        addresses = [check_address(a) for a in v]
        folded = [a.lower() for a in addresses]
        dupes = sorted({a for a in folded if folded.count(a) > 1})
        if dupes:
            raise ValueError(f"duplicate controller addresses: {', '.join(dupes)}")
        return addresses

    def model_post_init(self, __context: Any) -> None:
        if self.controller and self.controllers:
            raise ValueError(
                "set uplink.controller (one address) or uplink.controllers (several), not both"
            )

    @property
    def addresses(self) -> tuple[str, ...]:
        """The controller addresses in order of preference; () when uploading is off."""
        if self.controllers:
            return tuple(self.controllers)
        return (self.controller,) if self.controller else ()


class MqttConfig(_Strict):
    # Empty host disables MQTT health reporting.
    host: str = ""
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = ""
    password_file: str = ""
    ca_cert: str = ""
    health_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    offline_queue: int = Field(default=1000, ge=1, le=100_000)


class AgentConfig(_Strict):
    device_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    county: str = Field(default="county", pattern=r"^[A-Za-z0-9_.-]+$")
    site: str = Field(default="site", pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["nvr", "handheld"] = "nvr"
    # RTSP camera credentials kept out of this file: a TOML file (mode 0600) of
    # [camera-id] username/password tables, merged into the cameras' URLs at load
    # (edge_agent/credentials.py). Relative to this file's directory.
    camera_credentials_file: str = ""
    data_dir: str = "/var/lib/vigil-agent"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "json": one JSON object per log line (for a log shipper); "text": human-readable lines.
    log_format: Literal["text", "json"] = "text"
    # Where the Prometheus textfile vigil_agent.prom is rewritten every health interval (for
    # node_exporter's textfile collector); empty: <data_dir>/metrics (private to the agent's user).
    metrics_textfile_dir: str = ""
    cameras: list[CameraConfig] = Field(default_factory=list)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)

    def model_post_init(self, __context: Any) -> None:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate camera ids: {', '.join(dupes)}")


def parse_config(text: str, source: str, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Parse and validate agent.toml text; `source` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    if env is not None:
        overlay = apply_env_overrides(data, env, AgentConfig)
        data = overlay.data
        if overlay.ignored:
            logging.getLogger(__name__).warning(ignored_message(overlay.ignored))
    try:
        return _with_credentials(AgentConfig.model_validate(data), source)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{source}: invalid configuration: {problems}") from None


def _with_credentials(config: AgentConfig, source: str) -> AgentConfig:
    """RTSP credentials from `camera_credentials_file` (edge_agent/credentials.py)."""
    if not config.camera_credentials_file:
        return config
    from edge_agent import credentials

    path = Path(config.camera_credentials_file)
    if not path.is_absolute():
        path = Path(source).parent / path
    try:
        creds = credentials.read(path)
        urls = credentials.merge({c.id: c.url for c in config.cameras}, creds, str(path))
    except credentials.CredentialsError as exc:
        raise ConfigError(str(exc)) from None
    cameras = [c.model_copy(update={"url": urls[c.id]}) for c in config.cameras]
    return config.model_copy(update={"cameras": cameras})


def load_config(path: Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate an agent.toml file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    return parse_config(text, str(path), os.environ if env is None else env)
