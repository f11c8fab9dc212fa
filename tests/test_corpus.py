import re

import pytest

import anatomy
from anatomy.corpus import book_text


@pytest.mark.parametrize("language", ["en", "zh"])
def test_book_text_is_prose_without_code(language):
    paras = book_text(language)
    assert len(paras) > 200
    assert all(len(p) >= 40 for p in paras)
    assert not any("```" in p or "import anatomy" in p or p.startswith("#") for p in paras)
    han = sum(bool(re.search(r"[\u4e00-\u9fff]", p)) for p in paras)
    assert (han == len(paras)) if language == "zh" else (han < len(paras) // 4)


def test_unknown_language_is_one_clear_error():
    with pytest.raises(anatomy.AnatomyError, match="No corpus in language 'fr'"):
        book_text("fr")
