"""Partition type codes rescue recognises, one home: GPT type GUIDs (upper case, as
sfdisk and the manifest spell them) and MBR type bytes (lower-case hex, no 0x)."""

from __future__ import annotations

ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # EFI System Partition
BIOS_BOOT_GUID = "21686148-6449-6E6F-744E-656564454649"  # GRUB's core.img on BIOS+GPT
MBR_ESP = "ef"
MBR_EXTENDED = frozenset({"5", "f", "85"})  # CHS, LBA and Linux extended containers


def is_esp(ptype: str) -> bool:
    """An EFI System Partition's type, in a GPT or an MBR."""
    return ptype.upper() == ESP_GUID or ptype.lower() == MBR_ESP


def is_bios_boot(ptype: str) -> bool:
    return ptype.upper() == BIOS_BOOT_GUID


def is_extended(ptype: str) -> bool:
    """An MBR extended partition (the container of logical partitions)."""
    return ptype.lower() in MBR_EXTENDED
