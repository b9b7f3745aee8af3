"""Segment ingest: the `vigil.v1.Ingest` gRPC service behind mutual TLS.

rules.py         pure decisions (header checks, resume offsets, chunks, the hash chain)
slots.py         concurrent-upload limit, one stream per segment, idle reaping
staging.py       partial uploads on disk, what resume reads after a crash
direct.py        O_DIRECT appends through reused aligned buffers (staging's writer)
caches.py        cameras and each camera's latest segment, remembered between uploads
service.py       one upload from header to verified staged file, resume queries (no gRPC)
commit.py        a verified upload into the object store and the catalog, chain flags
grpc_service.py  the servicer: protobuf <-> service, status codes, device identity
server.py        the gRPC server (TLS, thread pool, message limits)
"""
