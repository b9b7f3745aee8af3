"""The control-centre HTTP side: JSON API under /api/v1, HLS playback under /play/, the web
console at /, Prometheus metrics at /metrics.

`create_app(ApiDeps)` builds the FastAPI app; `HttpComponent` serves it in a thread with
start()/stop(); `wiring.http(core, fleet, scheduler)` does both for `controller.assembly`.
Pure cores: `errors.status_for`, `ranges.parse_range`, `metrics.render`, `params`.
"""
