"""The math: forward/backward pairs, the modules that bind parameters to them, and their gradient checks."""
