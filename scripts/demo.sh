#!/usr/bin/env bash
# make demo: open the restore wizard on a demo image and a scratch disk.
#
# As root on Debian 12 (make demo has already run `make setup`: apt packages + .venv):
#   1. builds a small sample system (GPT: EFI vfat, ext4 root with a hostname and
#      os-release, swap) on a loop device and backs it up twice into demo/repo,
#   2. creates a blank 1 GiB scratch disk (another loop device),
#   3. opens `rescue wizard` limited to that scratch disk, with restart/shut down
#      simulated, so the whole restore can be walked without risk.
# Everything lives under demo/ (git-ignored); the loop devices are detached on exit.
# RESCUE_DEMO_LANG=de|fr|es starts the wizard in another language.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY="$ROOT/.venv/bin/python"
DEMO="$ROOT/demo"
MiB=$((1024 * 1024))

if [ "$(id -u)" -ne 0 ]; then
    echo "make demo needs root (loop devices, mkfs, mount); run it with sudo." >&2
    exit 1
fi
for tool in losetup sfdisk partx mkfs.ext4 mkfs.vfat mkswap udevadm; do
    command -v "$tool" >/dev/null || { echo "make demo: $tool is missing; run make setup." >&2; exit 1; }
done
mkdir -p "$DEMO"
"$PY" -m rescue.i18n compile >/dev/null

LOOPS=()
MOUNTED=""
cleanup() {
    if [ -n "$MOUNTED" ]; then umount "$MOUNTED" 2>/dev/null || true; fi
    for dev in "${LOOPS[@]}"; do
        partx -d "$dev" 2>/dev/null || true
        losetup -d "$dev" 2>/dev/null || true
    done
}
trap cleanup EXIT

attach() {  # attach FILE SIZE_MIB -> prints the loop device
    truncate -s "$(($2 * MiB))" "$1"
    local dev
    dev=$(losetup -f --show "$1")
    partx -d "$dev" 2>/dev/null || true
    echo "$dev"
}

settle() { partx -u "$1" 2>/dev/null || true; udevadm settle --timeout=10 || true; }

if [ ! -f "$DEMO/repo/rescue-repository.json" ] || [ -z "$(ls -A "$DEMO/repo/images" 2>/dev/null)" ]; then
    echo "Building a sample system and backing it up into demo/repo ..."
    rm -rf "$DEMO/repo" "$DEMO/tree" "$DEMO/source.img"
    SRC=$(attach "$DEMO/source.img" 192)
    LOOPS+=("$SRC")
    sfdisk --no-reread -q "$SRC" <<'LAYOUT'
label: gpt
size=32MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"
size=128MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"
LAYOUT
    settle "$SRC"
    T="$DEMO/tree"
    mkdir -p "$T/etc" "$T/home/demo/Documents" "$T/usr/bin" "$T/var/log"
    echo "demo-pc" > "$T/etc/hostname"
    echo "Europe/Berlin" > "$T/etc/timezone"
    printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n' > "$T/etc/os-release"
    for i in $(seq 1 200); do
        echo "Document $i: the quick brown fox jumps over the lazy dog." > "$T/home/demo/Documents/note$i.txt"
    done
    head -c $((8 * MiB)) /dev/urandom > "$T/usr/bin/demo-tool"
    mkfs.vfat -n EFI "${SRC}p1" >/dev/null
    mkfs.ext4 -q -F -L root -d "$T" "${SRC}p2"
    mkswap -L swap "${SRC}p3" >/dev/null
    "$PY" -m rescue backup --disk "$SRC" --repo "$DEMO/repo" --name "first backup"
    # A second image of the same computer, after a change: only the change is stored.
    mkdir -p "$DEMO/mnt"
    mount "${SRC}p2" "$DEMO/mnt"; MOUNTED="$DEMO/mnt"
    echo "changed after the first backup" > "$DEMO/mnt/home/demo/Documents/new.txt"
    umount "$DEMO/mnt"; MOUNTED=""
    sleep 1
    "$PY" -m rescue backup --disk "$SRC" --repo "$DEMO/repo" --name "weekly"
fi

TARGET=$(attach "$DEMO/scratch-disk.img" 1024)
LOOPS+=("$TARGET")
echo "Scratch target disk: $TARGET (demo/scratch-disk.img). Starting the wizard ..."
sleep 1
LANG_ARGS=()
if [ -n "${RESCUE_DEMO_LANG:-}" ]; then LANG_ARGS=(--lang "$RESCUE_DEMO_LANG"); fi
"$PY" -m rescue wizard --include-loop --disk "$TARGET" --repo "$DEMO/repo" \
    --no-media-search --simulate-power --log "$DEMO/wizard.log" "${LANG_ARGS[@]}" || status=$?
echo "The wizard log is in demo/wizard.log; the restored scratch disk was $TARGET."
exit "${status:-0}"
