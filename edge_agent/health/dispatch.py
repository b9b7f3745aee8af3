"""What a command does on this agent (split from the reporter, which publishes the ack).

`run_command` parses and applies one command on the reporter thread and never raises: a
refusal or a failing handler becomes (ok=False, error). Requests that only touch inputs
(holds, upload ranges) are handled here; the ones that change the reporter itself (rebirth,
reconfigure) call back into it through `rebirth` and `reconfigured`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge_agent.config import AgentConfig
from edge_agent.health import commands as cm
from edge_agent.health.inputs import ReporterInputs
from protos.vigil.v1 import fleet_pb2

log = logging.getLogger(__name__)


def run_command(
    verb: str,
    payload: bytes,
    config: AgentConfig,
    inputs: ReporterInputs,
    rebirth: Callable[[], None],
    reconfigured: Callable[[AgentConfig], None],
) -> tuple[bool, str, str]:
    """(ok, error, result) of the command `verb` with `payload`."""
    try:
        request = cm.parse_command(verb, payload, config)
        return True, "", apply_request(request, inputs, rebirth, reconfigured)
    except cm.CommandRejected as exc:
        log.warning("command %s refused: %s", verb[:64], exc)
        return False, str(exc), ""
    except Exception as exc:  # a handler failed: report it, keep running
        log.exception("command %s failed", verb[:64])
        return False, f"{type(exc).__name__}: {exc}", ""


def command_ack(
    device_id: str, verb: str, ok: bool, error: str, result: str, at_us: int
) -> fleet_pb2.CommandAck:
    return fleet_pb2.CommandAck(
        device_id=device_id,
        verb=verb[:64],
        ok=ok,
        error=error[:2000],
        at_unix_us=at_us,
        result=result,
    )


def apply_request(
    request: cm.Request,
    inputs: ReporterInputs,
    rebirth: Callable[[], None],
    reconfigured: Callable[[AgentConfig], None],
) -> str:
    """The command's result text; raises CommandRejected (or a handler's error)."""
    if isinstance(request, cm.RebirthRequest):
        rebirth()
        return ""
    if isinstance(request, cm.ReconfigureRequest):
        if inputs.on_reconfigure is None:
            raise cm.CommandRejected("reconfigure is not available on this agent")
        inputs.on_reconfigure(request.config)  # raises: the old config stays
        reconfigured(request.config)
        return "reconfigured"
    if isinstance(request, cm.UploadRangeRequest):
        if inputs.on_upload_range is None:
            raise cm.CommandRejected("upload_range is not available on this agent yet")
        return inputs.on_upload_range(request)
    holds = inputs.holds
    if holds is None:
        raise cm.CommandRejected("holds are not available on this agent")
    if isinstance(request, cm.HoldRequest):
        h = holds.hold(request.camera_id, request.start_us, request.end_us, request.case_id)
        return h.hold_id
    ids = cm.holds_to_release(holds.holds(), request)
    if not ids:
        raise cm.CommandRejected("no matching hold")
    return ",".join(i for i in ids if holds.release(i))
