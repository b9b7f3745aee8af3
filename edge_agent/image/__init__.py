"""Image health (视频质量诊断): one decoded frame per camera per minute checked for a frozen,
black, blurred or occluded picture (`checks` pure, `sampler` the PyAV adapter)."""
