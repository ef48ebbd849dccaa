"""EFI boot equipment of the ISO, read from the host: files of the ESP image (mtools),
Authenticode signers (osslsigncode), the modules built into a GRUB EFI image, and a copy
of the ISO with one EFI loader replaced (the Secure Boot negative control)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def run(*argv: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=MTOOLS_ENV)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): "
                             f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def iso_extract(iso: Path, inside: str, dest: Path) -> Path:
    run("xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", inside, str(dest))
    dest.chmod(0o644)
    return dest


def esp_files(img: Path) -> dict[str, int]:
    """Path (upper case) -> size of every file in a FAT image."""
    out = run("mdir", "-/", "-b", "-i", str(img), "::")
    files: dict[str, int] = {}
    for line in out.splitlines():
        line = line.strip()
        if not line or line.endswith("/"):
            continue
        path = line.split("::", 1)[-1]
        files[path.upper()] = 0
    return files


def esp_extract(img: Path, inside: str, dest: Path) -> Path:
    run("mcopy", "-n", "-i", str(img), f"::{inside}", str(dest))
    return dest


def signers(efi: Path) -> list[str]:
    """One line per Authenticode signature of a PE file (its attribute certificate table:
    WIN_CERTIFICATE records holding PKCS#7 SignedData), naming the certificates it
    carries ("signer <- issuer"); [] when the file is unsigned. Read here because
    osslsigncode 2.5 rejects shim's padded table."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    data = efi.read_bytes()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    magic = struct.unpack_from("<H", data, pe + 24)[0]
    dirs = pe + 24 + (112 if magic == 0x20B else 96)  # PE32+ / PE32 data directories
    off, size = struct.unpack_from("<II", data, dirs + 4 * 8)  # entry 4: certificates
    subjects: list[str] = []
    pos, end = off, off + size
    while off and pos + 8 <= end:
        length, _rev, ctype = struct.unpack_from("<IHH", data, pos)
        if length < 8:
            break
        if ctype == 2:  # WIN_CERT_TYPE_PKCS_SIGNED_DATA
            with warnings.catch_warnings():  # shim's records are BER, not strict DER
                warnings.simplefilter("ignore")
                certs = pkcs7.load_der_pkcs7_certificates(data[pos + 8:pos + length])
            subjects.append(" <- ".join(c.subject.rfc4514_string() for c in certs))
        pos += (length + 7) // 8 * 8
    return subjects


def strip_signature(efi: Path, dest: Path) -> Path:
    run("osslsigncode", "remove-signature", "-in", str(efi), "-out", str(dest))
    return dest


def _pe_sections(data: bytes) -> dict[str, tuple[int, int]]:
    """Section name -> (file offset, size) of a PE image."""
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if data[pe:pe + 4] != b"PE\0\0":
        raise ValueError("not a PE image")
    nsect = struct.unpack_from("<H", data, pe + 6)[0]
    opt_size = struct.unpack_from("<H", data, pe + 20)[0]
    table = pe + 24 + opt_size
    out: dict[str, tuple[int, int]] = {}
    for i in range(nsect):
        name, vsize, _va, rsize, rptr = struct.unpack_from("<8sIIII", data, table + 40 * i)
        out[name.rstrip(b"\0").decode("ascii", "replace")] = (rptr, min(vsize, rsize) or rsize)
    return out


def _elf_modname(elf: bytes) -> str | None:
    """The .modname section of one GRUB module (an ELF64 relocatable object)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return None
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    def section(i: int) -> tuple[int, int, int]:
        name, _t, _f, _a, off, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return name, off, size
    _n, stroff, _s = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        end = elf.index(b"\0", stroff + name)
        if elf[stroff + name:end] == b".modname":
            return elf[off:off + size].split(b"\0")[0].decode()
    return None


def grub_builtin_modules(efi: Path) -> set[str]:
    """Names of the modules built into a GRUB EFI image (its "mods" section: a
    grub_module_info64 header, then {type, size} records; type 0 is an ELF module)."""
    data = efi.read_bytes()
    sections = _pe_sections(data)
    if "mods" not in sections:
        raise AssertionError(f"{efi.name} has no GRUB module section: {sorted(sections)}")
    off, _size = sections["mods"]
    magic, _pad, moff, msize = struct.unpack_from("<IIQQ", data, off)
    if magic != 0x676D696D:  # "mimg"
        raise AssertionError(f"{efi.name}: GRUB module section has magic {magic:#x}")
    pos, end = off + moff, off + msize
    names: set[str] = set()
    while pos + 8 <= end:
        mtype, size = struct.unpack_from("<II", data, pos)
        if size < 8:
            break
        if mtype == 0:
            name = _elf_modname(data[pos + 8:pos + size])
            if name:
                names.add(name)
        pos += size
    return names


# GRUB commands our menus use -> the module that provides each.
COMMAND_MODULES = {
    "set": "normal", "menuentry": "normal", "if": "normal", "then": "normal",
    "fi": "normal", "source": "configfile", "configfile": "configfile",
    "linux": "linux", "initrd": "linux", "serial": "serial",
    "terminal_input": "terminal", "terminal_output": "terminal", "echo": "echo",
    "sleep": "sleep", "fwsetup": "efifwsetup", "search": "search", "[": "test",
    "test": "test", "insmod": "normal", "}": "normal", "else": "normal",
}


def grub_commands(cfg: str) -> set[str]:
    """First words of the commands in a grub.cfg (menu entry bodies included)."""
    words: set[str] = set()
    for line in cfg.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r";\s*", line):
            first = part.split()[0] if part.split() else ""
            if first and "=" not in first:
                words.add(first)
    return words


def iso_with_files(iso: Path, out: Path, replace: dict[str, Path], esp: dict[str, Path],
                   work: Path) -> Path:
    """A copy of *iso* with files of the ISO tree (*replace*: ISO path -> new file) and of
    the ESP image /boot/grub/efi.img (*esp*: path in it -> new file) replaced; the boot
    equipment (El Torito, hybrid MBR) is replayed."""
    img = iso_extract(iso, "/boot/grub/efi.img", work / "efi.img")
    for inside, new in esp.items():
        run("mcopy", "-o", "-i", str(img), str(new), f"::{inside}")
    maps: list[str] = []
    for inside, new in {**replace, "/boot/grub/efi.img": img}.items():
        maps += ["-map", str(new), inside]
    if out.exists():
        out.unlink()
    run("xorriso", "-indev", str(iso), "-outdev", str(out), "-boot_image", "any", "replay",
        *maps)
    shutil.rmtree(work / "unused", ignore_errors=True)
    return out
