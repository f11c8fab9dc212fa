"""Interactive figures (issue 27): escaped data in Python, and in Chromium on the built site.

(a) Python: the data of a figure whose tokens are hostile (``</script>``, quotes, ``&``, U+2028,
    control characters) round-trips through the page's HTML, which holds no second ``<script``.
(b) Chromium: a page of the site with such a figure has no injected element and runs no injected
    script; every interactive figure of the built site changes what it shows on a hover or a key
    press, shows the value its embedded data (computed by the chapter's Python) holds, and the page
    asks for nothing outside the site. The site is the session's one build (tests/sitetools.py).

A renderer adds its checks to ``FIGURE_CHECKS`` below: kind -> JavaScript that, given the figure's
element and its data, hovers / presses keys and returns [shown, expected] pairs (as text).
"""

from __future__ import annotations

import html as htmllib
import json
import re
from html.parser import HTMLParser

from typing import Callable

import pytest
from sitetools import ROOT, script

import anatomy
from anatomy.errors import AnatomyError
from anatomy.plot import live_lens, live_temperature
from anatomy.plot.live import live_figure, sig

HOSTILE = ("</script><script>alert(1)</script>", "<img src=x onerror=alert(2)>", '"quoted" \'single\'', "a & b",
           "line\u2028sep\u2029para", "ctl\x00\x01\x1b\x7f", "<!--", "]]>", "</SCRIPT >", "\\u003c/script>", "é 好 ␣")


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        if self.lasttag == "script":
            self.scripts.append(data)


def _parse(page: str) -> _Elements:
    p = _Elements()
    p.feed(page)
    p.close()
    return p


def test_hostile_tokens_round_trip_through_the_html_and_open_no_element():
    data = {"tokens": list(HOSTILE), "probs": sig([0.123456, 1e-7, 0.5]), "label": {"en": "a <b>", "zh": "层 & 头"}}
    fig = live_figure("lens", data, alt_en='Lens "grid" <of> layers & positions', alt_zh="逐层 <网格>")
    page = fig._repr_html_()
    assert page.count("<script") == 1 and page.lower().count("</script") == 1
    assert not re.search("[<>&\u2028\u2029]", page[page.index("anatomy-live-data\">") + 19: page.rindex("</script>")])
    parsed = _parse(page)
    assert parsed.tags == ["div", "script"]  # nothing else opened, whatever the tokens hold
    assert json.loads(parsed.scripts[0]) == data  # what JSON.parse of the script's text gives the page
    assert 'aria-label="Lens &quot;grid&quot; &lt;of&gt; layers &amp; positions"' in page
    assert data["probs"] == [0.1235, 1e-7, 0.5]


def test_bad_figures_are_clear_errors():
    with pytest.raises(AnatomyError, match="not a figure kind"):
        live_figure("<x>", {}, alt_en="a", alt_zh="b")
    with pytest.raises(AnatomyError, match="plain JSON"):
        live_figure("lens", {"p": float("nan")}, alt_en="a", alt_zh="b")
    with pytest.raises(AnatomyError, match="alt_zh is empty"):
        live_figure("lens", {}, alt_en="a", alt_zh=" ")
    with pytest.raises(AnatomyError, match="only finite numbers"):
        sig(float("inf"))


live = script("live")


def test_zh_tw_pages_get_traditional_labels_and_descriptions_but_tokens_stay():
    data = {"tokens": ["这个", "</script>"], "labels": {"layer": {"en": "layer", "zh": "层"}}}
    page = "<p>x</p>" + live_figure("lens", data, alt_en="Lens", alt_zh="每一层的词元")._repr_html_()
    assert live.localize(page, "en") == page
    zh = live.localize(page, "zh")
    assert 'aria-label="每一层的词元"' in zh
    tw = live.localize(page, "zh-TW", script("traditional").convert_text)
    assert 'aria-label="每一層的詞元"' in tw
    parsed = _parse(tw)
    assert parsed.tags == ["p", "div", "script"]
    assert json.loads(parsed.scripts[0]) == {"tokens": ["这个", "</script>"], "labels": {"layer": {"en": "layer", "zh": "層"}}}


