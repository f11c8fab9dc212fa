"""A griffe extension for the API pages: reST cross-reference roles in docstrings become links.

A few docstrings of `anatomy` name another function the Sphinx way (``:func:`resume```,
``:class:`anatomy.Projection```). mkdocstrings renders docstrings as Markdown, where such a role
is printed as it stands (":func:" before the name). When the package has been read, each role
becomes an autorefs cross-reference (``[`resume()`][anatomy.run.resume]``), a link to that
object's entry on its API page, when the name is an object of the package (looked up as written,
in the docstring's module, in its class, and in ``anatomy``); otherwise plain code. mkdocs.yml
loads it in mkdocstrings' Python handler (``extensions``); tests/test_reference.py checks it.
"""

from __future__ import annotations

import re

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(func|meth|class|mod|attr|data|exc|obj):`~?([\w.]+)`")
_CALLABLE = {"func", "meth"}


def _lookup(collection, path: str):
    try:
        obj = collection[path]
        return obj.final_target if obj.is_alias else obj
    except Exception:  # not a member (KeyError), or an alias that does not resolve
        return None


def target(obj, name: str) -> str | None:
    """The path of the object that ``name`` means in ``obj``'s docstring, or None."""
    collection = obj.modules_collection
    places = [name, f"{obj.module.path}.{name}", f"{obj.module.package.path}.{name}"]
    if obj.parent is not None and obj.parent.is_class:
        places.insert(1, f"{obj.parent.path}.{name}")
    for place in places:
        found = _lookup(collection, place)
        if found is not None:
            return found.path
    return None


def rewrite(obj, text: str) -> str:
    """The docstring with every role replaced by a cross-reference (or plain code, for a name not found)."""

    def one(m: re.Match) -> str:
        role, name = m.group(1), m.group(2)
        shown = f"`{name}()`" if role in _CALLABLE else f"`{name}`"
        path = target(obj, name)
        return f"[{shown}][{path}]" if path else shown

    return ROLE.sub(one, text)


def _walk(obj):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


class ReSTRoles(Extension):
    """Rewrites the roles of every docstring of a package once it is loaded."""

    def on_package(self, *, pkg, **kwargs) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None and ROLE.search(obj.docstring.value):
                obj.docstring.value = rewrite(obj, obj.docstring.value)
