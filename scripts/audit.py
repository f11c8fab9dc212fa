#!/usr/bin/env python
"""The result sentences of every page, counted: an aid to the audit of issue 22, not a test.

For each page of the navigation (its executed outputs, from the site's cache: run the tests or
build the site first) it prints the claims it states, how many of them are architecture facts,
the values glued into its prose, and the numbers its English and Chinese prose still write by
hand (digits outside code, math, links and headings: each one is either not a measurement — a
year, a chapter, a count fixed by the text — or a number to bring in through a claim or glue).

    python scripts/audit.py                 # every page
    python scripts/audit.py ablation.md -v  # one page, listing the hand-written numbers
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sitetools import executor, nav  # noqa: E402

from anatomy.claims import CLAIM_MIME, GLUE_MIME  # noqa: E402

_SKIP = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]+\$|\]\([^)]*\)|^#+ .*$|<[^>]+>|\{glue\}`[^`]*`|^---\n.*?\n---\n",
                   re.S | re.M)
_NUMBER = re.compile(r"(?<![\w.])\d[\d,.]*%?")
_NOT_MEASURED = re.compile(r"^(19|20)\d\d$|^[0-9]$")  # a year, a single digit (a chapter, "two models"...)


def hand_numbers(markdown: str) -> list[str]:
    """Numbers the prose writes by hand (not in code, math, links, headings or glue)."""
    prose = _SKIP.sub(" ", markdown)
    return [n.rstrip(".,") for n in _NUMBER.findall(prose) if not _NOT_MEASURED.match(n.rstrip(".,"))]


def page(name: str) -> dict:
    nb = executor().with_outputs(str(ROOT / "docs" / "en" / name))
    claims = [o["data"][CLAIM_MIME] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if CLAIM_MIME in o.get("data", {})]
    glued = [k for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             for k in o.get("data", {}).get(GLUE_MIME, {})]
    lines = [len(line) for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()]
    return {
        "claims": len(claims),
        "architecture": sum(c.get("kind") == "architecture" for c in claims),
        "glued": len(glued),
        "hand_en": hand_numbers((ROOT / "docs" / "en" / name).read_text(encoding="utf-8")),
        "hand_zh": hand_numbers((ROOT / "docs" / "zh" / name).read_text(encoding="utf-8")),
        "long_lines": sum(n > 100 for n in lines),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pages", nargs="*", help="pages of docs/en (default: every page with code)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the hand-written numbers")
    args = ap.parse_args()
    names = args.pages or [n for n in nav() if (ROOT / "docs" / "en" / n).read_text(encoding="utf-8").startswith("---\njupyter:")]
    print(f"{'page':28} {'claims':>6} {'arch.':>6} {'glued':>6} {'hand en':>8} {'hand zh':>8} {'lines>100':>9}")
    for name in names:
        p = page(name)
        print(f"{name:28} {p['claims']:6} {p['architecture']:6} {p['glued']:6} {len(p['hand_en']):8} "
              f"{len(p['hand_zh']):8} {p['long_lines']:9}")
        if args.verbose:
            print("   en:", ", ".join(p["hand_en"]))
            print("   zh:", ", ".join(p["hand_zh"]))


if __name__ == "__main__":
    main()
