"""Read-only probes: disks and partitions (inventory, eligibility, targets), a source's
layout and identity, the catalog of images on attached media. Filesystems are mounted
read-only, through rescue.sysmount only; nothing here writes to a disk."""
