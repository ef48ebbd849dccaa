"""Per-filesystem knowledge: which byte ranges of a partition hold data."""
