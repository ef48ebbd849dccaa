"""Pure decisions: (target facts, manifest, options) -> typed, JSON-serialisable plans;
table geometry, partition type codes and the registry of boot fix-ups."""
