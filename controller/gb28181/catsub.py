"""Catalog subscription (GB/T 28181-2016 §9.11.1): the decisions (pure, no I/O, no clock).

Vigil SUBSCRIBEs (Event: Catalog) to each device that registers afresh, so the device
NOTIFYs what changes in its catalog (a camera losing power, a channel added) when it
happens, instead of Vigil learning it at the next full query (`catalog_refresh_s`). The
shell (`catalog_sub.py`) asks these functions:

- `granted_s`: how long the subscription runs, from the 200's `Expires` (bounded: a device
  granting 1 s must not make Vigil renew several times a second, nor one granting a year
  leave a dead subscription believed alive);
- `renew_in`: when to renew it (2/3 of the granted time, as REGISTERs are refreshed);
- `changes`: what a NOTIFY's items change. ON/OFF/VLOST/DEFECT change a channel's status
  (VLOST, video lost, and DEFECT, a fault, count as OFF: an INVITE would get no video);
  ADD and UPDATE carry the channel's catalog fields and are stored as a Catalog answer's
  items are (so a code that is another device's camera is left alone there); DEL takes the
  channel off the device's list (the camera and its footage stay, as when a full answer no
  longer lists it). A status change for a code that is not one of the device's own
  channels changes nothing: a device cannot switch off another device's camera.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from controller.gb28181.manscdp import OFF, ON, UNKNOWN, CatalogEvent, Channel

SUBSCRIBE_S = 3600  # the Expires Vigil asks for
MIN_GRANTED_S = 10  # a shorter grant is taken as this (renewed at 2/3 of it)
MAX_GRANTED_S = 86_400
_STATUS_OF = {"ON": ON, "OFF": OFF, "VLOST": OFF, "DEFECT": OFF}


def granted_s(expires: str, asked: int = SUBSCRIBE_S) -> int | None:
    """The subscription's time from the 200's `Expires` header ("": the time asked); None
    when the device granted none (0: it refused in effect). Unreadable: the time asked,
    bounded like any grant."""
    text = expires.strip()
    if not text:
        return asked
    if not text.isdigit() or len(text) > 9:
        return asked
    value = int(text)
    if value == 0:
        return None
    return max(MIN_GRANTED_S, min(MAX_GRANTED_S, value))


def renew_in(granted: int) -> float:
    return granted * 2 / 3


@dataclass(frozen=True, slots=True)
class Changes:
    """What a Catalog NOTIFY changes for one device."""

    upsert: tuple[Channel, ...]  # ADD/UPDATE with a name: stored as Catalog answer items
    status: dict[str, str]  # status events for the device's own channels: code -> ON/OFF
    listed: tuple[str, ...]  # its channels after (the store drops codes it does not own)
    ignored: tuple[str, ...]  # codes changed nothing: not its own, the device, organisations


def changes(
    device_id: str, listed: Sequence[str], own: Collection[str], events: Sequence[CatalogEvent]
) -> Changes:
    """The changes of `events` (in order: the last word on a code wins) to a device whose
    channels are `listed`, `own` being the codes that are its cameras in the catalog."""
    after = list(listed)
    upsert: dict[str, Channel] = {}
    status: dict[str, str] = {}
    ignored: list[str] = []
    for ev in events:
        code = ev.channel.code
        if code == device_id or ev.channel.parental:
            ignored.append(code)
            continue
        if ev.event == "DEL":
            if code in after:
                after.remove(code)
            upsert.pop(code, None)
            status.pop(code, None)
            continue
        if ev.event in ("ADD", "UPDATE") and (ev.channel.name or ev.event == "ADD"):
            channel = ev.channel
            if not channel.name:
                channel = Channel(code, code, channel.parent_id, channel.status, False,
                                  channel.manufacturer, channel.model)  # fmt: skip
            upsert[code] = channel
            status.pop(code, None)
        elif code in own or code in upsert:
            word = _STATUS_OF.get(ev.event, ev.channel.status)
            if word == UNKNOWN:  # an UPDATE without a name or a readable status
                continue
            if code in upsert:
                old = upsert[code]
                upsert[code] = Channel(code, old.name, old.parent_id, word, False,
                                       old.manufacturer, old.model)  # fmt: skip
            else:
                status[code] = word
        else:
            ignored.append(code)
            continue
        if code not in after:
            after.append(code)
    return Changes(tuple(upsert.values()), status, tuple(after), tuple(ignored))
