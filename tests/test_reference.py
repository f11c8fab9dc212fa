"""The reference pages: an API page for every public module of anatomy, and a references page that
every citation of the chapters links to (in the Markdown, and on the built site in all three languages).

The source checks run without a build; the built-site checks use the session's site build (the
`site_dir` fixture of tests/test_site.py, built once with `mkdocs build --strict`).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from sitetools import ROOT, script, mkdocs_config

DOCS = ROOT / "docs"
API = DOCS / "en" / "api"
reference = script("reference_hooks")


def _module_file(module: str) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for path in (ROOT / "src" / "anatomy" / rel / "__init__.py", (ROOT / "src" / "anatomy" / rel).with_suffix(".py")):
        if path.is_file():
            return path
    return None


def test_every_public_module_has_an_api_page():
    documented = {m for modules in reference.documented_modules(API).values() for m in modules}
    public = set(reference.public_modules())
    assert len(public) > 40  # the walk saw the package, its modules and the subpackages' modules
    assert public - documented == set(), "modules without an API page: add a ::: stub to docs/en/api"


def test_no_api_page_names_a_module_that_does_not_exist():
    pages = reference.documented_modules(API)
    missing = {page: m for page, modules in pages.items() for m in modules if _module_file(m) is None}
    assert missing == {}
    assert all(pages.values()), [p for p, m in pages.items() if not m]  # every page documents something


def test_every_api_page_is_in_the_navigation_and_nothing_else_is():
    section = next(item["API reference"] for item in mkdocs_config()["nav"] if "API reference" in item)
    listed = sorted(next(iter(entry.values())) for entry in section)
    assert listed == sorted(f"api/{p.name}" for p in API.glob("*.md"))


def test_the_api_navigation_is_translated():
    languages = next(p["i18n"] for p in mkdocs_config()["plugins"] if isinstance(p, dict) and "i18n" in p)["languages"]
    zh = next(lang for lang in languages if lang["locale"] == "zh")
    assert zh["nav_translations"]["API reference"] == "API 参考"
    assert zh["nav_translations"]["References"] == "参考文献"


def test_families_table_has_a_row_per_family_file():
    from anatomy import families

    rows = reference.family_rows()
    assert len(rows) == len(families._FILES)
    for file, row in zip(families._FILES, rows):
        assert all(f"<code>{t}</code>" in row[0] for t in file.MODEL_TYPES)
        assert "layer i: <code>" in row[1] and "final: <code>" in row[1]  # where the layers and the norms sit
        assert row[2].startswith("<code>") and " o <code>" in row[2]  # the attention module and its output projection
        assert "down <code>" in row[3] and "activation" in row[3]
    by_family = {re.search(r"<strong>(\w+)</strong>", r[0]).group(1): r for r in rows}
    assert "<code>transformer.h[i]</code>" in by_family["gpt2"][1]
    assert "parallel" in by_family["gpt_neox"][4]
    assert "<code>pre_feedforward_layernorm</code>" in by_family["gemma3"][1]


# --- the references page -------------------------------------------------------------------------
def _entries(lang: str) -> list[str]:
    return reference.entry_anchors((DOCS / lang / "references.md").read_text(encoding="utf-8"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_citation_link_in_the_chapters_names_an_entry(lang):
    entries = set(_entries(lang))
    cited = reference.citations(DOCS / lang)
    assert len(cited) >= 30
    assert set(cited) - entries == set(), "citations without an entry on the references page"
    assert entries - set(cited) == set(), "entries no page cites"


def test_both_languages_list_the_same_works_with_the_same_identifiers():
    en, zh = _entries("en"), _entries("zh")
    assert en == zh and len(en) == len(set(en))
    ids = [sorted(re.findall(r"arXiv:(\d{4}\.\d{4,5})", (DOCS / lang / "references.md").read_text(encoding="utf-8"))) for lang in ("en", "zh")]
    assert ids[0] == ids[1] and len(ids[0]) >= 30


def test_every_entry_has_a_link_or_a_publisher():
    text = (DOCS / "en" / "references.md").read_text(encoding="utf-8")
    blocks = re.split(r"^- (?=<a id=)", text, flags=re.M)[1:]
    assert len(blocks) == len(_entries("en"))
    for block in blocks:
        anchor = re.match(r'<a id="([\w-]+)">', block).group(1)
        assert re.search(r"\]\(https://", block) or "O'Reilly" in block, anchor
        assert re.search(r"\((19|20)\d\d\)", block), anchor
        lines = block.split("\n\n")[0].split("\n")[1:]  # the entry's own lines (a heading may follow it)
        assert all(line.startswith("  ") and not re.match(r"\s+\d+\. ", line) for line in lines if line), \
            f"{anchor}: a line of the entry would start a new list item"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_each_entry_is_followed_once_by_the_pages_citing_it(lang):
    page = (DOCS / lang / "references.md").read_text(encoding="utf-8")
    built = reference.with_back_links(page, DOCS / lang, lang, [p.name for p in sorted((DOCS / lang).glob("*.md"))])
    assert built.count("<small class=\"anatomy-cited\">") == len(_entries(lang))  # one line of back-links per entry, none elsewhere
    assert reference.entry_anchors(built) == _entries(lang)
    for block in re.split(r"^- (?=<a id=)", built, flags=re.M)[1:]:
        own = block.split("\n\n")[0].rstrip("\n").split("\n")
        assert own[-1].startswith("  <br><small class=\"anatomy-cited\">") and "](" in own[-1], own[0][:40]


# --- on the built site ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site_dir():
    from sitetools import site_build

    out, code, log = site_build()
    assert code == 0, log
    return out


LANGS = {"en": "", "zh": "zh/", "zh-TW": "zh-TW/"}


@pytest.mark.parametrize("lang", list(LANGS))
def test_on_the_site_every_citation_lands_on_its_entry(site_dir, lang):
    references = site_dir / LANGS[lang] / "references" / "index.html"
    ids = set(re.findall(r'id="([\w-]+)"', references.read_text(encoding="utf-8")))
    seen, broken = 0, []
    for page in (site_dir / LANGS[lang].rstrip("/")).glob("*/index.html") if lang != "en" else site_dir.glob("*/index.html"):
        if page.parent.name in ("references", "api", "zh", "zh-TW", "assets", "search"):
            continue
        for href in re.findall(r'href="([^"]*references/#[^"]*)"', page.read_text(encoding="utf-8")):
            parts = urlsplit(href)
            target = (page.parent / parts.path).resolve() / "index.html"
            seen += 1
            if target != references.resolve() or unquote(parts.fragment) not in ids:
                broken.append(f"{page.parent.name}: {href}")
    assert broken == []
    assert seen >= 60  # the chapters' citations were found on the built pages


@pytest.mark.parametrize("lang", list(LANGS))
def test_on_the_site_every_entry_links_back_to_the_chapters_citing_it(site_dir, lang):
    html = (site_dir / LANGS[lang] / "references" / "index.html").read_text(encoding="utf-8")
    article = html[html.index("<article"): html.index("</article>")]
    assert article.count("<small class=\"anatomy-cited\">") == len(_entries("en"))
    for anchor in _entries("en"):
        entry = article[article.index(f'id="{anchor}"'):]
        entry = entry[: entry.index("</li>")]
        assert re.search(r'<a href="\.\./(?:[\w-]+/)?">', entry), anchor


@pytest.mark.parametrize("lang", list(LANGS))
def test_on_the_site_the_api_reference_is_reached_in_every_language(site_dir, lang):
    root = site_dir / LANGS[lang]
    overview = (root / "api" / "index.html").read_text(encoding="utf-8")
    assert "Supported families" in overview and overview.count("<tr>") >= 12  # the generated table
    ablation = (root / "api" / "ablation" / "index.html").read_text(encoding="utf-8")
    assert 'id="anatomy.ablation.neuron_ablation"' in ablation  # rendered from the docstrings
    home = (root / "index.html").read_text(encoding="utf-8")
    assert 'href="api/"' in home  # in the navigation of the language's own pages


# --- reST roles in docstrings (scripts/docstring_roles.py) --------------------------------------
roles = script("docstring_roles")


def _objects(pkg):
    yield pkg
    for member in pkg.members.values():
        if not member.is_alias:
            yield from _objects(member)


def test_docstring_roles_become_links_to_objects_of_the_package():
    import griffe

    python = next(p["mkdocstrings"] for p in mkdocs_config()["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    assert "scripts/docstring_roles.py" in python["handlers"]["python"]["options"]["extensions"]  # the site uses it
    before = {o.path: o.docstring.value for o in _objects(griffe.load("anatomy", search_paths=[str(ROOT / "src")])) if o.docstring}
    pkg = griffe.load("anatomy", search_paths=[str(ROOT / "src")], extensions=griffe.load_extensions(roles.ReSTRoles))
    after = {o.path: o.docstring.value for o in _objects(pkg) if o.docstring}
    had = [path for path, text in before.items() if roles.ROLE.search(text)]
    assert len(had) >= 6  # the docstrings that named a function the Sphinx way (issue 21)
    assert [path for path, text in after.items() if roles.ROLE.search(text)] == []
    links = [(path, target) for path in had for target in re.findall(r"\]\[([\w.]+)\]", after[path])]
    assert len(links) >= len(had)
    for path, target in links:  # each link names an object of the package: autorefs finds its entry
        assert not pkg.modules_collection[target].is_alias, (path, target)
    assert "[`resume()`][anatomy.run.resume]" in after["anatomy.run.pause"]


def test_a_role_naming_no_object_becomes_plain_code():
    import griffe

    pkg = griffe.load("anatomy", search_paths=[str(ROOT / "src")])
    assert roles.rewrite(pkg["run"], "see :func:`no_such_thing` and :class:`~anatomy.Model`") == \
        "see `no_such_thing()` and [`anatomy.Model`][anatomy.model.Model]"


def test_on_the_site_no_docstring_shows_a_role(site_dir):
    shown = []
    for page in sorted((site_dir / "api").rglob("index.html")):
        article = page.read_text(encoding="utf-8")
        article = article[article.index("<article"): article.index("</article>")]
        shown += [f"{page.parent.name}: {m}" for m in re.findall(r":(?:func|meth|class|mod|attr):\S*", article)]
    assert shown == []
    run = (site_dir / "api" / "run" / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<a [^>]*href="#anatomy\.run\.resume"[^>]*>\s*<code>resume\(\)</code>', run), "no link to resume()"
