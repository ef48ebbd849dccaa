# Live ISO / USB image targets (issue 5). `-include`d by the top Makefile.
# None of these run in `make test`: the build needs root, the network and ~5 minutes.
#
#   make iso                          build iso/out/rescue-VERSION-amd64.iso (+ iso/out/rescue.iso)
#   make iso-test                     build it if needed, then the ISO checks (tests/iso, QEMU)
#   make qemu [FIRMWARE=uefi]         boot it interactively with a sample repository disk
#                                     and a blank target disk (iso/out/qemu/)
#   make usb REPO=DIR OUT=FILE.img    a USB stick image: live system + data partition holding REPO
#   make iso-custom APPEND="..."      a copy of the ISO whose default entry adds kernel parameters
#   make iso-profile [FIRMWARE=bios]  where a boot spends its time (UEFI unless told): samples
#                                     the guest's CPUs (tests/iso/bootprofile.py; APPEND= adds
#                                     kernel parameters)
#   make iso TRUSTED_KEYS=DIR         the image trusts DIR/*.pub (/etc/rescue/trusted-keys/):
#                                     it restores only images signed by one of those keys

ISO_OUT ?= iso/out
ISO ?= $(ISO_OUT)/rescue.iso
ISO_APT := live-build debootstrap xorriso isolinux syslinux-common grub-pc-bin \
	grub-efi-amd64-bin mtools dosfstools qemu-system-x86 qemu-utils ovmf python3-venv \
	python3-dev build-essential pkg-config libparted-dev e2fsprogs fdisk gdisk \
	squashfs-tools samba nfs-ganesha nfs-ganesha-vfs
ISO_SOURCES := $(shell find image-build iso/isolinux iso/grub iso/boot.conf rescue \
	-type f ! -name '*.pyc' 2>/dev/null) pyproject.toml constraints.txt
FIRMWARE ?= bios
QEMU_DIR := $(ISO_OUT)/qemu

.PHONY: iso iso-apt iso-test iso-profile qemu usb iso-custom iso-clean FORCE

iso-apt:
	@missing=$$(for p in $(ISO_APT); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

TRUSTED_KEYS ?=
# Which keys the image trusts: rewritten (so the image is built again) only when the set
# of keys, or their contents, changes; also when TRUSTED_KEYS is dropped.
FORCE:
$(ISO_OUT)/trusted-keys.stamp: FORCE
	@mkdir -p $(ISO_OUT)
	@{ [ -z "$(TRUSTED_KEYS)" ] || (cd "$(TRUSTED_KEYS)" && sha256sum -- *.pub) || echo missing; } \
		>$@.new 2>/dev/null; \
	if cmp -s $@.new $@; then rm -f $@.new; else mv -f $@.new $@; fi

$(ISO_OUT)/build.json: $(ISO_SOURCES) $(ISO_OUT)/trusted-keys.stamp
	$(MAKE) iso-apt
	RESCUE_TRUSTED_KEYS="$(TRUSTED_KEYS)" bash image-build/build.sh $(ISO_OUT)

iso: $(ISO_OUT)/build.json
	@cat $(ISO_OUT)/build.json

iso-test: iso setup
	RESCUE_ISO_TESTS=1 RESCUE_ISO=$(ISO) $(VENV)/bin/pytest -v -p no:cacheprovider tests/iso $(PYTEST_ARGS)

iso-profile: iso setup
	$(PY) tests/iso/bootprofile.py --iso $(ISO) \
		--firmware $(if $(filter command line,$(origin FIRMWARE)),$(FIRMWARE),uefi) \
		--workdir $(ISO_OUT)/profile $(if $(APPEND),--append "$(APPEND)")

qemu: iso setup
	$(PY) tests/iso/qemu_session.py --iso $(ISO) --firmware $(FIRMWARE) --workdir $(QEMU_DIR) \
		$(if $(APPEND),--append "$(APPEND)")

usb: iso setup
	@test -n "$(REPO)" || { echo "usage: make usb REPO=/path/to/repo OUT=rescue-usb.img" >&2; exit 2; }
	$(PY) -m rescue make-usb --iso $(ISO) --repo "$(REPO)" $(if $(SIZE),--size $(SIZE)) \
		"$(or $(OUT),$(ISO_OUT)/rescue-usb.img)"

iso-custom: iso setup
	@test -n "$(APPEND)" || { echo 'usage: make iso-custom APPEND="rescue.x=y ..." [CUSTOM_OUT=file.iso]' >&2; exit 2; }
	$(PY) -m rescue make-usb --iso $(ISO) --append "$(APPEND)" --iso-only \
		"$(or $(CUSTOM_OUT),$(ISO_OUT)/rescue-custom.iso)"

iso-clean:
	-cd $(ISO_OUT)/build 2>/dev/null && lb clean --purge
	rm -rf $(ISO_OUT)