def test_figures_are_found_after_the_notebook_renderer_rewrote_them(tmp_path):
    """mkdocs-jupyter writes an output's attributes back in another order (alphabetical) and with other
    quoting: the site still finds the figure, localizes it and loads its script."""
    import nbformat
    from mkdocs_jupyter import nbconvert2

    fig = live_figure("lens", {"tokens": list(HOSTILE), "labels": {"layer": {"en": "layer", "zh": "层"}}},
                      alt_en='Lens "grid" <of> it\'s & more', alt_zh="每一层的词元")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": fig._repr_html_(), "text/plain": repr(fig)})]
    nb.cells.append(cell)
    nbformat.write(nb, str(tmp_path / "page.ipynb"))
    rendered = str(nbconvert2.nb2html(str(tmp_path / "page.ipynb"), execute=False))
    [found] = live.figures(rendered)
    assert (found.kind, found.label, found.alt_zh) == ("lens", fig.alt_en, "每一层的词元")
    assert json.loads(found.text) == fig.data
    assert live.kinds(rendered) == ["lens"]
    assert fig._repr_html_() in live.localize(rendered, "en")  # written back as live.py writes it
    tw = live.localize(rendered, "zh-TW", script("traditional").convert_text)
    [back] = live.figures(tw)
    assert back.label == back.alt_zh == "每一層的詞元" and json.loads(back.text)["labels"]["layer"]["zh"] == "層"
    assert json.loads(back.text)["tokens"] == list(HOSTILE)


def test_only_pages_with_figures_load_the_scripts_of_their_kinds():
    head = '<html><head><link rel="stylesheet" href="../../assets/extra.css"></head><body>'
    plain = head + "<p>no figure</p></body></html>"
    assert live.add_scripts(plain) == plain
    page = live.add_scripts(head + live_figure("lens", {}, alt_en="a", alt_zh="b")._repr_html_() + "</body></html>")
    assert '<script defer src="../../assets/live/core.js"></script><script defer src="../../assets/live/lens.js"></script>' in page
    assert '<link rel="stylesheet" href="../../assets/live/live.css">' in page
    with pytest.raises(ValueError, match="No renderer for the interactive figure kind 'nosuch'"):
        live.add_scripts(head + live_figure("nosuch", {}, alt_en="a", alt_zh="b")._repr_html_())


# ---- in Chromium, on the built site -------------------------------------------------------------

# kind -> JavaScript `async (el, data) => [[shown, expected], ...]`: it operates the figure (hover,
# keys) and reads what the figure shows and what the data says should be shown, both as text.
# Each renderer's author adds its kind. The checks use AnatomyLive.fmt/pct, the figures' own formatting.
FIGURE_CHECKS: dict[str, str] = {}
# kind -> a function of a tuple of (hostile) token strings giving data of that kind whose every
# token comes from them: the figure the injection test draws.
HOSTILE_DATA: dict[str, Callable[[tuple[str, ...]], dict]] = {}


def _pages_with_figures(site_dir) -> list[tuple[str, list[str]]]:
    """(url path, kinds) of every built page that holds an interactive figure."""
    found = []
    for page in sorted(site_dir.rglob("index.html")):
        text = page.read_text(encoding="utf-8")
        if kinds := live.kinds(text):
            found.append((str(page.parent.relative_to(site_dir)).replace(".", "") + "/", kinds))
    return found


def _record_requests(page, base: str) -> list[str]:
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not (r.url.startswith(base) or r.url.startswith("data:")
                                                                   or r.url.startswith("blob:")) else None)
    return outside


