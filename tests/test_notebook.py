"""Take the chapter home: the generated notebook carries the library and runs on its own."""

import nbformat
from nbclient import NotebookClient
from sitetools import ROOT, site_hooks


def test_generated_notebook_runs(tmp_path):
    nb = site_hooks().take_home_notebook(str(ROOT / "docs" / "en" / "index.md"))
    assert [c.metadata.get("tags") for c in nb.cells[1:3]] == [["install"], ["unpack"]]
    assert "%pip install" in nb.cells[1].source
    # The install cell needs PyPI and changes the environment: here everything is installed already.
    nb.cells[1].source = "pass"
    nb.cells.append(nbformat.v4.new_code_cell("import anatomy\nassert 'anatomy_lib' in anatomy.__file__, anatomy.__file__"))
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "anatomy_lib" / "anatomy" / "loading.py").exists()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("smollm2-135m" in str(o.get("data", {})) for o in outputs)
