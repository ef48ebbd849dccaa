"""Read-only discovery of disks, partitions and mounts. Nothing here writes to a disk."""
