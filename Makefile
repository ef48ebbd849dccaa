# rescue: bare metal backup and recovery.
# `make test` and `make demo` install what they need (apt packages, a venv) themselves.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Debian packages the engine, the tests and the benchmarks call.
APT_PACKAGES := python3-venv python3-dev build-essential pkg-config libparted-dev parted \
	fdisk util-linux e2fsprogs dosfstools mtools xfsprogs btrfs-progs ntfs-3g partclone \
	zstd udev gdisk tmux attr kmod kbd cifs-utils lvm2 exfatprogs exfat-fuse f2fs-tools gettext \
	fuse3 rsync
# Extra packages for the system tests (QEMU boots) and the live image.
APT_SYSTEM := qemu-system-x86 qemu-utils ovmf debootstrap live-build xorriso isolinux \
	syslinux-common grub-pc-bin grub-efi-amd64-bin mtools

.PHONY: setup apt test test-unit lint demo bench clean help

help:
	@echo "make setup   install apt packages and the Python venv (.venv)"
	@echo "make test    run the whole test suite (needs root: loop devices, real filesystems)"
	@echo "make lint    ruff and mypy"
	@echo "make demo    open the wizard on a demo image and a scratch disk"
	@echo "make bench   benchmarks against partclone+zstd and dd; writes docs/PERFORMANCE.md"

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(MAKE) apt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m rescue.i18n compile
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check rescue tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: setup
	$(VENV)/bin/pytest -q

test-unit: setup
	$(VENV)/bin/pytest -q tests/unit

bench: setup
	$(PY) bench/run.py
	$(PY) bench/browse.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
-include iso/iso.mk
-include tests/system/system.mk

demo: setup
	bash scripts/demo.sh
