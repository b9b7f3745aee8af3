"""Generated protobuf code must match protos/: stale code fails here, not in production."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protobuf_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_generated_code_imports_and_round_trips() -> None:
    from protos.vigil.v1 import ingest_pb2

    header = ingest_pb2.SegmentHeader(segment_id="s1", camera_id="c1", size_bytes=5)
    req = ingest_pb2.UploadRequest(header=header)
    again = ingest_pb2.UploadRequest.FromString(req.SerializeToString())
    assert again.WhichOneof("part") == "header"
    assert again.header.segment_id == "s1"


def _floor(requirement: str) -> tuple[int, ...]:
    """`"protobuf>=7.35.1"` -> (7, 35, 1)."""
    match = re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+>=([0-9.]+)", requirement.replace(" ", ""))
    assert match, f"{requirement!r} has no >= floor"
    return tuple(int(p) for p in match.group(1).split("."))


def _dependency(name: str) -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [d for d in project["dependencies"] if re.match(rf"{name}\s*[<>=!~]", d)]
    assert len(found) == 1, f"pyproject.toml must declare {name} once in the agent's dependencies"
    return str(found[0])


def test_pyproject_floors_are_what_the_generated_code_needs() -> None:
    """An install resolving the lowest allowed versions must import the generated code: the
    _pb2 modules call ValidateProtobufRuntimeVersion(PUBLIC, major, minor, patch, ...) and the
    _pb2_grpc modules refuse a grpcio below GRPC_GENERATED_VERSION."""
    generated = ROOT / "protos" / "vigil" / "v1"
    protobuf_needs = set()
    for path in generated.glob("*_pb2.py"):
        text = path.read_text(encoding="utf-8")
        m = re.search(
            r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*"
            r"(\d+),\s*(\d+),\s*(\d+),",
            text,
        )
        assert m, f"{path.name}: no protobuf runtime version check found"
        protobuf_needs.add(tuple(int(g) for g in m.groups()))
    grpc_needs = set()
    for path in generated.glob("*_pb2_grpc.py"):
        m = re.search(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", path.read_text(encoding="utf-8"))
        assert m, f"{path.name}: no GRPC_GENERATED_VERSION found"
        grpc_needs.add(tuple(int(p) for p in m.group(1).split(".")))
    assert protobuf_needs and grpc_needs
    assert _floor(_dependency("protobuf")) == max(protobuf_needs)
    assert _floor(_dependency("grpcio")) == max(grpc_needs)


def test_installed_runtime_meets_the_floors() -> None:
    from importlib.metadata import version

    for name in ("protobuf", "grpcio"):
        installed = tuple(int(p) for p in re.findall(r"\d+", version(name))[:3])
        assert installed >= _floor(_dependency(name)), (name, version(name))
