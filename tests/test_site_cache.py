"""The site's output cache never serves a stale figure, and a prose-only edit executes nothing.

A small copy of the project (the site hooks, a copy of `src/anatomy`, one chapter) is built three
times with mkdocs: once from scratch, once after a library function's output changed, once after
an edit to prose only. The chapter prints what the library returns and draws it in a figure.
"""

from __future__ import annotations

import os
import re
import shutil
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sitetools import ROOT, mkdocs_config

CHAPTER = """\
---
jupyter:
  jupytext:
    text_representation:
      extension: .md
      format_name: markdown
  kernelspec:
    display_name: Python 3
    language: python
    name: python3
---

# A chapter

PROSE

```python
import anatomy
import matplotlib.pyplot as plt

print("library at", anatomy.__file__)
version = dict(anatomy.versions().rows)["anatomy"]
print("anatomy says", version)
```

```python
fig, ax = plt.subplots(figsize=(2, 1))
ax.set_title(version)
plt.show()
```
"""


def _config() -> str:
    """The small project's mkdocs.yml: the real site's mkdocs-jupyter options and hooks."""
    real = mkdocs_config()
    jupyter = next(p["mkdocs-jupyter"] for p in real["plugins"] if isinstance(p, dict) and "mkdocs-jupyter" in p)
    return yaml.safe_dump({"site_name": "cache test", "docs_dir": "docs", "strict": True,
                           "plugins": [{"mkdocs-jupyter": jupyter}], "hooks": real["hooks"]})


def _build(project: Path) -> tuple[str, str]:
    """Build the small project; returns (the page's HTML, the build's log)."""
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "ANATOMY_SITE_CACHE": str(project / "cache")}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=project, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return (project / "site" / "index.html").read_text(encoding="utf-8"), out.stderr


def _figures(html: str, site: Path) -> list[bytes]:
    """The page's figures (files of the site, scripts/figures.py), as their bytes."""
    return [(site / src).read_bytes() for src in re.findall(r'<img [^>]*src="(assets/figures/[^"]+)"', html)]


def _three_builds() -> dict:
    """The builds of test_library_change_reexecutes_and_prose_edit_does_not, in a thread of its own.

    A small project (the hooks, a copy of src/anatomy, one chapter) is built from scratch, again
    after a library function's output changed, and again after an edit to prose only; each build's
    page, log and figures are kept for the test. Started early by the root conftest (start_early),
    so that the builds (three mkdocs processes, two chapter executions) run beside the other tests.
    """
    import tempfile

    import anatomy

    project = Path(tempfile.mkdtemp(prefix="anatomy-cache-test-"))
    (project / "scripts").mkdir()
    for script in (ROOT / "scripts").glob("*"):  # the hooks and the modules they load
        if script.is_file():
            shutil.copy(script, project / "scripts")
    shutil.copytree(ROOT / "src" / "anatomy", project / "src" / "anatomy", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "docs").mkdir()
    chapter = project / "docs" / "index.md"
    chapter.write_text(CHAPTER.replace("PROSE", "First words."), encoding="utf-8")
    (project / "mkdocs.yml").write_text(_config(), encoding="utf-8")
    init = project / "src" / "anatomy" / "__init__.py"
    builds = []

    def build():
        html, log = _build(project)
        builds.append((html, log, _figures(html, project / "site")))

    build()
    # A library function's output changes: the chapter must run again and the page show the new output.
    init.write_text(init.read_text(encoding="utf-8").replace(f'__version__ = "{anatomy.__version__}"', '__version__ = "9.9.9-changed"'), encoding="utf-8")
    build()
    # Only prose changes: nothing may execute, the page must have the new prose and the same outputs.
    chapter.write_text(CHAPTER.replace("PROSE", "Other words."), encoding="utf-8")
    build()
    return {"project": project, "builds": builds}


def start_early(items) -> None:
    """Called by the root conftest with the collected tests: the builds of the test below start now."""
    from sitetools import in_background

    if any(item.path.name == "test_site_cache.py" and item.name == "test_library_change_reexecutes_and_prose_edit_does_not" for item in items):
        in_background("cache-builds", _three_builds)


