# System tests: QEMU boots of restored disks (included by the top Makefile).
# The test system is built on first use and cached under /var/cache/rescue-tests.

.PHONY: boot-matrix test-system test-system-prune system-apt

system-apt:
	@missing=$$(for p in debootstrap qemu-system-x86 qemu-utils ovmf grub-pc-bin grub-efi-amd64-bin mtools dosfstools efibootmgr gdisk; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Build (or find in the cache) the three test-system disk images.
test-system: setup system-apt
	$(PY) tests/system/testsystem.py

# Every cell of the boot matrix; rewrites the table in docs/BOOT-MATRIX.md.
boot-matrix: setup system-apt
	RESCUE_BOOT_MATRIX=1 RESCUE_BOOT_MATRIX_REPORT=docs/BOOT-MATRIX.md \
		$(VENV)/bin/pytest -q -ra -p no:cacheprovider tests/system

# Remove cached test systems of older recipes from /var/cache/rescue-tests.
test-system-prune:
	$(PYTHON) tests/system/testsystem.py --prune
