"""Segment ingest: the `vigil.v1.Ingest` gRPC service behind mutual TLS.

rules.py         pure decisions (header checks, camera-scoped ids, resume offsets, chunks,
                 the hash chain)
fairness.py      pure per-device shares: slot admission, stall reaping, staging budgets
slots.py         concurrent-upload limit and per-device shares, one stream per segment, reaping
staging.py       partial uploads on disk, what resume reads after a crash
direct.py        O_DIRECT appends through reused aligned buffers (staging's writer)
caches.py        cameras and each camera's latest segment, remembered between uploads
service.py       one upload from header to verified staged file, resume queries (no gRPC)
stream.py        an S3 store instead: chunks straight into a PUT or a multipart upload
ledger.py        the multipart uploads any replica resumes (table ingest_multipart)
sha.py           SHA-256 whose state is saved at part boundaries (resume on another replica)
checksum_probe.py  whether the store verifies x-amz-checksum-sha256 (asked once)
commit_queue.py  verified uploads the store could not complete yet, committed when it answers
commit.py        a verified upload into the object store and the catalog, chain flags
grpc_service.py  the servicer: protobuf <-> service, status codes

The gRPC server itself (TLS, thread pool, message limits) and the device identity of a peer
are in controller/grpcserver/: the scheduler's AgentControl service shares them.
"""
