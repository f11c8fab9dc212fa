"""The site's build machinery, one importable package: ``from scripts import executor, pdf``.

mkdocs loads the hook files named in mkdocs.yml (site_hooks.py, headings.py, search_index.py,
reference_hooks.py) by their path; site_hooks.py puts the project root on the import path and
imports its helpers from this package, and so do the tests (tests/sitetools.py) and the root
conftest. One process therefore holds one copy of each module and of its state (the chapters this
build executed, the fingerprint of the library). What the build needs of mkdocs-jupyter's insides
goes through one patch, applied for a build and undone after it (scripts/jupyter_patch.py).
"""
