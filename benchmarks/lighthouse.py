#!/usr/bin/env python
"""Lighthouse on the built site, as a phone meets it: the mobile preset, pages served compressed.

A benchmark, not a test (never run in CI). It installs Lighthouse 12.2.3 from npm into
.cache/lighthouse (git-ignored) when it is missing, serves the built site/ on 127.0.0.1 with gzip
as a static host would, runs Lighthouse's default mobile preset (simulated slow 4G and a 4x
slower CPU) in the Chromium the browser tests use (headless, --no-sandbox) on Start here and every
chapter in every language, one page at a time, and prints a table: page, language, performance,
accessibility, LCP, TBT, CLS and page weight (bytes transferred, compressed).

Usage (after `mkdocs build`):
    python benchmarks/lighthouse.py                       # every page of the navigation, 3 languages
    python benchmarks/lighthouse.py --pages index attention --langs en zh-TW
    python benchmarks/lighthouse.py --site other/site --json results.json --reports reports/

The machine's load shows in TBT (Lighthouse measures the page's own tasks, then scales them):
on a shared machine run it with `nice` and compare runs made under similar load.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import mimetypes
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE_VERSION = "12.2.3"
PREFIX = ROOT / ".cache" / "lighthouse"  # git-ignored (.cache/)
LANGS = ("en", "zh", "zh-TW")
COMPRESSIBLE = {"text/html", "text/css", "text/javascript", "application/javascript", "application/json",
                "text/xml", "application/xml", "image/svg+xml", "text/plain"}


def lighthouse() -> Path:
    """The Lighthouse CLI, installed from npm into .cache/lighthouse on first use."""
    cli = PREFIX / "node_modules" / "lighthouse" / "cli" / "index.js"
    installed = PREFIX / "node_modules" / "lighthouse" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == LIGHTHOUSE_VERSION:
        return cli
    if not shutil.which("npm"):
        sys.exit("npm is not installed; install Node.js 18+ and npm, then run this again.")
    PREFIX.mkdir(parents=True, exist_ok=True)
    if not (PREFIX / "package.json").exists():
        (PREFIX / "package.json").write_text('{"private": true}\n')
    print(f"installing lighthouse@{LIGHTHOUSE_VERSION} into {PREFIX.relative_to(ROOT)} ...", file=sys.stderr)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX), f"lighthouse@{LIGHTHOUSE_VERSION}"], check=True)
    return cli


class Compressed(http.server.SimpleHTTPRequestHandler):
    """Static files; text types gzip-compressed when the browser accepts it (as GitHub Pages or Netlify do)."""

    _cache: dict[Path, tuple[float, bytes]] = {}
    _lock = threading.Lock()

    def log_message(self, *args):
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            if not self.path.split("?")[0].endswith("/"):
                return super().send_head()  # the redirect to the folder's URL with a slash
            path = path / "index.html"
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if not path.is_file() or ctype not in COMPRESSIBLE or "gzip" not in self.headers.get("Accept-Encoding", ""):
            return super().send_head()
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._cache.get(path)
            if cached is None or cached[0] != mtime:
                cached = (mtime, gzip.compress(path.read_bytes(), compresslevel=6))
                self._cache[path] = cached
        body = cached[1]
        self.send_response(200)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype.startswith("text/") or ctype.endswith(("json", "javascript")) else ""))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        import io

        return io.BytesIO(body)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Compressed, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def nav() -> list[str]:
    """The pages of the navigation (mkdocs.yml), as stems: index, function-and-tokens, ..."""
    sys.path.insert(0, str(ROOT / "tests"))
    from sitetools import nav as _nav

    return [page.removesuffix(".md") for page in _nav()]


def url_of(base: str, stem: str, lang: str) -> str:
    return base + ("" if lang == "en" else f"{lang}/") + ("" if stem == "index" else f"{stem}/")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
    if not Path(found).exists():
        sys.exit("Chromium is not installed (apt-get install chromium); the browser tests use the same one.")
    return found


def run_one(cli: Path, url: str, browser: str, keep: Path | None = None) -> dict:
    """One Lighthouse run (mobile preset: Lighthouse's default) -> the numbers of the table."""
    cmd = ["node", str(cli), url, "--only-categories=performance,accessibility", "--output=json",
           "--output-path=stdout", "--quiet", f"--chrome-path={browser}",
           "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CHROME_PATH": browser})
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"lighthouse failed on {url}: {out.stderr.strip()[-500:]}")
    report = json.loads(out.stdout)
    if keep is not None:  # the whole report, for Lighthouse's viewer or a closer look
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(out.stdout, encoding="utf-8")
    if report.get("runtimeError"):
        raise RuntimeError(f"lighthouse failed on {url}: {report['runtimeError'].get('message')}")
    audits, cats = report["audits"], report["categories"]

    def score(cat):
        s = cats.get(cat, {}).get("score")
        return None if s is None else round(100 * s)

    return {
        "performance": score("performance"),
        "accessibility": score("accessibility"),
        "lcp_ms": audits["largest-contentful-paint"].get("numericValue"),
        "tbt_ms": audits["total-blocking-time"].get("numericValue"),
        "cls": audits["cumulative-layout-shift"].get("numericValue"),
        "fcp_ms": audits["first-contentful-paint"].get("numericValue"),
        "bytes": audits["total-byte-weight"].get("numericValue"),
    }


