#!/usr/bin/env python3
"""Checks that the workspace's `rust-version` (Cargo.toml) is at least the
`rust-version` every locked dependency declares, so that the minimum README states
is real. Reads the dependencies' manifests from cargo's registry sources (run after
a build or `cargo fetch`); a locked package whose sources are not there (one built
only for another platform) is left out and counted."""
import glob
import os
import re
import sys


def version(text):
    return tuple(int(x) for x in text.split(".")[:3]) + (0,) * (3 - len(text.split(".")[:3]))


root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
workspace = open(os.path.join(root, "Cargo.toml")).read()
stated = re.search(r'^rust-version\s*=\s*"([^"]+)"', workspace, re.M).group(1)
lock = open(os.path.join(root, "Cargo.lock")).read()
packages = re.findall(
    r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"\nsource = "registry', lock
)
home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
sources = glob.glob(os.path.join(home, "registry", "src", "*"))
too_new, absent = [], 0
for name, ver in packages:
    manifest = next(
        (p for p in (os.path.join(s, f"{name}-{ver}", "Cargo.toml") for s in sources) if os.path.exists(p)),
        None,
    )
    if manifest is None:
        absent += 1
        continue
    m = re.search(r'^rust-version\s*=\s*"([^"]+)"', open(manifest).read(), re.M)
    if m and version(m.group(1)) > version(stated):
        too_new.append(f"{name} {ver} needs Rust {m.group(1)}")
checked = len(packages) - absent
if checked == 0:
    sys.exit("msrv.py: no dependency sources found; run it after a build")
if too_new:
    print(f"msrv.py: Cargo.toml states rust-version {stated}, but:", *too_new, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"msrv.py: rust-version {stated} covers the {checked} locked dependencies found "
      f"({absent} built only for other platforms were not read)")
