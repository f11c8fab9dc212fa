"""scripts/jupyter_patch.py: the one patch of mkdocs-jupyter's insides, and what it relies on."""

from sitetools import script

patch = script("jupyter_patch")


def test_mkdocs_jupyter_still_has_what_the_patch_replaces():
    """Fails on a version of mkdocs-jupyter that renders, reads or names these things differently:
    then scripts/jupyter_patch.py and scripts/site_hooks.py must follow it (see their docstrings)."""
    assert patch.changes() == []


def test_the_patch_is_undone():
    from mkdocs_jupyter import convert, plugin

    before = convert.nb2html, plugin.jupytext
    p = patch.Patch()

    def render(*args, **kwargs):
        return "rendered"

    class Reader:
        pass

    p.apply(render, Reader)
    p.apply(render, Reader)  # the next language's build configures itself again
    assert p.active and (convert.nb2html, plugin.jupytext) == (render, Reader)
    p.undo()
    assert not p.active and (convert.nb2html, plugin.jupytext) == before
    p.undo()  # a build error after the end of a build: nothing left to undo
    assert (convert.nb2html, plugin.jupytext) == before


def test_the_site_hooks_apply_it_for_a_build_and_undo_it_after(tmp_path):
    from mkdocs_jupyter import convert, plugin

    from sitetools import site_hooks

    hooks = site_hooks()
    before = convert.nb2html, plugin.jupytext
    hooks._PATCH.apply(hooks.nb2html, hooks._Jupytext)  # as on_config does
    try:
        assert convert.nb2html is hooks.nb2html
    finally:
        hooks.on_build_error(RuntimeError("a build that failed"))
    assert (convert.nb2html, plugin.jupytext) == before
