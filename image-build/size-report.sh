#!/bin/bash
# What the parts of the live image cost: ISO, squashfs, initrd, and each firmware,
# Wi-Fi and Secure Boot package compressed the way the squashfs stores it (zstd -19 of the
# package's files, from live-build's package cache). Run by build.sh after `lb build`;
# writes OUT/size-report.json and prints a table (docs/ISO.md "Firmware" quotes it).
#
#   image-build/size-report.sh BUILD_DIR ISO OUT_JSON
set -euo pipefail
BUILD=$1
ISO=$2
JSON=$3
DEBS="$BUILD/cache/packages.chroot"
PACKAGES="firmware-realtek firmware-iwlwifi firmware-atheros firmware-brcm80211 firmware-bnx2
firmware-bnx2x firmware-misc-nonfree wpasupplicant iw wireless-regdb shim-signed
shim-helpers-amd64-signed grub-efi-amd64-signed"

deb() { ls "$DEBS/$1"_*.deb 2>/dev/null | head -n 1; }
cost() {  # compressed bytes of a package's files as the squashfs holds them
	local d
	d=$(deb "$1")
	if [ -z "$d" ]; then echo 0; return; fi
	dpkg-deb --fsys-tarfile "$d" | zstd -19 -T0 -q -c | wc -c
}
installed() {
	local d v
	d=$(deb "$1")
	v=$([ -n "$d" ] && dpkg-deb -f "$d" Installed-Size 2>/dev/null)
	echo "${v:-0}"
}

iso_size=$(stat -L -c %s "$ISO")
sq=$(xorriso -indev "$ISO" -find /live/filesystem.squashfs -exec lsdl 2>/dev/null | awk '{print $5}' | head -n1)
initrd=$(xorriso -indev "$ISO" -find /live/initrd.img -exec lsdl 2>/dev/null | awk '{print $5}' | head -n1)
{
	printf '{"iso_bytes": %s, "squashfs_bytes": %s, "initrd_bytes": %s, "packages": {' \
		"$iso_size" "${sq:-0}" "${initrd:-0}"
	sep=""
	for p in $PACKAGES; do
		printf '%s"%s": {"compressed_bytes": %s, "installed_kib": %s}' "$sep" "$p" "$(cost "$p")" \
			"$(installed "$p")"
		sep=", "
	done
	printf '}}\n'
} >"$JSON"
python3 - "$JSON" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
mb = lambda b: f"{b / 1e6:7.1f} MB"
print(f"ISO {mb(r['iso_bytes'])}  squashfs {mb(r['squashfs_bytes'])}  initrd {mb(r['initrd_bytes'])}")
for name, p in r["packages"].items():
    print(f"  {name:28} {mb(p['compressed_bytes'])} in the image ({p['installed_kib'] / 1000:.1f} MB installed)")
PY
