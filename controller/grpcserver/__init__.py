"""The controller's gRPC server (mutual TLS, bounded threads and message sizes) and the
device identity its services read from the verified client certificate. Ingest and the
scheduler's AgentControl service register on it; it knows neither."""
