"""Pure decisions: (target facts, manifest, options) -> typed, JSON-serialisable plans."""
