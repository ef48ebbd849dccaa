"""The hardware profile of a machine and the compatibility verdict between two profiles."""
