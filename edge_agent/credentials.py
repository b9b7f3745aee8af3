"""RTSP credentials kept apart from agent.toml: `camera_credentials_file` (TOML, 0600).

    [cam-1]
    username = "admin"
    password = "..."

The configuration an installer reads, copies into a ticket or shows on screen then holds no
camera password; the credentials file is readable by the agent's user only. `merge` (pure)
puts them into each RTSP camera's URL when the configuration is loaded; a camera named in the
file but not configured, or a URL that already carries credentials, is an error (two sources
for one secret would silently disagree).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit


class CredentialsError(ValueError):
    """The credentials file is unusable; the message names the file and the camera."""


def with_credentials(url: str, username: str, password: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise CredentialsError("the URL already carries credentials")
    host = parts.netloc
    auth = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


def merge(urls: Mapping[str, str], creds: Mapping[str, object], source: str) -> dict[str, str]:
    """camera id -> URL with its credentials (cameras without an entry unchanged)."""
    unknown = sorted(set(creds) - set(urls))
    if unknown:
        raise CredentialsError(f"{source}: credentials for unconfigured camera {unknown[0]!r}")
    out = dict(urls)
    for camera, entry in creds.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("username"), str):
            raise CredentialsError(f"{source}: [{camera}] needs username (and password)")
        password = entry.get("password", "")
        if not isinstance(password, str):
            raise CredentialsError(f"{source}: [{camera}] password must be a string")
        try:
            out[camera] = with_credentials(urls[camera], entry["username"], password)
        except CredentialsError as exc:
            raise CredentialsError(f"{source}: camera {camera!r}: {exc}") from None
    return out


def read(path: Path) -> dict[str, object]:
    try:
        mode = path.stat().st_mode
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CredentialsError(f"{path}: not valid TOML: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and os.name == "posix":
        raise CredentialsError(f"{path}: readable by others (mode {mode & 0o777:o}): chmod 600")
    return data
