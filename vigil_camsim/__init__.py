"""vigil-camsim: emulated IP cameras (real H.264/H.265 over RTSP), handheld terminals and NVRs.

Venv side: `launcher.CamsimProcess` starts the server, `client.CamsimClient` drives its faults,
`handheld.HandheldEmulator` writes clips, `nvr_folder.NvrFolderEmulator` writes an NVR
channel's recordings named in local time. Server side (Debian's /usr/bin/python3 with gi):
`gst_server.py`, `gst_camera.py`, `gst_commands.py`, `gst_loops.py`. Pure and shared by both:
`core.py`, `profiles.py` (camera profiles: codec, B-frames, audio; size presets),
`control_api.py`. Nothing is imported here, so importing the package costs nothing.
"""
