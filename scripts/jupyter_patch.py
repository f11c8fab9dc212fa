"""The one place the site build reaches into mkdocs-jupyter's insides: a patch applied for a build, undone after it.

mkdocs-jupyter (written against 0.26.3) has no plugin point for "render this notebook, which is
already executed". For the time of a build (the hooks' on_config until on_post_build, or
on_build_error) the patch replaces two names of its modules:

* ``mkdocs_jupyter.convert.nb2html``, the renderer its plugin calls for every page: ours
  (scripts/site_hooks.py, ``nb2html``) renders the notebook the executor ran once for all
  languages, and while one page renders it points ``mkdocs_jupyter.nbconvert2.jupytext`` (the
  reader of ``nbconvert2.nb2html``) at that notebook, restoring it when the page is done;
* ``mkdocs_jupyter.plugin.jupytext``, which its plugin reads every page with, several times per
  build: ours reads each page once (``executor.read``).

`changes()` lists what of mkdocs-jupyter these rely on and is no longer so; tests/test_jupyter_patch.py
fails on a version of mkdocs-jupyter that changes any of it.
"""

from __future__ import annotations

import inspect

from mkdocs_jupyter import convert, nbconvert2, plugin

PATCHED = ((convert, "nb2html"), (plugin, "jupytext"))
RENDER_ARGS = ("nb_path", "execute", "kernel_name")  # what our nb2html takes by name; the rest is passed on


class Patch:
    """mkdocs-jupyter with our renderer and reader in place, between `apply` and `undo`."""

    def __init__(self) -> None:
        self._saved: list | None = None

    @property
    def active(self) -> bool:
        return self._saved is not None

    def apply(self, nb2html, reader) -> None:
        """Put our renderer and reader in place (again: each language's build configures itself anew)."""
        if self._saved is None:
            self._saved = [(module, name, getattr(module, name)) for module, name in PATCHED]
        convert.nb2html = nb2html
        plugin.jupytext = reader

    def undo(self) -> None:
        """mkdocs-jupyter as it was before `apply`."""
        for module, name, value in self._saved or []:
            setattr(module, name, value)
        self._saved = None


def changes() -> list[str]:
    """What the patch relies on in the installed mkdocs-jupyter and is no longer so ([] when all holds)."""
    found = []
    for module, name in (*PATCHED, (nbconvert2, "jupytext"), (nbconvert2, "nb2html")):
        if not hasattr(module, name):
            found.append(f"{module.__name__} has no {name}")
    if found:
        return found
    page = inspect.getsource(plugin)
    if "convert.nb2html(" not in page:
        found.append("the plugin no longer renders a page by calling convert.nb2html")
    if "jupytext.read(" not in page:
        found.append("the plugin no longer reads pages with jupytext.read")
    render = inspect.getsource(nbconvert2.nb2html)
    if "jupytext.read(" not in render:
        found.append("nbconvert2.nb2html no longer reads the notebook with jupytext.read")
    if not all(a in inspect.signature(nbconvert2.nb2html).parameters for a in RENDER_ARGS):
        found.append(f"nbconvert2.nb2html no longer takes {', '.join(RENDER_ARGS)}")
    if "remove_tag_config" not in inspect.signature(nbconvert2.nb2html).parameters:  # hides blocks of claims (scripts/results.py)
        found.append("nbconvert2.nb2html no longer takes remove_tag_config")
    if convert.nb2html is not nbconvert2.nb2html and not getattr(convert.nb2html, "__module__", "").startswith("scripts"):
        found.append("convert.nb2html is no longer nbconvert2.nb2html")
    return found
