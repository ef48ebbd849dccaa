"""rescue: bare metal backup and recovery."""

__version__ = "0.1.0"
