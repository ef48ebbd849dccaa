"""One screen per wizard step (see docs/WIZARD.md)."""
