"""The hardware profile of a machine, the compatibility verdict between two profiles,
and a recorded machine (inventory + profile in one file)."""
