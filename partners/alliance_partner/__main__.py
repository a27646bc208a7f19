"""``alliance-partner`` (or ``python -m alliance_partner``): onboarding helpers.

keygen PATH    write a new EC P-256 private key (PEM, mode 0600) and print its public JWKS to register
jwks PATH      print the public JWKS of an existing private key (PEM)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from joserfc.jwk import ECKey

from alliance_partner._auth import load_private_key, public_jwks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alliance-partner", description="Alliance partner SDK helpers.")
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="create a private key for private_key_jwt; print its public JWKS")
    keygen.add_argument("path", type=Path, help="where to write the private key (PEM); refused if it exists")
    jwks = commands.add_parser("jwks", help="print the public JWKS of a private key (PEM)")
    jwks.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "keygen":
        key = ECKey.generate_key("P-256", private=True)
        descriptor = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key.as_pem(private=True))
        print(f"private key written to {args.path} (keep it secret; never send it)", file=sys.stderr)
    else:
        key = load_private_key(args.path)  # type: ignore[assignment]
    print(json.dumps(public_jwks(key), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