def _fmt(row: dict) -> str:
    def num(v, f):
        return "-" if v is None else f(v)

    return (f"{row['page']:<22} {row['lang']:<6} {num(row.get('performance'), str):>5} {num(row.get('accessibility'), str):>5} "
            f"{num(row.get('lcp_ms'), lambda v: f'{v / 1000:.1f} s'):>7} {num(row.get('tbt_ms'), lambda v: f'{v:.0f} ms'):>8} "
            f"{num(row.get('cls'), lambda v: f'{v:.3f}'):>6} {num(row.get('bytes'), lambda v: f'{v / 1024:.0f} KiB'):>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the built site (default: site/)")
    parser.add_argument("--pages", nargs="+", metavar="STEM", help="pages by file stem, e.g. index attention (default: the whole navigation)")
    parser.add_argument("--langs", nargs="+", choices=LANGS, default=list(LANGS), help="languages (default: all three)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--reports", type=Path, help="keep each page's full Lighthouse report (JSON) in this folder")
    args = parser.parse_args(argv)

    site = args.site.resolve()
    if not (site / "index.html").exists():
        sys.exit(f"{site} has no index.html; build the site first (.venv/bin/mkdocs build).")
    pages = nav()
    if args.pages:
        unknown = [p for p in args.pages if p not in pages]
        if unknown:
            sys.exit(f"not a page of the navigation: {', '.join(unknown)}; the pages are: {', '.join(pages)}")
        pages = [p for p in pages if p in args.pages]
    pages = [p for p in pages if p != "glossary"]  # Start here and the chapters
    cli, browser = lighthouse(), chromium()
    server, base = serve(site)
    rows = []
    header = f"{'page':<22} {'lang':<6} {'perf':>5} {'a11y':>5} {'LCP':>7} {'TBT':>8} {'CLS':>6} {'weight':>9}"
    print(header)
    print("-" * len(header), flush=True)
    started = time.time()
    try:
        for stem in pages:
            for lang in args.langs:
                row = {"page": stem, "lang": lang}
                try:
                    keep = args.reports / f"{lang}-{stem}.json" if args.reports else None
                    row.update(run_one(cli, url_of(base, stem, lang), browser, keep))
                except RuntimeError as err:
                    row["error"] = str(err)
                    print(f"{stem:<22} {lang:<6} {err}", flush=True)
                    rows.append(row)
                    continue
                rows.append(row)
                print(_fmt(row), flush=True)
    finally:
        server.shutdown()
    done = [r for r in rows if "error" not in r]
    if done:
        perf = [r["performance"] for r in done]
        print("-" * len(header))
        print(f"{len(done)} page(s) in {time.time() - started:.0f} s; performance min {min(perf)}, "
              f"pages below 90: {sum(p < 90 for p in perf)}; accessibility min {min(r['accessibility'] for r in done)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 1 if len(done) < len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
