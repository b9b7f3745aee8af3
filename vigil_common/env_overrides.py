"""`VIGIL_SECTION__KEY=value` environment overrides, for `agent.toml` and `controller.toml` alike.

Only names that spell a real key of the configuration model are configuration: a section key
(`VIGIL_UPLINK__RATE_BPS`, double underscores between nesting levels) or a top-level key
(`VIGIL_DATA_DIR`). Anything else that happens to start with `VIGIL_` in an operator's shell
(`VIGIL_REPO=...`, a test's `VIGIL_TEST_PG_URL`) is not a typo in the configuration and must
not stop a service with "Extra inputs are not permitted": it is ignored, and the caller logs
one warning naming all of them. `VIGIL_CONFIG*` names the file itself and is never a key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

PREFIX = "VIGIL_"


@dataclass(frozen=True)
class Overlay:
    """The TOML data with the overrides applied, and the `VIGIL_*` names that were not keys."""

    data: dict[str, Any]
    ignored: tuple[str, ...]


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def key_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every settable key of `model` as a path (`("uplink", "rate_bps")`), nested sections
    recursed; tables in a list (such as `[[cameras]]`) are not settable from the environment,
    lists of plain values are (a field's own validator splits the string)."""
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is not None:
            yield from key_paths(sub, (*prefix, name))
        elif not _is_list_of_models(field.annotation):
            yield (*prefix, name)


def _is_list_of_models(annotation: Any) -> bool:
    origin = getattr(annotation, "__origin__", None)
    args = getattr(annotation, "__args__", ())
    return origin in (list, tuple, set, frozenset) and any(_submodel(a) for a in args)


def env_name(path: tuple[str, ...]) -> str:
    """`("uplink", "rate_bps")` -> `VIGIL_UPLINK__RATE_BPS`."""
    return PREFIX + "__".join(path).upper()


def apply_env_overrides(
    data: Mapping[str, Any], env: Mapping[str, str], model: type[BaseModel]
) -> Overlay:
    """Overlay the `VIGIL_*` variables of `env` that name keys of `model` onto parsed TOML.

    Values stay strings; pydantic converts them to the field's type. The input is not changed.
    """
    known = set(key_paths(model))
    out: dict[str, Any] = {k: _copy(v) for k, v in data.items()}
    ignored: list[str] = []
    for name, value in sorted(env.items()):
        if not name.startswith(PREFIX) or name.startswith(PREFIX + "CONFIG"):
            continue
        path = tuple(name[len(PREFIX) :].lower().split("__"))
        if path not in known:
            ignored.append(name)
            continue
        target = out
        for part in path[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                # The file set a section to a scalar; validation reports that, not us.
                break
            target = nxt
        else:
            target[path[-1]] = value
    return Overlay(out, tuple(ignored))


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value


def ignored_message(ignored: tuple[str, ...]) -> str:
    """The one warning for names that start with VIGIL_ but are not configuration keys."""
    return (
        f"ignoring environment variables that are not configuration keys: {', '.join(ignored)} "
        "(overrides are VIGIL_SECTION__KEY or a top-level VIGIL_KEY; see docs/configuration.md)"
    )
