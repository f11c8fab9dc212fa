"""The Traditional Chinese (Taiwan) edition: generated from docs/zh, same code, protected spans intact.

The pages are generated here into a temporary folder the way the site build does
(scripts/traditional.py, called from scripts/site_hooks.py's on_config), from whatever docs/zh holds.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
from pathlib import Path

import jupytext
import pytest
from sitetools import ROOT, mkdocs_config, executor, site_hooks

ZH = ROOT / "docs" / "zh"
CHAPTERS = sorted(p.name for p in ZH.glob("*.md"))


def _module():
    spec = importlib.util.spec_from_file_location("traditional_under_test", ROOT / "scripts" / "traditional.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


traditional = _module()


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    """A docs folder whose zh is the repository's, with zh-TW generated from it."""
    docs = tmp_path_factory.mktemp("docs")
    (docs / "zh").symlink_to(ZH, target_is_directory=True)
    written = traditional.generate(docs)
    assert len(written) == len(list(ZH.rglob("*.*")))
    return docs


def _tw(docs: Path, chapter: str) -> str:
    return (docs / "zh-TW" / chapter).read_text(encoding="utf-8")


def _zh(chapter: str) -> str:
    return (ZH / chapter).read_text(encoding="utf-8")


def test_every_simplified_page_has_a_traditional_page(docs):
    assert CHAPTERS and sorted(p.name for p in (docs / "zh-TW").glob("*.md")) == CHAPTERS


def test_generation_rewrites_only_what_changed_and_drops_deleted_pages(tmp_path):
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "a.md").write_text("# 参数\n", encoding="utf-8")
    assert traditional.generate(tmp_path) == [tmp_path / "zh-TW" / "a.md"]
    assert traditional.generate(tmp_path) == []  # `mkdocs serve` does not reload in a loop
    (tmp_path / "zh-TW" / "gone.md").write_text("# 已刪除\n", encoding="utf-8")
    traditional.generate(tmp_path)
    assert [p.name for p in (tmp_path / "zh-TW").iterdir()] == ["a.md"]
    assert (tmp_path / "zh-TW" / "a.md").read_text(encoding="utf-8") == "# 參數\n"


FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$", re.S | re.M)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_traditional_page_runs_the_same_code(docs, chapter):
    """Fenced blocks byte for byte, the same notebook cells, and so the same execution key."""
    assert FENCE.findall(_tw(docs, chapter)) == FENCE.findall(_zh(chapter))
    if _zh(chapter).startswith("---\n"):  # a chapter's jupytext header (the glossary has none)
        assert _tw(docs, chapter).split("\n---\n", 1)[0] == _zh(chapter).split("\n---\n", 1)[0]
    hooks = executor()
    zh_nb, tw_nb = jupytext.read(ZH / chapter), jupytext.read(docs / "zh-TW" / chapter)
    assert [c.source for c in tw_nb.cells if c.cell_type == "code"] == [c.source for c in zh_nb.cells if c.cell_type == "code"]
    assert hooks.page_key(tw_nb, "fingerprint") == hooks.page_key(zh_nb, "fingerprint")


# Read independently of the converter's own rules: what a page quotes must come through unchanged.
KEPT = {
    "inline code": re.compile(r"(?<!`)`[^`\n]+`(?!`)"),
    "display math": re.compile(r"\$\$.+?\$\$", re.S),
    "inline math": re.compile(r"(?<!\$)\$[^$\n]+\$(?!\$)"),
    "link target": re.compile(r"\]\(([^)\s]+)\)"),
    "URL": re.compile(r"https?://[^\s)>\]）]+"),
    "HTML tag": re.compile(r"</?[A-Za-z][^<>\n]*>"),
}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_protected_spans_are_unchanged(docs, chapter):
    zh, tw = FENCE.sub("", _zh(chapter)), FENCE.sub("", _tw(docs, chapter))
    for kind, pattern in KEPT.items():
        assert pattern.findall(tw) == pattern.findall(zh), f"{kind} changed in {chapter}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_quoted_tokens_and_prompts_of_the_code_are_kept(docs, chapter):
    """“天气” quoted in the prose is the prompt "天气" of the code: the Traditional page shows the same."""
    zh, tw = _zh(chapter), _tw(docs, chapter)
    prose = FENCE.sub("", zh)
    for pattern in traditional.context_terms():  # quotes the dictionary says are words
        prose = pattern.sub("", prose)
    for s in traditional.code_strings(zh):
        for quoted in (f"“{s}”", f'"{s}"', f"「{s}」"):
            assert FENCE.sub("", tw).count(quoted) >= prose.count(quoted), f"{quoted} was converted in {chapter}"


