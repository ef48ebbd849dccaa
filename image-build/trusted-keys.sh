#!/bin/bash
# Put the public keys of DIR into the live image's trust store, /etc/rescue/trusted-keys/:
# a live system with trusted keys restores only images one of them signed
# (docs/SECURITY.md, "Signed images"). `make iso TRUSTED_KEYS=DIR` runs it from build.sh.
#
#   image-build/trusted-keys.sh DIR INCLUDES_CHROOT
#
# Every DIR/*.pub must be one line as `rescue key create` writes it
# ("rescue-ed25519 <base64 of 32 bytes> NAME"); anything else (a private key, an empty
# folder, a damaged file) stops the build before a key is copied: an image that silently
# trusted fewer keys than asked would refuse good images, and one that trusted none
# would restore unsigned ones.
set -euo pipefail

src=${1:?usage: trusted-keys.sh DIR INCLUDES_CHROOT}
dest=${2:?usage: trusted-keys.sh DIR INCLUDES_CHROOT}/etc/rescue/trusted-keys
fail() { echo "trusted-keys.sh: $*" >&2; exit 1; }

[ -d "$src" ] || fail "$src is not a folder of public keys (NAME.pub)"
shopt -s nullglob
keys=("$src"/*.pub)
[ ${#keys[@]} -gt 0 ] || fail "$src holds no public key (*.pub); 'rescue key create NAME' makes one"
pattern='^rescue-ed25519 [A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]= [A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$'
for key in "${keys[@]}"; do
	[ -f "$key" ] || fail "$key is not a file"
	[ "$(grep -c '' "$key")" = 1 ] && grep -Eq "$pattern" "$key" ||
		fail "$key is not a rescue public key (one line: rescue-ed25519 <key> NAME)"
done
install -d -m 0755 "$dest"
for key in "${keys[@]}"; do
	install -m 0644 "$key" "$dest/$(basename "$key")"
	read -r _ b64 name <"$key"
	echo "trusted key $name: $(printf '%s' "$b64" | base64 -d | sha256sum | cut -c1-16)"
done
