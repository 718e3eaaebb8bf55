"""Checks that the Dockerfile's placeholder build stage writes a file for every target
Cargo.toml declares (cargo refuses a manifest whose target files are missing), so that a
target added to Cargo.toml cannot break the image unseen. There is no Docker engine in CI."""

import pathlib
import re
import sys
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
manifest = tomllib.loads((root / "Cargo.toml").read_text())
targets = [manifest["lib"]["path"]]
for kind in ("bin", "test", "bench", "example"):
    targets += [t["path"] for t in manifest.get(kind, [])]
dockerfile = (root / "Dockerfile").read_text()
written = set(re.findall(r">\s*(\S+\.rs)", dockerfile))
missing = [t for t in targets if t not in written]
if missing:
    sys.exit(f"Dockerfile: no placeholder for the Cargo.toml targets {missing}")
print(f"Dockerfile: a placeholder for each of the {len(targets)} Cargo.toml targets")