PAGE = """---
jupyter:
  kernelspec:
    name: python3
---

# 天气

```python
fruits = ["苹果", "葡萄"]  # 中文注释不变
anatomy.logit_lens(gemma, "天气")
```

看不出任何"苹果"的意思。中文的"苹果"在里面，“天气”换成繁体的“天氣”。例句 今天天氣（今天天气）有 `天气` 和 $天气$。
"""


def test_what_a_page_quotes_from_its_code_is_kept():
    tw = traditional.convert(PAGE)
    assert tw.split("# 天氣")[0] == PAGE.split("# 天气")[0]  # header
    assert FENCE.findall(tw) == FENCE.findall(PAGE)
    assert '中文的"苹果"在裡面，“天气”換成繁體的“天氣”' in tw  # tokens and prompts of the code
    assert "今天天氣（今天天气）" in tw  # a gloss of the Simplified form: not 今天天氣（今天天氣）
    assert "`天气` 和 $天气$" in tw


def test_a_quote_the_dictionary_names_as_a_word_is_converted():
    assert '看不出任何"蘋果"的意思' in traditional.convert(PAGE)
    assert "任何“蘋果”的意思" in traditional.convert(PAGE.replace('"苹果"的意思', "“苹果”的意思"))


def test_simplified_and_traditional_examples_stay_distinct(docs):
    tw = _tw(docs, "logit-lens.md")
    assert re.search(r'[“"]天气[”"]', tw) and re.search(r'[“"]天氣[”"]', tw)  # the Simplified prompt and the Traditional one
    glosses = 0
    for chapter in CHAPTERS:
        zh, text = FENCE.sub("", _zh(chapter)), _tw(docs, chapter)
        twins = re.findall(r"([^\s（）]{1,20})（\1）", text)
        assert twins == [], f"{chapter}: glosses became duplicates: {twins}"
        for word, gloss in re.findall(r"([\u3400-\u9fff]{1,12})（([\u3400-\u9fff！，]{1,12})）", zh):
            if word != gloss and word.endswith(traditional.convert_text(gloss)):
                glosses += 1
                assert f"（{gloss}）" in text, f"{chapter}: the gloss （{gloss}） was converted"
    assert glosses >= 1  # docs/zh has such glosses (天氣（天气）); if none is left, this test has nothing to check


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_prose_has_no_simplified_character_left(chapter):
    """Outside what is protected, the converted text is Traditional throughout (dictionary included)."""
    md, at, prose = _zh(chapter), 0, []
    for start, end in traditional.protected_spans(md):
        prose.append(traditional.convert_text(md[at:start]))
        at = end
    prose.append(traditional.convert_text(md[at:]))
    text = "".join(prose)
    left = _simplified(text)
    assert left == set(), [re.findall(f".{{0,8}}{ch}.{{0,8}}", text)[:3] for ch in left]


def _opencc_table(name: str, folder: Path) -> dict[str, list[str]]:
    """One of OpenCC's own dictionaries (shipped compiled, .ocd2), read with its opencc_dict tool."""
    import opencc

    clib = Path(opencc.__file__).parent / "clib"
    out = folder / f"{name}.txt"
    subprocess.run([str(clib / "bin" / "opencc_dict"), "-i", str(clib / "share" / "opencc" / f"{name}.ocd2"),
                    "-o", str(out), "-f", "ocd2", "-t", "text"], check=True, capture_output=True)
    table = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        key, values = line.split("\t")
        table[key] = values.split(" ")
    return table


