"""Per-filesystem knowledge: one record per type (registry.py) that every other module
asks, the used-block readers, the regions outside the allocation map, boot-sector start
fields, and LVM physical volumes."""
