"""Deployment zip size: ``chalice package`` (offline) on a clean copy of the project.

    .venv/bin/python bench/package_size.py

Prints the zip's size against the 1 MB budget, broken down by top-level entry. The zip is the
same for every stage (only the templates differ). Needs requirements.txt's wheels in
.venv/wheels, which `make` downloads (see tests/chalice_cli.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import table

from tests.chalice_cli import copy_project, package, zip_breakdown

BUDGET = 1_000_000
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024  # direct upload
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = package(copy_project(Path(tmp) / "project"), Path(tmp) / "package", stage="dev")
        path = out / "deployment.zip"
        size = path.stat().st_size
        parts = zip_breakdown(path)

    rows = [[name, files, f"{packed / 1024:.1f}", f"{unpacked / 1024:.1f}"]
            for name, (files, packed, unpacked) in sorted(parts.items(), key=lambda kv: -kv[1][1])]
    files = sum(p[0] for p in parts.values())
    unpacked = sum(p[2] for p in parts.values())
    rows.append(["total (zip file)", files, f"{size / 1024:.1f}", f"{unpacked / 1024:.1f}"])
    print("Deployment zip (chalice package), by top-level entry\n")
    print(table(["entry", "files", "zipped KiB", "unzipped KiB"], rows))
    print(f"\nzip: {size:,} bytes = {size / BUDGET:.0%} of the 1 MB budget; "
          f"{size / LAMBDA_ZIP_LIMIT:.1%} of Lambda's 50 MiB zip limit, "
          f"{unpacked / LAMBDA_UNZIPPED_LIMIT:.2%} of its 250 MiB unzipped limit")


if __name__ == "__main__":
    main()