@functools.cache
def simplified_only() -> frozenset[str]:
    """The characters only Simplified Chinese writes, from OpenCC's own tables.

    A character s2t changes (a key of STCharacters) that no table gives as a Traditional form: not
    among s2t's own candidates (台 → 臺 檯 颱 台 and 里 → 裏 里 哩 keep 台 and 里), not a Traditional
    character that t2s converts (TSCharacters), not Taiwan's standard variant (TWVariants: 峯 → 峰).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        st, ts, tw = (_opencc_table(n, Path(folder)) for n in ("STCharacters", "TSCharacters", "TWVariants"))
    traditional_forms = {c for values in st.values() for c in values} | set(ts) | {c for v in tw.values() for c in v}
    return frozenset(c for c in st if len(c) == 1 and c not in traditional_forms)


def _simplified(text: str) -> set[str]:
    """The Simplified-only characters of a text."""
    return set(text) & simplified_only()


def test_the_simplified_only_set_is_built_from_opencc():
    chars = simplified_only()
    assert len(chars) > 2000 and {"层", "两", "会", "经", "复", "数", "气"} <= chars
    assert not chars & set("層兩會經複數氣台里干吃群峰准只系著"), "Traditional characters counted as Simplified"


# The model's own words, which a Traditional page shows as they are: what the page's code gives it
# or reads back (prompts, tokens; not a claim's zh= sentence, which is prose), quoted in the prose.
_QUOTE = re.compile(r"“([^”\n]+)”|\"([^\"\n]+)\"|「([^」\n]+)」|‘([^’\n]+)’")
_NOT_PROSE = [
    FENCE,
    re.compile(r"\A---\n.*?\n---\n", re.S),  # jupytext header
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", re.S),  # inline code
    re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$[^$\n]+\$", re.S),  # math
    re.compile(r"</?[A-Za-z][^<>\n]*>|\]\([^)\s]*\)|https?://\S+"),  # HTML, link targets, URLs
]


def _claims_and_strings(zh: str) -> tuple[list[str], set[str]]:
    """(the zh= sentences of the page's claims, the other string constants of its code), read with ast."""
    import ast

    claims, strings = [], set()
    for body in re.findall(r"^```python[^\n]*\n(.*?)^```", zh, re.S | re.M):
        tree = ast.parse(body)
        sentences = {id(k.value): k.value.value for node in ast.walk(tree)
                     if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "claim"
                     for k in node.keywords if k.arg == "zh"}
        claims += sentences.values()
        strings |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                    and id(n) not in sentences}
    return claims, strings


def simplified_left(tw: str, zh: str) -> list[str]:
    """Where a Traditional text (a page, or a claim's sentence) still has a Simplified-only character
    in its prose: outside code, math, HTML and URLs, quotes of the model's own words (``zh`` is the
    Simplified page whose code they come from) and glosses of a Simplified form, 天氣（天气）."""
    import opencc

    _, strings = _claims_and_strings(zh)
    for pattern in _NOT_PROSE:
        tw = pattern.sub(lambda m: "\0" * len(m.group(0)), tw)

    def quote(m):
        text = next(g for g in m.groups() if g is not None)
        return "\0" * len(m.group(0)) if any(text.strip() in s for s in strings) else m.group(0)

    tw = _QUOTE.sub(quote, tw)
    s2twp, s2t = opencc.OpenCC("s2twp"), opencc.OpenCC("s2t")

    def gloss(m):
        forms = {s2twp.convert(m.group(1)), s2t.convert(m.group(1)), traditional.convert_text(m.group(1))}
        return "\0" * len(m.group(0)) if any(tw[: m.start()].endswith(f) for f in forms) else m.group(0)

    tw = re.sub(r"（([^（）\n]{1,40})）", gloss, tw)
    return [tw[max(0, i - 8): i + 8].replace("\0", "") for i, ch in enumerate(tw) if ch in simplified_only()]


