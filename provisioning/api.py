"""The controller's installer API from the installer's laptop (stdlib HTTP: the provisioning
tool installs without the controller's dependencies).

Logs in with the installer's account (`POST /api/v1/login`) and sends the session as a bearer
token. Errors carry the controller's reason and message; the password and the returned
tokens never reach a log line or an exception message.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The controller's refusals, said first in Chinese to the installer (the English detail follows).
ZH = {
    "unknown_site": "站点未登记：先运行 vigil-provision site add",
    "invalid_site": "站点信息有误",
    "invalid_gb_code": "国标编码有误",
    "gb_code_taken": "国标编码已被其他设备使用",
    "outside_county": "无权操作其他区县的设备或站点",
    "role_not_allowed": "只有安装人员和管理员可以操作",
    "retired": "设备已退役：请使用新的设备编号",
    "camera_taken": "摄像机已属于其他设备：请对那台设备执行 device replace",
    "unknown_device": "设备未登记",
    "broker_account_left": "证书已吊销，但 MQTT 账号未能删除：稍后再执行一次 retire",
    "enrollment_unavailable": "该控制器未开启设备注册",
    "refused": "请求被拒绝",
    "bad_request": "请求内容有误",
}


class ApiError(Exception):
    """The controller refused or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass
class Api:
    base_url: str
    user: str
    password: str = field(repr=False)
    ca_cert: Path | None = None
    timeout_s: float = 20.0
    _session: str = field(default="", repr=False)

    def _context(self) -> ssl.SSLContext | None:
        if not self.base_url.startswith("https"):
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert) if self.ca_cert else None)

    def _send(self, method: str, path: str, body: Any, auth: bool) -> Any:
        data = None if body is None else json.dumps(body).encode()
        if not self.base_url.startswith(("http://", "https://")):
            raise ApiError(f"--api must be an http(s) URL, not {self.base_url[:40]!r}")
        url = self.base_url.rstrip("/") + path
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self._login()}")
        try:
            with urllib.request.urlopen(  # noqa: S310 - the configured controller URL
                request, timeout=self.timeout_s, context=self._context()
            ) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                info = json.loads(exc.read())
            except ValueError:
                info = {}
            reason = str(info.get("reason", "")) if isinstance(info, dict) else ""
            message = str(info.get("message", exc.reason)) if isinstance(info, dict) else ""
            said = f"{exc.code} {reason}: {message}"
            zh = ZH.get(reason) or ("权限不足" if exc.code in (401, 403) else "")
            raise ApiError(f"{zh}（{said}）" if zh else said, exc.code, reason) from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise ApiError(
                f"无法连接控制器（controller {self.base_url} unreachable: {why}）"
            ) from None

    def _login(self) -> str:
        if not self._session:
            answer = self._send(
                "POST", "/api/v1/login", {"user_id": self.user, "password": self.password}, False
            )
            self._session = str(answer["token"])
        return self._session

    def get(self, path: str) -> Any:
        return self._send("GET", path, None, True)

    def post(self, path: str, body: Any) -> Any:
        return self._send("POST", path, body, True)
