"""A chapter page keeps only the CSS rules that can apply to it.

mkdocs-jupyter inlines JupyterLab's whole stylesheet (about 590 kB: the lab's menus, panels,
editors and widgets) in a <style> block of every notebook page. The browser must parse all of it
before it draws the page, and on a phone that is most of the page's blocking time. A static page
uses a few dozen of those classes. `prune` keeps, in each large <style> block of a page, every
rule whose selector could match an element of the page (all its classes occur in the page),
every rule without a class, and every at-rule but @media/@supports, which are pruned inside.
Classes that mkdocs-material's script adds at run time (md-...) count as used. JupyterLab's custom
properties (--jp-...: its icons as SVG data, its palette) are kept when something kept uses them;
other custom properties (--md-..., read by material's stylesheet) are all kept.
A selector is kept whole when in doubt: classes inside :not(), :is(), :where() or :has() are not
required, and a rule kept because one of its selectors matches keeps all of them.
"""

from __future__ import annotations

import functools
import re

import tinycss2

LARGE = 20_000  # characters: smaller <style> blocks (the page's own, pygments) are left as they are
_STYLE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S | re.I)
_CLASS_ATTR = re.compile(r'\bclass\s*=\s*(?:"([^"]*)"|\'([^\']*)\'|([^\s>"\']+))', re.I)
_CLASS_IN_SELECTOR = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
_PAREN = re.compile(r"\([^()]*\)")


RUNTIME_PREFIX = "md-"  # classes mkdocs-material's script adds once the page runs (md-typeset__scrollwrap...)
OWN_VARIABLES = "--jp-"  # JupyterLab's custom properties, used only by its stylesheet; others (--md-...) are kept


def classes_of(html: str) -> frozenset[str]:
    """Every class name used by an element of the page."""
    found = set()
    for m in _CLASS_ATTR.finditer(html):
        found.update((m.group(1) or m.group(2) or m.group(3) or "").split())
    return frozenset(found)


def _may_be_used(name: str, used: frozenset[str]) -> bool:
    return name in used or name.startswith(RUNTIME_PREFIX)


def _split_selectors(prelude: str) -> list[str]:
    """'a, b:is(c, d)' -> ['a', 'b:is(c, d)'] (commas inside brackets do not separate)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(prelude):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(prelude[start:i].strip())
            start = i + 1
    parts.append(prelude[start:].strip())
    return [p for p in parts if p]


def _required_classes(selector: str) -> set[str]:
    bare = re.sub(r"\[[^\]]*\]", "", selector)  # attribute values may contain dots
    while _PAREN.search(bare):  # arguments of :not(), :is(), :nth-child()... are not required
        bare = _PAREN.sub("", bare)
    return set(_CLASS_IN_SELECTOR.findall(bare))


def _kept(rules, used: frozenset[str]) -> list:
    """The rules that can apply: ("rule", selectors, declarations) | ("block", header, children) | ("raw", text)."""
    out = []
    for rule in rules:
        if rule.type == "qualified-rule":
            selectors = _split_selectors(tinycss2.serialize(rule.prelude))
            if any(all(_may_be_used(c, used) for c in _required_classes(s)) for s in selectors):
                decls = [d for d in tinycss2.parse_declaration_list(rule.content, skip_comments=True, skip_whitespace=True)
                         if d.type == "declaration"]
                out.append(("rule", ",".join(selectors), decls))
        elif rule.type == "at-rule" and rule.lower_at_keyword in ("media", "supports") and rule.content is not None:
            inner = _kept(tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True), used)
            if inner:
                out.append(("block", f"@{rule.at_keyword}{tinycss2.serialize(rule.prelude).rstrip()}", inner))
        elif rule.type == "at-rule":
            out.append(("raw", rule.serialize()))
        # comments, whitespace and parse errors are dropped
    return out


_VAR = re.compile(r"var\(\s*(--[\w-]+)")


def _walk(nodes):
    for node in nodes:
        if node[0] == "block":
            yield from _walk(node[2])
        else:
            yield node


def _serialize(nodes, variables: set[str]) -> str:
    out = []
    for node in nodes:
        if node[0] == "rule":
            body = ";".join(f"{d.name}:{tinycss2.serialize(d.value).strip()}{' !important' if d.important else ''}"
                            for d in node[2] if not d.name.startswith(OWN_VARIABLES) or d.name in variables)
            if body:
                out.append(f"{node[1]}{{{body}}}")
        elif node[0] == "block":
            inner = _serialize(node[2], variables)
            if inner:
                out.append(f"{node[1]}{{{inner}}}")
        else:
            out.append(node[1])
    return "\n".join(out)


def _pruned(css: str, used: frozenset[str], outside: str) -> str:
    """`css` reduced to what the page can use; `outside` is the rest of the page (its var() uses count)."""
    nodes = _kept(_parsed(css), used)
    # Custom properties (--jp-...: JupyterLab's icons as SVG data, its palette) are kept when used:
    # by a kept declaration, by the page, or by another kept custom property.
    defined: dict[str, list[str]] = {}
    refs = set(_VAR.findall(outside))
    for node in _walk(nodes):
        if node[0] == "raw":
            refs.update(_VAR.findall(node[1]))
            continue
        for d in node[2]:
            value = tinycss2.serialize(d.value)
            if d.name.startswith("--"):
                defined.setdefault(d.name, []).append(value)
            else:
                refs.update(_VAR.findall(value))
    todo, variables = list(refs), set()
    while todo:
        name = todo.pop()
        if name in variables:
            continue
        variables.add(name)
        for value in defined.get(name, []):
            todo.extend(_VAR.findall(value))
    return _serialize(nodes, variables)


@functools.lru_cache(maxsize=16)
def _parsed(css: str):
    return tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)


def prune(html: str) -> str:
    """The page with each large <style> block reduced to the rules that can apply to the page."""
    used = classes_of(html)
    outside = _STYLE.sub(lambda m: m.group(0) if len(m.group(2)) < LARGE else "", html)

    def one(m: re.Match) -> str:
        if len(m.group(2)) < LARGE:
            return m.group(0)
        return m.group(1) + _pruned(m.group(2), used, outside) + m.group(3)

    return _STYLE.sub(one, html)