def _claims_as_shown(zh: str) -> list[str]:
    """The Chinese sentences of a page's claims as the Traditional page shows them (the site hooks'
    conversion of the shared execution's HTML)."""
    import html

    import anatomy.claims

    shown = []
    for sentence in _claims_and_strings(zh)[0]:
        page = anatomy.claims.Claim(text="-", zh=sentence, holds=True, models=("m",))._repr_html_()
        converted = traditional.convert_claims(page, zh)
        shown += [html.unescape(t) for t in re.findall(r'<span lang="zh-TW">(.*?)</span>', converted, re.S)]
    return shown


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_traditional_prose_has_no_simplified_character(docs, chapter):
    """The generated zh-TW page and its claims' sentences: no Simplified-only character in the prose,
    and 台 throughout (the edition writes 台, not 臺)."""
    zh, tw = _zh(chapter), _tw(docs, chapter)
    claims = _claims_as_shown(zh)
    assert len(claims) == len(_claims_and_strings(zh)[0])
    left = simplified_left(tw, zh) + [hit for sentence in claims for hit in simplified_left(sentence, zh)]
    assert left == [], f"{chapter}: Simplified characters left in the Traditional prose: {left}"
    for text in [tw, *claims]:
        assert "臺" not in FENCE.sub("", text), f"{chapter}: 臺 where the edition writes 台"


def test_the_check_finds_an_injected_simplified_character(docs):
    """The check can fail: one Simplified character put in the prose of a generated page is found,
    the same character in code or in a quote of the model's prompt is not."""
    zh, tw = _zh("ablation.md"), _tw(docs, "ablation.md")
    assert simplified_left(tw, zh) == []
    paragraph = next(p for p in tw.split("\n\n") if _CJK.match(p))
    injected = tw.replace(paragraph, paragraph[:5] + "层" + paragraph[5:], 1)
    assert len(simplified_left(injected, zh)) == 1 and "层" in simplified_left(injected, zh)[0]
    assert simplified_left(tw + '\n```python\nx = "层"\n```\n', zh) == []
    assert simplified_left(tw + "\n模型讀到“层”。\n", zh + '\n```python\nx = "层"\n```\n') == []
    assert simplified_left("複數（复数）", zh) == []  # a gloss of the Simplified form
    assert simplified_left("一个", zh) == ["一个"]


def test_the_check_finds_the_fault_of_claim_words_kept_simplified(tmp_path, monkeypatch):
    """Issue 21: words the prose quoted from a claim's zh= sentence (“复数”) were kept Simplified, as if
    they were the model's tokens. With that old rule put back, the check fails on Chapter 11's page."""
    old = traditional.code_strings

    def with_claims(markdown):
        return old(markdown) | {s for s in _claims_and_strings(markdown)[0] if _CJK.search(s)}

    monkeypatch.setattr(traditional, "code_strings", with_claims)
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "ablation.md").write_text(_zh("ablation.md"), encoding="utf-8")
    traditional.generate(tmp_path)
    left = simplified_left((tmp_path / "zh-TW" / "ablation.md").read_text(encoding="utf-8"), _zh("ablation.md"))
    assert any("复数" in hit for hit in left), left


_CJK = re.compile(r"[\u3400-\u9fff]")


