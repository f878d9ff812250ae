"""codec_wrappers."""
