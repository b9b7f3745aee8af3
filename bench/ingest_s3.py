"""The S3 half of `bench.ingest`: Vigil's path into SeaweedFS against boto3 straight to it.

Both sides move the same segments (the local half's payloads) from the same number of
uploaders into one SeaweedFS the benchmark starts (`weed mini`, as tests/fixtures/seaweedfs.py
does, every port pinned to a free one, its data in the benchmark's temp dir):

- `s3_ingest`: agents -> gRPC (mutual TLS) -> the controller (a process of its own, store URL
  `s3://...`) -> SeaweedFS; the controller's CPU and the bytes it writes to its own disk
  (/proc/PID/io write_bytes) are counted per MB ingested;
- `s3_direct`: `put_object` from as many boto3 threads, each with the segment's SHA-256 as
  `ChecksumSHA256` (the store verifies it, as it does for Vigil's PUTs) and no payload
  signing: the cheapest way boto3 has to put a verified object, so the ratio is not flattered
  by a slow baseline.

Rounds alternate between the two, like the local half; each Vigil round is compared with the
boto3 round next to it and the median of those ratios counts (bench/ingest_stats.py). The
store's own CPU per MB is counted on both sides (the machine has two cores: what the store
spends is not there for the uploaders).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config

from bench.ingest_stats import Round


def cpu_s(proc: psutil.Process | None) -> float:
    """User + system CPU seconds of `proc` so far (0 for None)."""
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def start_seaweed(work: Path) -> Any:
    """A running SeaweedFS (the tests' launcher: free ports, its own data dir)."""
    from tests.fixtures.seaweedfs import SeaweedFS, find_weed

    server = SeaweedFS(find_weed(), work / "seaweedfs")
    server.start_on_free_ports()
    return server


def storage_url(server: Any, bucket: str) -> str:
    return (
        f"s3://{bucket}?endpoint={server.endpoint_url}&access_key={server.access_key}"
        f"&secret_key={server.secret_key}"
    )


def _client(server: Any) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            max_pool_connections=64,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def direct_round(
    server: Any, bucket: str, payloads: list[bytes], segments: int, store: psutil.Process
) -> Round:
    """Every uploader puts `segments` segments of its payload, hashing each first; the CPU
    per MB of this process (the uploaders) and of the store's (`store`)."""
    client = _client(server)
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    except Exception as exc:  # SeaweedFS answers BucketAlreadyExists for our own bucket
        if "BucketAlreadyExists" not in str(exc):
            raise
    me = psutil.Process()
    barrier = threading.Barrier(len(payloads) + 1)

    def run(data: bytes) -> int:
        barrier.wait()
        for _ in range(segments):
            digest = hashlib.sha256(data).digest()  # once, as an agent hashes its segment
            client.put_object(
                Bucket=bucket,
                Key=f"direct/{uuid.uuid4().hex}.ts",
                Body=data,
                ChecksumSHA256=base64.b64encode(digest).decode(),
                Metadata={"sha256": digest.hex()},
            )
        return segments * len(data)

    with ThreadPoolExecutor(len(payloads)) as pool:
        futures = [pool.submit(run, p) for p in payloads]
        barrier.wait()
        t0, client0, store0 = time.perf_counter(), cpu_s(me), cpu_s(store)
        total = sum(f.result() for f in futures)
        elapsed = time.perf_counter() - t0
        client_s, store_s = cpu_s(me) - client0, cpu_s(store) - store0
    mb = total / 1e6
    return Round(mb / elapsed, 0.0, 1000 * client_s / mb, 0.0, 1000 * store_s / mb)


def count_objects(server: Any, bucket: str, prefix: str) -> int:
    pages = _client(server).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(len(page.get("Contents", [])) for page in pages)
