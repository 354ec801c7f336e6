"""Camera frames: the rolling window by header stamps, image decoding and bounds, media files."""
