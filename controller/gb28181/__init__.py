"""GB/T 28181: Vigil as a lower platform cascading to upper (公安) platforms (docs/gb28181.md).

Pure parts (sip, digest, manscdp, sdp, ps, rtp, codes, cascade) decide and encode; the shell
(transport, upper, media, service, component) does the I/O on one asyncio loop thread.
"""
