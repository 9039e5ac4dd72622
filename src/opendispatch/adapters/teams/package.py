"""Zip `manifest/teams/` into the app package Teams accepts for upload.

    python -m opendispatch.adapters.teams.package OUT.zip [APP_ID]

The manifest in the repository names the bot as `{{TEAMS_APP_ID}}`; the package gets the
real Microsoft App ID (from the argument, else the TEAMS_APP_ID variable), because Teams
routes messages by that id. The zip holds the three files at its root, as Teams requires.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from pathlib import Path

PLACEHOLDER = "{{TEAMS_APP_ID}}"
MANIFEST_DIR = Path(__file__).resolve().parents[4] / "manifest" / "teams"
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class PackageError(Exception):
    """The package cannot be built; the message says what to fix."""


def build_package(out: Path, app_id: str, *, manifest_dir: Path = MANIFEST_DIR) -> Path:
    """Write the zip to `out` and return it."""
    if not _GUID.fullmatch(app_id.strip()):
        raise PackageError(f"the app id must be the bot's Microsoft App ID (a GUID), not {app_id!r}")
    manifest_path = manifest_dir / "manifest.json"
    if not manifest_path.is_file():
        raise PackageError(f"no manifest at {manifest_path}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8").replace(PLACEHOLDER, app_id.strip()))
    icons = [manifest["icons"]["color"], manifest["icons"]["outline"]]
    for icon in icons:
        if not (manifest_dir / icon).is_file():
            raise PackageError(f"the manifest names icon {icon}, which is missing from {manifest_dir}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for icon in icons:
            archive.write(manifest_dir / icon, arcname=icon)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m opendispatch.adapters.teams.package OUT.zip [APP_ID]", file=sys.stderr)
        return 2
    app_id = args[1] if len(args) == 2 else os.environ.get("TEAMS_APP_ID", "")
    if not app_id:
        print("Give the Microsoft App ID as the second argument or set TEAMS_APP_ID.", file=sys.stderr)
        return 2
    try:
        out = build_package(Path(args[0]), app_id)
    except PackageError as exc:
        print(f"Cannot build the Teams package: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {out}: upload it in Teams (Apps → Manage your apps → Upload an app).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