# (Simplified, Traditional as our readers write it, what OpenCC alone would give)
TERMS = [
    ("模型有多少参数", "模型有多少參數", "引數"),
    ("激活函数", "激活函數", "啟用"),
    ("全局层和局部层", "全域層和局部層", "域性"),
    ("更短的前缀", "更短的前綴", "字首"),
    ("循环神经网络", "循環神經網路", "迴圈"),
    ("三行测试都通过了", "三行測試都通過了", "透過"),
    ("把一层打印出来", "把一層印出來", "列印"),
    ("课程的幻灯片", "課程的投影片", "幻燈片"),
    ("向量的点积", "向量的內積", "點積"),
    ("\"方差\"", "\"變異數\"", "方差"),
    ("用贪心解码", "用貪婪解碼", "貪心"),
    ("画成柱状图", "畫成長條圖", "柱狀圖"),
    ("构建本站", "建置本站", "構建"),
    ("能并行处理", "能平行處理", "並行"),
    ("许可证", "授權條款", "許可證"),
    ("4 位量化", "4 位元量化", "4 位量化"),
    ("看表征", "看表徵", "錶"),
    ("位置信息、代码、默认、概率、内存", "位置資訊、程式碼、預設、機率、記憶體", "信息"),
    # found by an editor of the Traditional edition (issue 21)
    ("而不是被压缩进最后一个词元", "而不是被壓縮進最後一個詞元", "壓縮排"),
    ("这只说明两者有关", "這只說明兩者有關", "這隻"),
    ("多半只会语无伦次", "多半只會語無倫次", "半隻"),
    ("大部分系数恰好为 0", "大部分係數恰好為 0", "系數"),
    ("大多绑定在单个词元上", "大多綁定在單個詞元上", "繫結"),
    ("它并不能真的发邮件", "它並不能真的寄電子郵件", "發郵件"),
    ("在仓库的本地克隆里执行", "在儲存庫的本機複本裡執行", "克隆"),
    ("用不着它的依赖）", "用不著它的相依套件）", "依賴"),
    ("在不相干的文本上激活，中文本身", "在不相干的文字上激活，中文本身", "文本上"),
    ("以 4 位存储、16 位文件、排在第 1 位", "以 4 位元儲存、16 位元檔案、排在第 1 位", "4 位儲存"),
    ("随库一起安装；库的测试", "隨函式庫一起安裝；函式庫的測試", "隨庫"),
    ("通过修补找出来，测试都通过了", "透過修補找出來，測試都通過了", "通過修補"),
    ("台大的课，这台电脑，一级级台阶", "台大的課，這台電腦，一級級台階", "臺"),
]


@pytest.mark.parametrize("simplified, expected, wrong", TERMS, ids=[t[0] for t in TERMS])
def test_dictionary_terms(simplified, expected, wrong):
    assert traditional.convert_text(simplified) == expected
    assert wrong not in expected


def test_pages_use_the_dictionary(docs):
    pages = {c: _tw(docs, c) for c in CHAPTERS}
    with_param = [c for c in CHAPTERS if "参数" in FENCE.sub("", _zh(c))]
    assert with_param, "no page of docs/zh says 参数 any more: pick another term for this test"
    for chapter in with_param:
        assert "參數" in pages[chapter] and "引數" not in FENCE.sub("", pages[chapter])
    for chapter, text in pages.items():
        prose = FENCE.sub("", text)
        for wrong in ("全域性", "區域性", "字首", "啟用", "列印"):
            assert wrong not in prose, f"{chapter}: {wrong}"


def test_dictionary_file_is_well_formed():
    terms = traditional.read_terms()
    assert len(terms) >= 16
    for pattern, replacement in terms:
        assert _simplified(replacement) == set(), f"{pattern.pattern} → {replacement} is not Traditional"
    bad = Path(traditional.TERMS).parent / "nonexistent.tsv"
    with pytest.raises(FileNotFoundError):
        traditional.read_terms(bad)


def test_site_name_and_navigation_are_converted():
    zh = next(lang for lang in mkdocs_config()["plugins"][1]["i18n"]["languages"] if lang["locale"] == "zh")
    tw = traditional.language_config(zh)
    assert tw["site_name"] == "LLM 解剖課"
    assert tw["nav_translations"].keys() == zh["nav_translations"].keys()
    assert tw["nav_translations"]["Start here"] == "從這裡開始"


def test_the_generated_folder_is_not_in_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", "docs/zh-TW/index.md"], cwd=ROOT)
    assert ignored.returncode == 0, "docs/zh-TW is generated by the build: keep it in .gitignore"


