"""The only writer: partitioning, streaming restore, capture, verify, growing, boot
fix-ups, USB sticks."""
