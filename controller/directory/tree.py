"""The camera tree's nodes (市 → 区县 → 乡镇 → 村 → device), counted, pure.

The console opens the tree one level at a time (lazy loading): each request names a node and
gets its children with camera totals and online/offline counts. Counting is done here over
plain tuples so it is unit-tested without a database or a fleet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

LEVELS = ("county", "township", "village", "device")


@dataclass(frozen=True, slots=True)
class Node:
    level: str
    key: str  # the value to filter by at this level ("" for "none given")
    label: str
    total: int
    online: int
    offline: int  # reported and not streaming (unknown = total - online - offline)


def children(
    places: Iterable[tuple[str, str, str, str, str]],
    level: str,
    states: Mapping[str, bool],
    county_label: Callable[[str], str],
) -> list[Node]:
    """Children at `level` of the cameras in `places` (camera, county, township, village,
    device) — already narrowed to the parent node. `states`: camera -> online (absent:
    unknown). Counties are grouped by their shown name (an id and a name are one county)."""
    index = LEVELS.index(level) + 1
    groups: dict[str, list[int]] = {}
    for place in places:
        key = county_label(place[1]) if index == 1 else place[index]
        counts = groups.setdefault(key, [0, 0, 0])
        counts[0] += 1
        state = states.get(place[0])
        if state is True:
            counts[1] += 1
        elif state is False:
            counts[2] += 1
    return [
        Node(level, key, key, c[0], c[1], c[2])
        for key, c in sorted(groups.items(), key=lambda kv: (kv[0] == "", kv[0]))
    ]
