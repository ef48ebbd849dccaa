#!/bin/bash
# Build the rescue live ISO (Debian 12 bookworm, amd64, hybrid: CD or USB, BIOS or UEFI).
#
#   image-build/build.sh OUT_DIR        (run as root from the repository root; `make iso`)
#
# Steps: build wheels of rescue (working tree) and its pinned dependencies on this
# Debian 12 host; write a live-build tree in OUT_DIR/build (live-build's package
# cache survives between builds); render the boot menus from iso/; lb build; copy the
# image to OUT_DIR/rescue-VERSION-amd64.iso (+ rescue.iso symlink, build.log, build.json).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/iso/out}")
BUILD="$OUT/build"
MIRROR=${RESCUE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${RESCUE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
HOST_PYTHON=/usr/bin/python3   # Debian's python3.11: the same interpreter as in the image
# public keys the live system trusts (make iso TRUSTED_KEYS=DIR): only images they signed
# are restored from it; unset: the image trusts no key and restores any intact image
TRUSTED_KEYS=${RESCUE_TRUSTED_KEYS:+$(realpath -m "$RESCUE_TRUSTED_KEYS")}

[ "$(id -u)" = 0 ] || { echo "build.sh: live-build needs root" >&2; exit 1; }

started=$(date +%s)
BASE_VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/rescue/__init__.py")
GIT_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
VERSION="$BASE_VERSION+$GIT_REV"
BUILD_DATE=$(date -u +%Y-%m-%d)
mkdir -p "$OUT"

echo "== rescue $VERSION: wheels"
WHEELS="$OUT/wheels"
rm -rf "$WHEELS"
mkdir -p "$WHEELS"
if [ ! -x "$OUT/wheel-venv/bin/pip" ]; then
	"$HOST_PYTHON" -m venv "$OUT/wheel-venv"
fi
# The compiled catalogs go into the wheel (the live system then never compiles a .po).
(cd "$ROOT" && "$HOST_PYTHON" -m rescue.i18n compile)
# Runtime dependencies only, at the versions pinned in constraints.txt. PyPI's
# manylinux wheels fit Debian 12's glibc; pyparted has none and compiles here against
# libparted-dev (the same libparted2 as in the image), so no compiler enters the image.
"$OUT/wheel-venv/bin/pip" wheel -q --disable-pip-version-check --wheel-dir "$WHEELS" \
	-c "$ROOT/constraints.txt" -c "$ROOT/image-build/constraints-image.txt" "$ROOT"
cp "$ROOT/constraints.txt" "$WHEELS/constraints.txt"
cp "$ROOT/image-build/constraints-image.txt" "$WHEELS/constraints-image.txt"
printf -- '-c constraints.txt\n-c constraints-image.txt\nrescue\n' >"$WHEELS/requirements.txt"
ls "$WHEELS"

echo "== live-build tree in $BUILD"
mkdir -p "$BUILD"
cd "$BUILD"
if [ -d .build ] || [ -d chroot ]; then
	lb clean --binary >/dev/null 2>&1 || true
	lb clean >/dev/null
fi
rm -rf config auto
lb config \
	--mode debian \
	--distribution bookworm \
	--architecture amd64 \
	--archive-areas "main non-free-firmware" \
	--parent-archive-areas "main non-free-firmware" \
	--mirror-bootstrap "$MIRROR" \
	--mirror-chroot "$MIRROR" \
	--mirror-binary "$MIRROR" \
	--mirror-chroot-security "$SECURITY_MIRROR" \
	--mirror-binary-security "$SECURITY_MIRROR" \
	--parent-mirror-bootstrap "$MIRROR" \
	--parent-mirror-chroot "$MIRROR" \
	--parent-mirror-binary "$MIRROR" \
	--parent-mirror-chroot-security "$SECURITY_MIRROR" \
	--parent-mirror-binary-security "$SECURITY_MIRROR" \
	--security true \
	--updates true \
	--binary-image iso-hybrid \
	--bootloaders "syslinux,grub-efi" \
	--uefi-secure-boot enable \
	--debian-installer none \
	--memtest none \
	--firmware-chroot false \
	--firmware-binary false \
	--apt-recommends false \
	--apt-indices false \
	--linux-flavours amd64 \
	--chroot-squashfs-compression-type zstd \
	--chroot-squashfs-compression-level 19 \
	--iso-application "rescue $VERSION" \
	--iso-publisher "rescue project" \
	--iso-volume "RESCUE ${BASE_VERSION}" \
	--image-name rescue \
	--checksums sha256 \
	--zsync false \
	--cache true \
	--cache-packages true \
	--cache-stages bootstrap \
	--color false >/dev/null

cp -a "$ROOT/image-build/config/." config/
mkdir -p config/includes.chroot/opt/rescue config/includes.chroot/etc
cp -a "$WHEELS" config/includes.chroot/opt/rescue/wheels
echo "rescue $VERSION" >config/includes.chroot/etc/rescue-release
if [ -n "$TRUSTED_KEYS" ]; then
	bash "$ROOT/image-build/trusted-keys.sh" "$TRUSTED_KEYS" config/includes.chroot
fi

# Boot menus: iso/isolinux and iso/grub with @VARIABLES@ filled in; the binary hook
# 0100-rescue-menus puts them in place after live-build wrote its own.
# shellcheck source=../iso/boot.conf
. "$ROOT/iso/boot.conf"
mkdir -p config/rescue-menus
for dir in isolinux grub; do
	mkdir -p "config/rescue-menus/$dir"
	for f in "$ROOT/iso/$dir"/*.cfg; do
		sed -e "s|@APPEND@|$APPEND|g" -e "s|@VERSION@|$VERSION|g" -e "s|@DATE@|$BUILD_DATE|g" \
			-e "s|@TIMEOUT@|$TIMEOUT|g" -e "s|@TIMEOUT_DS@|$((TIMEOUT * 10))|g" \
			"$f" >"config/rescue-menus/$dir/$(basename "$f")"
	done
done

echo "== lb build (log: $OUT/build.log)"
if ! lb build >"$OUT/build.log" 2>&1; then
	tail -n 40 "$OUT/build.log" >&2
	echo "build.sh: lb build failed; full log in $OUT/build.log" >&2
	exit 1
fi
ISO=$(ls -t "$BUILD"/rescue-amd64.hybrid.iso "$BUILD"/*.hybrid.iso 2>/dev/null | head -n 1)
[ -n "$ISO" ] || { echo "build.sh: lb build made no ISO; see $OUT/build.log" >&2; exit 1; }

FINAL="$OUT/rescue-$BASE_VERSION-amd64.iso"
mv -f "$ISO" "$FINAL"
ln -sfn "$(basename "$FINAL")" "$OUT/rescue.iso"
elapsed=$(($(date +%s) - started))
size=$(stat -c %s "$FINAL")
cat >"$OUT/build.json" <<JSON
{"version": "$VERSION", "iso": "$FINAL", "size_bytes": $size, "build_seconds": $elapsed, "date": "$BUILD_DATE"}
JSON
echo "== $FINAL: $((size / 1024 / 1024)) MiB, built in ${elapsed}s"
echo "== what the parts cost (iso/out/size-report.json)"
bash "$ROOT/image-build/size-report.sh" "$BUILD" "$FINAL" "$OUT/size-report.json" ||
	echo "build.sh: the size report failed (the image is fine)" >&2
