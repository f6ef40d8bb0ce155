"""liveness: face liveness detection (is the face real, or a photo/screen replay?) on scratchnet."""

__version__ = "0.1.0"
