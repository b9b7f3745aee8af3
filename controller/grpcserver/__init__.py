"""The controller's gRPC server (grpc.aio on one event-loop thread, mutual TLS, bounded
worker threads for blocking work, limits per kind of call and per device, message sizes) and
the device identity its services read from the verified client certificate. Ingest and the
scheduler's AgentControl service register on it; it knows neither."""