def test_a_figure_with_hostile_tokens_injects_nothing(site, browser):
    """A page of the site (served from it, with the site's own scripts) holding a figure of each kind
    renderer the site has, fed hostile tokens: no element appears that the page did not make, no
    dialog opens, and the tokens show as text."""
    kinds = sorted(p.stem for p in (ROOT / "docs" / "assets" / "live").glob("*.js") if p.stem != "core")
    assert set(kinds) <= set(HOSTILE_DATA), f"no hostile data for {sorted(set(kinds) - set(HOSTILE_DATA))}: add it to HOSTILE_DATA"
    figures = "".join(live_figure(k, HOSTILE_DATA[k](HOSTILE), alt_en="hostile", alt_zh="恶意")._repr_html_() for k in kinds)
    probe = ('<script>window.__injected = [];new MutationObserver(ms => ms.forEach(m => m.addedNodes.forEach('
             'n => document.readyState !== "loading" && n.nodeType === 1 && (n.nodeName === "SCRIPT" || n.nodeName === "IMG" '
             '|| n.querySelector("script, img")) ? __injected.push(n.outerHTML) : 0)))'
             '.observe(document, {subtree: true, childList: true});</script>')
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{probe}'
            f'<link rel="stylesheet" href="assets/extra.css"></head><body><article>{figures}</article></body></html>')
    body = live.add_scripts(body)
    page = browser.new_page()
    outside = _record_requests(page, site)
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route(site + "live-hostile.html", lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=body))
    page.goto(site + "live-hostile.html", wait_until="load")
    page.wait_for_load_state("networkidle")
    ready = page.eval_on_selector_all(".anatomy-live", "els => els.map(e => e.classList.contains('anatomy-live-ready'))")
    assert ready == [True] * len(kinds), f"figures not drawn: {dict(zip(kinds, ready))}, errors {errors}"
    assert page.evaluate("document.querySelectorAll('script').length") == body.count("<script")
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("window.__injected") == []  # nothing the figures drew is (or holds) a script or an image
    tags = set(page.eval_on_selector_all(".anatomy-live *", "els => els.map(e => e.tagName.toLowerCase())"))
    assert tags <= {"div", "p", "span", "button", "label", "input", "output", "script"}, tags
    assert page.eval_on_selector_all("*", "els => els.filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length") == 0
    shown = page.evaluate("document.querySelector('article').textContent")
    assert "</script><script>alert(1)</script>" in shown  # drawn as text
    assert dialogs == [] and errors == [] and outside == []
    page.close()


def test_every_live_figure_responds_and_shows_the_pythons_values(site, site_dir, browser):
    pages = _pages_with_figures(site_dir)
    assert pages, "no page of the built site holds an interactive figure"
    problems = []
    for path, kinds in pages:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        outside = _record_requests(page, site)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(site + path, wait_until="load")
        page.wait_for_load_state("networkidle")
        for i, node in enumerate(page.query_selector_all(".anatomy-live")):
            kind = node.get_attribute("data-kind")
            if not node.evaluate("e => e.classList.contains('anatomy-live-ready')"):
                problems.append(f"{path}: {kind} figure {i} was not drawn")
                continue
            if kind not in FIGURE_CHECKS:
                problems.append(f"{path}: no browser check for the {kind} figure (add it to FIGURE_CHECKS)")
                continue
            data = json.loads(node.eval_on_selector("script.anatomy-live-data", "s => s.textContent"))
            node.scroll_into_view_if_needed()
            pairs = node.evaluate(f"async (el) => ({FIGURE_CHECKS[kind]})(el, JSON.parse(el.querySelector('script.anatomy-live-data').textContent))")
            if not pairs:
                problems.append(f"{path}: the {kind} check compared nothing")
            problems += [f"{path}: {kind} figure {i} shows {shown!r}, the data says {expected!r}"
                         for shown, expected in pairs if shown != expected]
            assert data  # the embedded data parses in Python as well
            # labels in the page's language: the Chinese description on zh and zh-TW pages, and the
            # figure's text holds its labels in that language (those of the other language only where they agree)
            lang = "zh" if path.startswith("zh") else "en"
            pairs_ = [v for v in data.get("labels", {}).values() if isinstance(v, dict) and set(v) == {"en", "zh"}]
            text = node.evaluate("e => e.textContent")
            shown_labels = [p[lang] for p in pairs_ if p[lang].split("{")[0].strip() and p[lang].split("{")[0].strip() in text]
            if not shown_labels:
                problems.append(f"{path}: the {kind} figure shows none of its {lang} labels")
            other = "en" if lang == "zh" else "zh"
            problems += [f"{path}: the {kind} figure shows the {other} label {p[other]!r}" for p in pairs_
                         if p[other] != p[lang] and len(p[other]) > 3 and p[other] in text and p[lang] not in text]
            if lang == "zh" and node.get_attribute("aria-label") != node.get_attribute("data-alt-zh"):
                problems.append(f"{path}: the {kind} figure is not described in Chinese")
        wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if wide > 1:
            problems.append(f"{path}: the page scrolls sideways by {wide} px at 390 px")
        problems += [f"{path}: request outside the site: {u}" for u in outside]
        problems += [f"{path}: script error: {e}" for e in errors]
        page.close()
    assert not problems, "\n".join(problems)


