"""Regenerate the package data in rclaude_infra/data/ from ../shared/reference/aws-prices/.

Usage: python scripts/build_data.py [REFERENCE_DIR]

Each output CSV keeps the source's own ``#`` comment lines (where the numbers come from,
and when), so the provenance travels with the data inside the wheel.
"""

from __future__ import annotations

import csv
import json
import re
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


def _provenance(comments: list[str]) -> dict[str, str | None]:
    """The source lines of a reference file, and the first date they state."""
    lines = [c.lstrip("# ").strip() for c in comments if c.lstrip("# ").startswith("source")]
    text = " ".join(lines)
    date = re.search(r"\d{4}-\d{2}-\d{2}", text)
    return {"source": text, "date": date.group(0) if date else None}


def build_sources(reference: Path) -> Path:
    """Where each region's EC2 prices come from, and when: data/price_sources.json."""
    sources = {
        "ec2_on_demand": {
            path.stem.removeprefix("ec2-on-demand-"): _provenance(_split(path)[0])
            for path in sorted(reference.glob("ec2-on-demand-*.csv"))
        },
        "instance_types": _provenance(_split(reference / "ec2-instance-specs.csv")[0]),
    }
    out = DATA / "price_sources.json"
    out.write_text(json.dumps(sources, indent=2, sort_keys=True) + "\n")
    return out


def _by_region(reference: Path, pattern: str, prefix: str, out_name: str,
               columns: list[str], number: str) -> Path:
    """Concatenate per-region reference files into one, with a region column; each
    region's source comments are kept, indented under its name."""
    out = DATA / out_name
    header: list[str] = []
    rows: list[dict[str, str]] = []
    for path in sorted(reference.glob(pattern)):
        region = path.stem.removeprefix(prefix)
        comments, region_rows = _split(path)
        header.append(f"# region {region}:")
        header += [f"#   {line.lstrip('# ')}" for line in comments]
        for row in region_rows:
            float(row[number])  # every price parses
            rows.append({"region": region, **row})
    with out.open("w", newline="") as f:
        f.write("\n".join(header) + "\n")
        writer = csv.DictWriter(f, ["region", *columns])
        writer.writeheader()
        writer.writerows(rows)
    return out


def build_ec2_prices(reference: Path) -> Path:
    """Every region's on-demand Linux prices in one file: region,instance_type,usd_per_hour."""
    return _by_region(reference, "ec2-on-demand-*.csv", "ec2-on-demand-", "ec2_on_demand.csv",
                      ["instance_type", "usd_per_hour"], "usd_per_hour")


#: Prices the reference lacks (CodeBuild), kept with the project, a source on each row.
EXTRA_PRICES = ROOT / "scripts" / "prices-extra.csv"


def build_other_prices(reference: Path) -> Path:
    """Non-EC2 prices, one region per source file: region,item,unit,usd,source; then the
    rows of :data:`EXTRA_PRICES`."""
    out = _by_region(reference, "other-prices-*.csv", "other-prices-", "other_prices.csv",
                     ["item", "unit", "usd", "source"], "usd")
    comments, rows = _split(EXTRA_PRICES)
    for row in rows:
        float(row["usd"])
    with out.open(newline="") as f:
        text = f.read()
    header_end = text.index("\nregion,item,") + 1
    with out.open("w", newline="") as f:
        f.write(text[:header_end] + "# extra (scripts/prices-extra.csv):\n"
                + "\n".join(f"#   {line.lstrip('# ')}" for line in comments) + "\n"
                + text[header_end:])
        csv.DictWriter(f, ["region", "item", "unit", "usd", "source"]).writerows(rows)
    return out


def main(argv: list[str]) -> int:
    reference = Path(argv[1]) if len(argv) > 1 else DEFAULT_REFERENCE
    if not reference.is_dir():
        print(f"reference directory not found: {reference}", file=sys.stderr)
        return 2
    for path in (
        build_instance_types(reference),
        build_ec2_prices(reference),
        build_other_prices(reference),
        build_sources(reference),
    ):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
