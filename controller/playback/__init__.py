"""Playback: HLS playlists of granted segments (`playlist`, pure), short-lived signed segment
URLs (`urlsign`, pure), and `service.PlaybackService`, which the HTTP routes (elsewhere) call
to get an audited playlist and to check each segment URL."""