def test_zh_tw_figures_carry_traditional_labels(site_dir):
    """The zh label of every pair in a zh-TW page's figure data is the Traditional conversion of the zh page's."""
    convert = script("traditional").convert_text
    checked = 0
    for path, _ in _pages_with_figures(site_dir):
        if not path.startswith("zh-TW/"):
            continue
        tw = (site_dir / path / "index.html").read_text(encoding="utf-8")
        zh = (site_dir / path.replace("zh-TW/", "zh/", 1) / "index.html").read_text(encoding="utf-8")
        zh_figures, tw_figures = live.figures(zh), live.figures(tw)
        assert len(zh_figures) == len(tw_figures)
        for a, b in zip(zh_figures, tw_figures):
            assert json.loads(b.text) == live._convert_pairs(json.loads(a.text), convert)
            assert b.label == b.alt_zh == convert(a.alt_zh) and a.label == a.alt_zh
            checked += 1
    assert checked, "no zh-TW page holds an interactive figure"



# ---- the figures of live-core: the logit lens (Chapter 7) and the temperature slider (Chapter 4) ----

def _hostile_lens(tokens: tuple[str, ...]) -> dict:
    """A LogitLens record whose prompt, tokens and top tokens are all hostile, through live_lens."""
    import torch

    from anatomy.lens import LogitLens
    from anatomy.tokens import Token

    L, T, k = 3, 4, 5
    ids = torch.arange(L * T * k).reshape(L, T, k) % len(tokens)
    probs = torch.softmax(torch.linspace(3, 0, k), 0).expand(L, T, k).clone()
    text = tuple(tuple(tuple(tokens[j] for j in pos) for pos in layer) for layer in ids.tolist())
    lens = LogitLens(tokens[0], tokens[1], tuple(Token(i, s, s, False) for i, s in enumerate(tokens[:T])), ids, probs,
                     text, (), (), torch.zeros(L, T, 0))
    return live_lens([lens, lens], k=k).data


def _hostile_temperature(tokens: tuple[str, ...]) -> dict:
    import torch

    from anatomy.prediction import NextTokens

    logits = torch.linspace(4, 0, len(tokens))
    base = NextTokens(tokens[0], tokens[1], torch.arange(3), logits, torch.softmax(logits, 0), 1.0, tokens)
    return live_temperature([anatomy.with_temperature(base, t) for t in (0.5, 1, 2)], k=len(tokens)).data


HOSTILE_DATA.update(lens=_hostile_lens, temperature=_hostile_temperature)

