"""mkdocs hooks: one search index per language, with Chinese split into words.

mkdocs-material's search plugin writes one index, `search/search_index.json` at the site root,
and every page fetches it from there (`search/search_index.json` under the page's `base` in
material's `__config`). With mkdocs-static-i18n every language is built in turn into the same
site directory, and the i18n plugin finally writes all languages' entries into that one index,
under one search configuration (the first language's). So every page downloaded the three
languages' index, results mixed the languages, and Chinese was cut with the English separator.

These hooks, registered after scripts/site_hooks.py in mkdocs.yml:

* before the pages are indexed, add every glossary term and every chapter title of every
  language to jieba's dictionary (material cuts Chinese text into words with jieba at build time
  and joins them with U+200B, which the separator in mkdocs.yml splits on), so that 残差流,
  稀疏自編碼器 or 術語表 is one word of the index. This matters because in the browser material
  cuts a typed Chinese query into words of the index (longest known prefixes) and looks each
  one up as a prefix: a term the index holds in pieces (残差 + 流) would be looked up by pieces;
* give the glossary's entries a search boost (material's `search.boost`): a term typed alone
  ("Layer") lists its definition among the first results, with the chapters that use it;
* after the i18n plugin has written its merged index, split it by language: the pages under
  `zh/` go to `zh/search/search_index.json`, those under `zh-TW/` to `zh-TW/...`, the others
  stay at the root, with locations relative to that root (the search settings of mkdocs.yml
  suit every language: see the comment there);
* point every page's `base` (in material's `__config`) at its language root, where material's
  script then fetches the index and resolves the results' locations. Nothing else on our pages
  reads `base` (no `navigation.instant`, no version selector; the language menu falls back to
  the alternate link, as before).

A site without the i18n plugin or without search (the small project of tests/test_site_cache.py)
is left as it is.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from mkdocs import plugins, utils
from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.search_index")

INDEX = "search/search_index.json"
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2,}")
_CONFIG = re.compile(r'<script id="__config" type="application/json">(.*?)</script>', re.S)
_BASE = re.compile(r'"base": "[^"]*"')
_TERM_HEADING = re.compile(r"^## (.+?) \{#[\w-]+\}\s*$", re.M)  # as scripts/site_hooks.glossary_terms reads them


def languages(config) -> tuple[str, list[str]] | None:
    """The default locale (the site root) and every built locale, from the i18n plugin's configuration;
    None when the site has no i18n plugin or no search (one language has one index already)."""
    i18n = config.plugins.get("i18n")
    if i18n is None or "search" not in config.plugins and "material/search" not in config.plugins:
        return None
    default = next(lang.locale for lang in i18n.config.languages if lang.default)
    return default, [lang.locale for lang in i18n.config.languages if lang.build]


def language_of(location: str, default: str, locales: list[str]) -> str:
    """The language of a page from its URL or index location: zh/x/ is zh, zh-TW/x/#y is zh-TW, x/ the default."""
    first = location.split("/", 1)[0]
    return first if first in locales and first != default else default


def reader_words(config, locales: list[str]) -> set[str]:
    """The Chinese words a reader types: runs of two or more Han characters of every glossary term
    (残差流; KV 缓存 -> 缓存) and of every chapter title in the navigation (换个角度看表征, 投影与探针)."""
    phrases = []
    for locale in locales:
        glossary = Path(config["docs_dir"]) / locale / "glossary.md"
        if glossary.exists():
            phrases += [heading.split("（")[0] for heading in _TERM_HEADING.findall(glossary.read_text(encoding="utf-8"))]
    for lang in config.plugins["i18n"].config.languages:  # zh-TW's titles are set from zh's by scripts/site_hooks.py
        phrases += list((lang.nav_translations or {}).values())
    return {word for phrase in phrases for word in _HAN.findall(phrase)}


_ADDED: set[str] = set()


@plugins.event_priority(-110)  # after the i18n plugin's on_config, which sets the language; docs/zh-TW exists by then
def on_config(config):
    import jieba  # material's search plugin segments with the same (global) jieba

    jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict ..." lines are progress, not news
    if languages(config) is None:
        return config
    words = sorted(reader_words(config, languages(config)[1]) - _ADDED)
    for word in words:
        jieba.add_word(word)  # with the frequency jieba suggests, so that the term is never cut apart
    if words:
        log.info("search: %d glossary and title words added to jieba's dictionary", len(words))
    _ADDED.update(words)
    return config


GLOSSARY_BOOST = 4  # a term every chapter uses ("Layer", "Logit") still lists its definition among the first results


API_BOOST = 0.5  # the API reference uses the book's words everywhere ("layer"); it ranks below the book's pages


def on_page_markdown(markdown, page, config, files):
    if Path(page.file.src_uri).name == "glossary.md":
        page.meta.setdefault("search", {}).setdefault("boost", GLOSSARY_BOOST)
    elif "api" in Path(page.file.src_uri).parts[:-1]:
        page.meta.setdefault("search", {}).setdefault("boost", API_BOOST)
    return markdown


@plugins.event_priority(-110)  # after material's __config is rendered; the i18n plugin's on_post_page is at -100
def on_post_page(output, page, config):
    if languages(config) is None or config.theme.name != "material":
        return output
    default, locales = languages(config)
    lang = language_of(page.url, default, locales)
    if lang == default:
        return output
    base = utils.get_relative_url(f"{lang}/", page.url)
    script = _CONFIG.search(output)
    if script is None or len(_BASE.findall(script.group(1))) != 1:
        raise PluginError(f"{page.file.src_uri}: material's __config script was not found; the page could not be pointed at its language's search index.")
    settings = _BASE.sub(lambda _: f'"base": {json.dumps(base)}', script.group(1))
    return output[: script.start(1)] + settings + output[script.end(1):]


@plugins.event_priority(-110)  # after the i18n plugin (-100), which writes the merged index at the end of the last build
def on_post_build(config):
    if languages(config) is None:
        return
    default, locales = languages(config)
    site = Path(config["site_dir"])
    merged = json.loads((site / INDEX).read_text(encoding="utf-8"))
    docs = {locale: [] for locale in locales}
    for entry in merged["docs"]:
        lang = language_of(entry["location"], default, locales)
        if lang != default:
            entry = dict(entry, location=entry["location"].removeprefix(f"{lang}/"))
        docs[lang].append(entry)
    # Each language build calls this too, with its own entries only: write the languages it has.
    # The last call (the default language's, after every build) writes them all.
    for locale, entries in docs.items():
        if not entries:
            continue
        index = {"config": merged["config"], "docs": entries}
        root = site if locale == default else site / locale
        utils.write_file(json.dumps(index, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), str(root / INDEX))
