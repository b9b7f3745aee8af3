"""Segment ingest: the `vigil.v1.Ingest` gRPC service behind mutual TLS.

rules.py         pure decisions (header checks, resume offsets, chunks, the hash chain)
slots.py         concurrent-upload limit, one stream per segment, idle reaping
staging.py       partial uploads on disk, what resume reads after a crash
service.py       one upload from header to catalog row (no gRPC)
grpc_service.py  the servicer: protobuf <-> service, status codes, device identity
server.py        the gRPC server (TLS, thread pool, message limits)
"""