# The lens: hover a cell, read the panel; then the arrow key up (one layer later) changes the panel.
FIGURE_CHECKS["lens"] = """async (el, data) => {
    const A = window.AnatomyLive, out = [];
    const rows = () => [...el.querySelectorAll('.anatomy-live-panel .anatomy-live-bars > span')]
        .filter(s => !s.classList.contains('anatomy-live-bar')).map(s => s.textContent);
    const expect = (d, r, p) => d.top[r][p].flatMap((v, j) => [A.tok(d.vocab[v]), A.pct(d.probs[r][p][j])]);
    const buttons = [...el.querySelectorAll('.anatomy-live-choice')];
    for (let m = 0; m < data.models.length; m++) {
        if (buttons.length) buttons[m].click();
        const d = data.models[m], T = d.tokens.length, R = d.stages.length;
        const r = Math.floor(R / 2), p = T - 1;
        const cell = el.querySelector(`.anatomy-live-cell[data-row="${r}"][data-pos="${p}"]`);
        const before = rows().join('|');
        cell.dispatchEvent(new MouseEvent('mouseenter'));
        const shown = rows();
        out.push([shown.join('|'), expect(d, r, p).join('|')]);
        out.push([String(cell.textContent), A.tok(d.vocab[d.top[r][p][0]])]);
        el.focus();
        el.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowUp', bubbles: true}));
        out.push([rows().join('|'), expect(d, r + 1, p).join('|')]);
        out.push([String(before !== shown.join('|') || r === R - 1), 'true']);  // the hover changed the panel
        const title = el.querySelector('.anatomy-live-panel-title');
        out.push([title.dataset.row + ',' + title.dataset.pos, (r + 1) + ',' + p]);
    }
    return out;
}"""

# Temperature: the slider moved by the keyboard shows the probabilities and entropy of the next T.
FIGURE_CHECKS["temperature"] = """async (el, data) => {
    const A = window.AnatomyLive, out = [];
    const shown = () => [...el.querySelectorAll('.anatomy-live-val')].map(s => s.textContent).join('|');
    const buttons = [...el.querySelectorAll('.anatomy-live-choice')];
    for (let m = 0; m < data.models.length; m++) {
        if (buttons.length) buttons[m].click();
        const d = data.models[m], slider = el.querySelector('input[type=range]');
        const i = Number(slider.value);
        out.push([shown(), d.probs[i].map(A.pct).join('|')]);
        const before = shown();
        el.focus();
        const key = i + 1 < d.temps.length ? 'ArrowRight' : 'ArrowLeft', j = i + 1 < d.temps.length ? i + 1 : i - 1;
        el.dispatchEvent(new KeyboardEvent('keydown', {key: key, bubbles: true}));
        out.push([shown(), d.probs[j].map(A.pct).join('|')]);
        out.push([String(before !== shown()), 'true']);
        out.push([el.querySelector('.anatomy-live-entropy').textContent, A.fmt(d.entropy[j])]);
        out.push([el.querySelector('.anatomy-live-temp').textContent, 'T = ' + A.fmt(d.temps[j])]);
        out.push([[...el.querySelectorAll('.anatomy-live-tok')].map(s => s.textContent).join('|'), d.tokens.map(A.tok).join('|')]);
    }
    return out;
}"""


def test_live_lens_data_is_the_records_own_top_tokens():
    data = _hostile_lens(HOSTILE)
    m = data["models"][0]
    assert m["tokens"] == list(HOSTILE[:4]) and m["stages"][0] == {"en": "emb", "zh": "嵌入"} and m["stages"][1:] == ["0", "1"]
    assert [m["vocab"][i] for i in m["top"][2][3]] == [HOSTILE[j % len(HOSTILE)] for j in range(55, 60)]
    assert m["probs"][0][0] == sig(torch_softmax_5())


def torch_softmax_5():
    import torch

    return torch.softmax(torch.linspace(3, 0, 5), 0).tolist()


def test_live_temperature_data_reads_the_records():
    data = _hostile_temperature(HOSTILE)
    m = data["models"][0]
    assert m["temps"] == [0.5, 1.0, 2.0] and m["tokens"] == list(HOSTILE)
    assert m["entropy"][0] < m["entropy"][1] < m["entropy"][2]
    assert all(abs(sum(p) - 1) < 1e-3 for p in m["probs"])
    with pytest.raises(AnatomyError, match="No distributions"):
        live_temperature([])
    with pytest.raises(AnatomyError, match="live_lens draws LogitLens"):
        live_lens(["x"])


# ---- the figures of live-more: attention (Chapters 9, 10), patching (Chapter 17), SAE features (Chapter 16) ----