def test_library_change_reexecutes_and_prose_edit_does_not():
    import anatomy
    from sitetools import in_background

    found = in_background("cache-builds", _three_builds).result()
    project, builds = found["project"], found["builds"]
    try:
        (html, log, first_figures) = builds[0]
        assert f"library at {project / 'src' / 'anatomy'}" in html  # the copy is the library that ran
        assert f"anatomy says {anatomy.__version__}" in html
        assert "executed" in log
        assert len(first_figures) == 1

        # A library function's output changed: the chapter ran again and the page shows the new output.
        (html, log, figures) = builds[1]
        assert "anatomy says 9.9.9-changed" in html
        assert f"anatomy says {anatomy.__version__}" not in html
        assert "executed" in log
        assert figures != first_figures and len(figures) == 1  # the figure was drawn again

        # Only prose changed: nothing executed, the page has the new prose and the same outputs.
        second_figures = figures
        (html, log, figures) = builds[2]
        assert "Other words." in html and "First words." not in html
        assert "anatomy says 9.9.9-changed" in html and figures == second_figures
        assert "executed" not in log and "from the cache" in log
    finally:
        shutil.rmtree(project, ignore_errors=True)


def _key(*blocks: str) -> str:
    import nbformat

    from sitetools import executor

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(b) for b in blocks])
    return executor().page_key(nb, "fingerprint")


def test_a_hash_inside_a_string_is_code_not_a_comment():
    assert _key('print("Note #1")') != _key('print("Note #2")')
    assert _key("x = '#'  # a comment") != _key("x = '##'  # a comment")


def test_comments_and_blank_lines_do_not_change_the_key():
    assert _key("x = 1  # English comment\n\ny = 2") == _key("# 中文注释\nx = 1\ny = 2  # 另一条")
    assert _key("x = 1") != _key("x = 2")
    assert _key("x = 1", "y = 2") != _key("x = 1\ny = 2")  # blocks are kept apart


def _page(path: Path, *blocks: str) -> str:
    header = CHAPTER.split("# A chapter")[0]
    path.write_text(header + "# A page\n\n" + "\n\n".join(f"```python\n{b}\n```" for b in blocks) + "\n", encoding="utf-8")
    return str(path)


def test_prefetch_runs_pages_side_by_side_once_each_and_remembers_failures(tmp_path, monkeypatch):
    from sitetools import executor

    ex = executor()
    monkeypatch.setattr(ex, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(ex, "_executed", {})
    monkeypatch.setattr(ex, "_failed", {})
    monkeypatch.setattr(ex, "timings", {})
    stamp = tmp_path / "runs.txt"
    ok = [_page(tmp_path / f"p{i}.md", f"open({str(stamp)!r}, 'a').write('{i}')", f"print({i} * 7)") for i in range(3)]
    twin = _page(tmp_path / "twin.md", f"open({str(stamp)!r}, 'a').write('0')  # the same code as p0", "print(0 * 7)")
    bad = _page(tmp_path / "bad.md", "1 / 0")
    ex.prefetch([*ok, twin, bad], n_workers=2)
    assert sorted(stamp.read_text()) == ["0", "1", "2"]  # each key executed once; p0 and twin share one
    outputs_files = [f for f in (tmp_path / "cache").glob("*.json") if f.name != ex.DURATIONS]
    assert set(ex.timings) <= {*ok, twin, bad} and len(outputs_files) == 3
    durations = json.loads((tmp_path / "cache" / ex.DURATIONS).read_text())
    assert {"p0.md", "p1.md", "p2.md"} <= set(durations) and "bad.md" not in durations  # what ran to the end
    for i, path in enumerate(ok):
        outputs = ex.executed_outputs(ex.read(path), path)
        assert outputs[1][0][0]["text"].strip() == str(i * 7)
    with pytest.raises(ex.ChapterFailed, match="ZeroDivisionError"):
        ex.executed_outputs(ex.read(bad), bad)
    assert sorted(stamp.read_text()) == ["0", "1", "2"]  # nothing executed again


def test_longest_chapters_start_first(tmp_path, monkeypatch):
    """Pages are started longest-first by their last recorded time; never-timed pages before all, in the given order."""
    from sitetools import executor

    ex = executor()
    monkeypatch.setattr(ex, "CACHE", tmp_path)
    pages = ["docs/en/a.md", "docs/zh/b.md", "docs/en/new.md", "docs/en/c.md", "docs/en/other.md"]
    assert ex.longest_first(pages) == pages  # nothing timed yet: the caller's order
    (tmp_path / ex.DURATIONS).write_text(json.dumps({"a.md": 5.0, "b.md": 40.0, "c.md": 12.5}))
    assert ex.longest_first(pages) == ["docs/en/new.md", "docs/en/other.md", "docs/zh/b.md", "docs/en/c.md", "docs/en/a.md"]
