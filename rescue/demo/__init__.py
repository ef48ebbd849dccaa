"""Sample systems for the demo, the benchmarks and the tests (real filesystems on real
block devices, populated with a realistic tree)."""