def test_a_checked_claim_reads_in_traditional():
    """anatomy.claim's sentence is prose written in the code: the Traditional page shows it converted."""
    import anatomy.claims

    claim = anatomy.claims.Claim(text="Gemma reads 天气 as one token.", zh='Gemma 把"天气"读成一个词元，参数不变。',
                                 holds=True, models=("gemma-3-270m",))
    page = claim._repr_html_()
    tw = traditional.convert_claims(page, '```python\nx = "天气"\n```\n')
    assert '<span lang="zh-TW">Gemma 把&quot;天气&quot;讀成一個詞元，參數不變。</span>' in tw
    assert 'lang="zh"' not in tw, "every Chinese span of the claim (sentence and fold) is converted"
    assert '<span lang="zh-TW">本頁建置時已在 gemma-3-270m 上檢驗' in tw  # the fold's words too, in Taiwan usage
    strip = lambda h: re.sub(r'<span lang="zh(-TW)?">.*?</span>', "", h)  # noqa: E731
    assert strip(tw) == strip(page), "only the Chinese text changes"


def test_the_script_runs_from_the_command_line(tmp_path):
    """``python scripts/traditional.py`` writes docs/zh-TW as the build does and says what it did."""
    import sys

    script = [sys.executable, str(ROOT / "scripts" / "traditional.py")]
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "a.md").write_text("# 参数\n", encoding="utf-8")
    run = subprocess.run([*script, "--docs", str(tmp_path)], capture_output=True, text=True, check=True)
    assert "wrote zh-TW/a.md" in run.stdout and "1 written" in run.stdout
    assert (tmp_path / "zh-TW" / "a.md").read_text(encoding="utf-8") == "# 參數\n"
    again = subprocess.run([*script, "--docs", str(tmp_path)], capture_output=True, text=True, check=True)
    assert "0 written" in again.stdout and "1 already up to date" in again.stdout
    assert "docs/zh-TW" in subprocess.run([*script, "--help"], capture_output=True, text=True, check=True).stdout
    wrong = subprocess.run([*script, "--docs", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert wrong.returncode != 0 and "is not a folder" in wrong.stderr and "Traceback" not in wrong.stderr



def test_a_link_inside_a_claim_sentence_stays_a_link():
    """If a link was put inside a claim's sentence before the conversion, it stays a link."""
    page = ('<div class="anatomy-claim anatomy-claim-holds" data-models="m"><span lang="en">x</span>'
            '<span lang="zh">方向经过 <a href="../glossary/#lm-head">LM Head</a> 读出，参数&lt;3</span></div>')
    tw = traditional.convert_claims(page, "")
    assert '<span lang="zh-TW">方向經過 <a href="../glossary/#lm-head">LM Head</a> 讀出，參數&lt;3</span>' in tw


# What a Taiwanese editor found wrong on the pages (issue 21); none may come back in the prose.
NOT_TAIWAN = {
    "壓縮排": "壓縮進", "這隻說": "這只說", "半隻": "半只", "系數": "係數", "繫結": "綁定", "發郵件": "寄電子郵件",
    "克隆": "複本", "依賴）": "相依套件", "文本": "文字", "通過修": "透過修", "通過讀": "透過讀", "臺": "台",
}


def test_pages_use_taiwan_usage(docs):
    for chapter in CHAPTERS:
        prose = re.sub(r"(?<!`)`[^`\n]+`(?!`)", "", FENCE.sub("", _tw(docs, chapter)))
        prose += "\n".join(_claims_as_shown(_zh(chapter)))
        for wrong, right in NOT_TAIWAN.items():
            assert wrong not in prose, f"{chapter}: {wrong} (write {right})"
        alone = re.findall(r".{0,6}(?<!函式)(?<!儲存)(?<!資料)庫.{0,6}", prose)
        assert alone == [], f"{chapter}: 庫 alone for the library (write 函式庫): {alone}"
        after = re.findall(r".{0,6}(?<![皇王太])后.{0,6}", prose)  # 后 is an empress; "after" is 後
        assert after == [], f"{chapter}: 后 where 後 is meant: {after}"
