"""The only writer: partitioning, streaming restore, capture, verify, boot fix-ups."""
