"""Files in and out: loading images, writing exports atomically."""
