"""vigil-camsim: emulated IP cameras (real H.264 over RTSP) and handheld terminals.

Venv side: `launcher.CamsimProcess` starts the server, `client.CamsimClient` drives its faults,
`handheld.HandheldEmulator` writes clips. Server side (Debian's /usr/bin/python3 with gi):
`gst_server.py`, `gst_camera.py`, `gst_loops.py`. Pure and shared by both: `core.py`,
`control_api.py`. Nothing is imported here, so importing the package costs nothing.
"""
