"""rescue key create | show: signing keys for images (docs/SECURITY.md, "Signed images")."""

from __future__ import annotations

import argparse
import os

from rescue import services
from rescue.errors import KeyFileError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("key", help="make or show a key that signs images",
                       description="Keys sign images (rescue backup --sign NAME.key) so that "
                       "a restore can tell who made an image. Put NAME.pub into "
                       "/etc/rescue/trusted-keys/ (or 'make iso TRUSTED_KEYS=DIR', or "
                       "--trust) where images are restored.")
    keys = p.add_subparsers(dest="key_command", metavar="ACTION")
    keys.required = True
    c = keys.add_parser("create", help="make a new key pair: NAME.key (secret) and NAME.pub",
                        description="Make a new Ed25519 key pair: NAME.key (the private key, "
                        "mode 0600: keep it secret, off the repository) and NAME.pub (the "
                        "public key, for trust stores). Never overwrites a file.")
    c.add_argument("name", metavar="NAME",
                   help="the key's name (letters, digits, . _ @ + -), e.g. it-dept")
    c.add_argument("--dir", default=".", help="the folder for both files (default: here)")
    c.set_defaults(func=cmd_key_create)
    s = keys.add_parser("show", help="show a key file's name and fingerprint")
    s.add_argument("file", metavar="FILE", help="NAME.pub or NAME.key")
    s.set_defaults(func=cmd_key_show)


def cmd_key_create(args: argparse.Namespace) -> int:
    os.makedirs(args.dir, exist_ok=True)
    key_path, pub_path, public = services.create_key(args.name, args.dir)
    print(f"Private key {key_path} (mode 0600: keep it secret; anyone holding it can sign "
          f"images)")
    print(f"Public key  {pub_path}")
    print(f"Fingerprint {public.fingerprint}  ({public.name})")
    return 0


def cmd_key_show(args: argparse.Namespace) -> int:
    try:
        public, kind = services.load_public_key(args.file), "public key"
    except KeyFileError:
        try:
            public, kind = services.load_signer(args.file).public, "private key"
        except KeyFileError:
            raise KeyFileError(f"{args.file} is neither a rescue public key nor a rescue "
                               "private key.") from None
    print(f"{args.file}: {kind} {public.name}, fingerprint {public.fingerprint}")
    if kind == "private key":
        print("Its public key (for a .pub file):")
        print(public.line(), end="")
    return 0
