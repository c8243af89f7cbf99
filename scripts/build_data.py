"""Regenerate the package data in rclaude_infra/data/ from ../shared/reference/aws-prices/.

Usage: python scripts/build_data.py [REFERENCE_DIR]

Each output CSV keeps the source's own ``#`` comment lines (where the numbers come from,
and when), so the provenance travels with the data inside the wheel.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "aws-prices"
DATA = ROOT / "rclaude_infra" / "data"


def _split(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    lines = path.read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    rows = list(csv.DictReader(line for line in lines if line and not line.startswith("#")))
    return comments, rows


def build_instance_types(reference: Path) -> Path:
    comments, rows = _split(reference / "ec2-instance-specs.csv")
    for row in rows:
        if row["arch"] not in {"x86_64", "arm64"}:
            raise SystemExit(f"unexpected arch {row['arch']!r} for {row['instance_type']}")
        int(row["vcpu"]), int(row["memory_mib"])
    out = DATA / "instance_types.csv"
    with out.open("w", newline="") as f:
        f.write("\n".join(comments) + "\n")
        writer = csv.DictWriter(f, ["instance_type", "vcpu", "memory_mib", "arch"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["instance_type"]))
    return out


def main(argv: list[str]) -> int:
    reference = Path(argv[1]) if len(argv) > 1 else DEFAULT_REFERENCE
    if not reference.is_dir():
        print(f"reference directory not found: {reference}", file=sys.stderr)
        return 2
    for path in (build_instance_types(reference),):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
