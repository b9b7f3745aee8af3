"""Media facts and renditions: what a segment carries (`probe`, container header only), the
H.264 rendition for browsers without HEVC (`transcode` adapter, `renditions` cache and
concurrency shell) and the pure decisions they follow (`decisions`)."""