def _hostile_attention(tokens: tuple[str, ...]) -> dict:
    """An attention_weights record (3 layers, 2 heads) and an attention_by_hand-like one over hostile tokens."""
    import torch

    from anatomy.dissect import Attention
    from anatomy.tokens import Token

    T = min(len(tokens), 6)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 2, T, T, generator=g).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    toks = tuple(Token(i, s, s, False) for i, s in enumerate(tokens[:T]))
    return anatomy.plot.live_attention(Attention(tokens[0], tokens[1], toks, w), start={tokens[0]: (1, 1, T - 1)}).data


HOSTILE_DATA["attention"] = _hostile_attention

# Attention: the token strips show the data's row and column of the selected token; a hover, ↓ (next
# head) and PageDown (next layer) change them; the readout names the largest weight of the row.
FIGURE_CHECKS["attention"] = """async (el, data) => {
    const out = [], buttons = [...el.querySelectorAll('.anatomy-live-choices .anatomy-live-choice')];
    const key = k => el.dispatchEvent(new KeyboardEvent('keydown', {key: k, bubbles: true}));
    const shown = row => [...el.querySelectorAll(row + ' .al-value')].map(s => s.textContent).join('|');
    for (let m = 0; m < data.models.length; m++) {
        if (buttons.length) buttons[m].click();
        const d = data.models[m], T = d.tokens.length, per = T * (T + 1) / 2;
        const w = (l, h, i, j) => d.w[l][h * per + i * (i + 1) / 2 + j] / data.scale;
        const row = (l, h, q) => [...Array(T).keys()].map(j => j <= q ? w(l, h, q, j).toFixed(3) : '·').join('|');
        const col = (l, h, q) => [...Array(T).keys()].map(i => i >= q ? w(l, h, i, q).toFixed(3) : '·').join('|');
        let [l, h, q] = d.start;
        out.push([shown('.al-to'), row(l, h, q)], [shown('.al-from'), col(l, h, q)]);
        const before = shown('.al-to') + shown('.al-from');
        q = q > 0 ? q - 1 : T - 1;
        el.querySelectorAll('.al-to .al-token')[q].dispatchEvent(new MouseEvent('mouseenter'));
        out.push([shown('.al-to'), row(l, h, q)], [shown('.al-from'), col(l, h, q)]);
        out.push([String(before !== shown('.al-to') + shown('.al-from')), 'true']);
        el.focus();
        key('ArrowDown'); h = (h + 1) % d.heads;
        out.push([shown('.al-to'), row(l, h, q)]);
        key('PageDown'); l = (l + 1) % d.layers.length;
        out.push([shown('.al-to'), row(l, h, q)], [shown('.al-from'), col(l, h, q)]);
        let best = 0;
        for (let j = 0; j <= q; j++) if (w(l, h, q, j) > w(l, h, q, best)) best = j;
        const readout = el.querySelector('.al-readout');
        out.push([readout.dataset.query + ',' + readout.dataset.key, q + ',' + best]);
        out.push([readout.textContent.split(' ').pop(), w(l, h, q, best).toFixed(3)]);
    }
    return out;
}"""


