#!/usr/bin/env python3
"""Build `sidecar/sprite-reporter`, the one file a sprite image copies, from `sidecar/src/`.

The sidecar is developed as a package of small modules (`src/sprite_reporter/`) but shipped
as a single executable zipapp, so an image still needs only `python3` and one file. The
build is deterministic (sorted entries, a fixed timestamp and mode, no compression, no
`__pycache__`): the same sources always give the same bytes, so a test can hold the
committed file to its sources (tests/sidecar/test_build.py).

Entries are stored, not deflated: deflate's bytes may change with the zlib version, and a
build on another machine must give the same file.

Usage: python3 sidecar/build.py [--output PATH]   (default: sidecar/sprite-reporter)
Python >= 3.9, standard library only.
"""

import argparse
import io
import os
import stat
import sys
import zipfile
from pathlib import Path
from typing import List, Optional, Tuple

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
PACKAGE = "sprite_reporter"
DEFAULT_OUTPUT = HERE / "sprite-reporter"

SHEBANG = b"#!/usr/bin/env python3\n"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
ENTRY_MODE = 0o644

# The zip's own entry point: `python3 sprite-reporter` runs this with the zip on sys.path.
ROOT_MAIN = '''"""sprite-reporter, built by sidecar/build.py from sidecar/src/sprite_reporter; do not edit."""

import sys

from sprite_reporter.cli import main

sys.exit(main())
'''


def package_files(sources: Path = SOURCES) -> List[Tuple[str, bytes]]:
    """(name in the zip, content) of every module of the package, sorted by name."""
    entries = []
    for path in sorted((sources / PACKAGE).rglob("*.py")):
        relative = path.relative_to(sources)
        if "__pycache__" in relative.parts:
            continue
        entries.append((relative.as_posix(), path.read_bytes()))
    if not entries:
        raise SystemExit(f"build.py: no modules under {sources / PACKAGE}")
    return entries


def build_bytes(sources: Path = SOURCES) -> bytes:
    """The zipapp's bytes: the shebang line, then a zip of __main__.py and the package."""
    entries = [("__main__.py", ROOT_MAIN.encode("utf-8"))] + package_files(sources)
    output = io.BytesIO()
    output.write(SHEBANG)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = (stat.S_IFREG | ENTRY_MODE) << 16
            info.create_system = 3  # unix, whatever machine builds it
            archive.writestr(info, data)
    return output.getvalue()


def build(output: Path = DEFAULT_OUTPUT, sources: Path = SOURCES) -> Path:
    """Write the zipapp to `output` (atomically) with its executable bits set."""
    data = build_bytes(sources)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_bytes(data)
    os.chmod(temporary, 0o755)
    os.replace(temporary, output)
    return output


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Build sidecar/sprite-reporter from sidecar/src.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the zipapp")
    args = parser.parse_args(argv)
    path = build(args.output)
    print(f"built {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