def test_live_attention_data_is_the_records_weights_in_thousandths():
    import torch

    from anatomy.dissect import Attention
    from anatomy.tokens import Token

    data = _hostile_attention(HOSTILE)
    m = data["models"][0]
    assert m["tokens"] == list(HOSTILE[:6]) and m["layers"] == [0, 1, 2] and m["heads"] == 2 and m["start"] == [1, 1, 5]
    T, g = 6, torch.Generator().manual_seed(0)
    w = torch.randn(3, 2, T, T, generator=g).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    per = T * (T + 1) // 2
    for layer, head, i, j in ((0, 0, 0, 0), (1, 1, 5, 2), (2, 0, 3, 3), (2, 1, 5, 0)):
        assert m["w"][layer][head * per + i * (i + 1) // 2 + j] == round(1000 * float(w[layer, head, i, j]))
    toks = tuple(Token(i, s, s, False) for i, s in enumerate(HOSTILE[:T]))
    with pytest.raises(AnatomyError, match="outside its 3 layers"):
        anatomy.plot.live_attention(Attention("m", "p", toks, w), start={"m": (3, 0, 0)})
    with pytest.raises(AnatomyError, match="live_attention takes records"):
        anatomy.plot.live_attention(w)

# -- live-more: patching (Chapter 17)

def _hostile_patching(tokens: tuple[str, ...]) -> dict:
    import torch

    from anatomy.circuits import ComponentPatching, FactPair

    pairs = tuple(FactPair(tokens[i], tokens[i + 1], tokens[i + 2], (tokens[i + 3], tokens[i + 4]), (1, 2), (1,), 4, "test")
                  for i in range(2))
    g = torch.Generator().manual_seed(0)
    grid = lambda: torch.randn(2, 3, 4, 2, generator=g)  # noqa: E731  [N, kinds, L, positions]
    r = ComponentPatching(tokens[5], tokens[6], pairs, (0, 2), ("subject", "last"), torch.tensor([3.0, 2.0]),
                          torch.tensor([-1.0, -2.0]), grid(), grid(), 0.1)
    return anatomy.plot.live_patching([r]).data


HOSTILE_DATA["patching"] = _hostile_patching

# Patching: hovering a cell shows the data's clean, corrupted and patched logit differences and the
# share they give; ↓ moves to the next layer, Enter switches to noising.
FIGURE_CHECKS["patching"] = """async (el, data) => {
    const out = [], sets = [...el.querySelectorAll('.al-sets .anatomy-live-choice')];
    const readout = el.querySelector('.al-readout');
    const key = k => el.dispatchEvent(new KeyboardEvent('keydown', {key: k, bubbles: true}));
    for (let s = 0; s < data.sets.length; s++) {
        if (sets.length) sets[s].click();
        const d = data.sets[s], P = d.positions.length, cols = data.kinds.length * P, pair = d.pairs[0];
        const value = (dir, r, c) => pair[dir][Math.floor(c / P)][r][c % P];
        const r = Math.floor(d.layers.length / 2), c = cols - 1;
        const cell = el.querySelector(`.al-cell[data-row="${r}"][data-col="${c}"]`);
        const before = readout.textContent;
        cell.dispatchEvent(new MouseEvent('mouseenter'));
        const v = value('denoise', r, c), gap = pair.clean_d - pair.corrupted_d;
        out.push([readout.dataset.clean + ',' + readout.dataset.corrupted + ',' + readout.dataset.patched,
                  pair.clean_d + ',' + pair.corrupted_d + ',' + v]);
        out.push([cell.textContent, ((v - pair.corrupted_d) / gap).toFixed(2)]);
        out.push([String(readout.textContent.includes(' ' + v + ';')), 'true']);
        out.push([String(before !== readout.textContent), 'true']);
        el.focus();
        const r2 = (r + 1) % d.layers.length;
        key('ArrowDown');
        out.push([readout.dataset.patched, String(value('denoise', r2, c))]);
        key('Enter');
        out.push([readout.dataset.patched, String(value('noise', r2, c))]);
        const below = el.querySelector(`.al-cell[data-row="${r2}"][data-col="${c}"]`);
        out.push([below.textContent, ((pair.clean_d - value('noise', r2, c)) / gap).toFixed(2)]);
        key('Enter');
    }
    return out;
}"""


# -- live-more: SAE features (Chapter 16)

def _hostile_sae(tokens: tuple[str, ...]) -> dict:
    from anatomy.sae import FeatureGallery, FeaturePage

    pages = tuple(FeaturePage(tokens[j], 6, 100 + j, 0.0123, tuple((tokens[i], tokens[i + 1], 3.0 - i) for i in range(3)),
                              tokens[:4], tuple(tuple((tokens[(i + n) % len(tokens)], 0.5 * n) for n in range(4)) for i in range(3)))
                  for j in range(2))
    return anatomy.plot.live_sae(FeatureGallery(pages)).data



HOSTILE_DATA["sae"] = _hostile_sae

# SAE: the first latent's promoted tokens and per-token activations as the data holds them; a hover
# shows one token's activation; ↓ picks the next latent.
FIGURE_CHECKS["sae"] = """async (el, data) => {
    const A = window.AnatomyLive, out = [], readout = el.querySelector('.al-readout');
    const key = k => el.dispatchEvent(new KeyboardEvent('keydown', {key: k, bubbles: true}));
    for (let k = 0; k < Math.min(2, data.latents.length); k++) {
        const f = data.latents[k];
        out.push([[...el.querySelectorAll('.al-chip')].map(s => s.textContent).join('|'), f.promoted.map(A.tok).join('|')]);
        out.push([[...el.querySelectorAll('.al-context')].map(c => [...c.querySelectorAll('.al-token')].map(s => s.textContent).join('')).join('|'),
                  f.top.map(c => c.tokens.map(p => A.tok(p[0])).join('')).join('|')]);
        const c = f.top[0], last = c.tokens.length - 1;
        const before = readout.textContent;
        el.querySelector(`.al-token[data-context="0"][data-index="${last}"]`).dispatchEvent(new MouseEvent('mouseenter'));
        out.push([readout.dataset.value, String(c.tokens[last][1])]);
        out.push([String(readout.textContent.endsWith(' ' + c.tokens[last][1])), 'true']);
        out.push([String(before !== readout.textContent), 'true']);
        el.focus();
        key('ArrowRight');
        const next = f.top.length > 1 ? f.top[1].tokens[0] : c.tokens[0];
        out.push([readout.dataset.value, String(next[1])]);
        key('ArrowDown');
    }
    return out;
}"""


def test_live_patching_and_sae_data_read_the_records():
    p = _hostile_patching(HOSTILE)["sets"][0]
    assert p["name"] == HOSTILE[5] and p["language"] == HOSTILE[6] and p["layers"] == [0, 2] and p["positions"] == ["subject", "last"]
    assert p["pairs"][1]["clean"] == HOSTILE[2] and p["pairs"][1]["answers"] == [HOSTILE[4], HOSTILE[5]]
    assert p["pairs"][0]["clean_d"] == 3.0 and p["pairs"][1]["corrupted_d"] == -2.0
    import torch

    g = torch.Generator().manual_seed(0)
    den, noi = torch.randn(2, 3, 4, 2, generator=g), torch.randn(2, 3, 4, 2, generator=g)
    assert p["pairs"][1]["denoise"][2][1][0] == sig(float(den[1, 2, 2, 0]))  # pair 1, MLP, layer 2, subject
    assert p["pairs"][0]["noise"][0][0][1] == sig(float(noi[0, 0, 0, 1]))
    s = _hostile_sae(HOSTILE)["latents"]
    assert [f["latent"] for f in s] == [100, 101] and s[0]["promoted"] == list(HOSTILE[:4])
    assert s[1]["top"][2] == {"token": HOSTILE[2], "activation": 1.0, "context": HOSTILE[3],
                              "tokens": [[HOSTILE[(2 + n) % len(HOSTILE)], 0.5 * n] for n in range(4)]}
    with pytest.raises(AnatomyError, match="live_sae takes"):
        anatomy.plot.live_sae(())
    # no fact pairs (models that answered none of the facts): the static "nothing to draw" figure, as component_split
    nothing = anatomy.plot.live_patching([])
    assert "answered none of the facts" in nothing.description["en"] and nothing.description["zh"]


def test_live_patching_names_the_language_of_bare_pairs():
    """component_patching of a plain list of pairs has no language: the figure reads it from the prompts."""
    import torch

    from anatomy.circuits import ComponentPatching, FactPair

    def result(clean, corrupted):
        pair = FactPair("capital", clean, corrupted, ("a", "b"), (1, 2), (1,), 4, "test")
        return ComponentPatching("m", "", (pair,), (0,), ("subject", "last"), torch.tensor([1.0]), torch.tensor([-1.0]),
                                 torch.zeros(1, 3, 1, 2), torch.zeros(1, 3, 1, 2), 0.1)

    fig = anatomy.plot.live_patching([result("The capital of France is", "The capital of Italy is"),
                                      result("法国的首都是", "意大利的首都是")])
    assert [s["language"] for s in fig.data["sets"]] == ["en", "zh"]
    assert "m (en), m (zh)" in fig.alt_en
