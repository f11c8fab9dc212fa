/* Interactive figures of LLM Anatomy (issue 27): the shared part. Plain JavaScript, no library,
   nothing loaded from outside the site.

   The chapter's code writes <div class="anatomy-live" data-kind="KIND"> holding its data as JSON in
   <script type="application/json" class="anatomy-live-data"> (src/anatomy/plot/live.py). Each
   renderer (docs/assets/live/KIND.js) calls AnatomyLive.register(KIND, render); once the page is
   parsed, render(el, data) draws every figure of that kind into its element.
   Tokens are untrusted text: put them into the page with textContent (AnatomyLive.el does), never
   innerHTML. */
(function () {
  "use strict";
  var renderers = {};

  /* "zh" on Simplified and Traditional pages (the build converts zh labels on zh-TW pages), else "en". */
  function lang() {
    return (document.documentElement.lang || "en").toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  }

  /* The page's text of a label: a {"en": ..., "zh": ...} pair, or a plain string. */
  function t(pair) {
    if (pair == null) return "";
    if (typeof pair !== "object") return String(pair);
    var s = pair[lang()];
    return s == null ? String(pair.en == null ? "" : pair.en) : String(s);
  }

  /* A number as the figures show it: 3 significant digits (0.4213 -> "0.421", 12.5 -> "12.5"),
     tiny values in exponent form (0.0000123 -> "1.23e-5"). */
  function fmt(x, digits) {
    digits = digits || 3;
    x = Number(x);
    if (!isFinite(x)) return String(x);
    if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential(digits - 1).replace("e-", "e\u2212");
    return String(Number(x.toPrecision(digits)));
  }

  /* A probability as a percentage with 3 significant digits (0.4213 -> "42.1%"). */
  function pct(p) {
    return fmt(100 * Number(p)) + "%";
  }

  /* A token made visible: control characters as \xNN (they have no glyph); the text stays text. */
  function tok(s) {
    return String(s).replace(/[\u0000-\u001f\u007f-\u009f]/g, function (c) {
      var h = c.charCodeAt(0).toString(16).toUpperCase();
      return "\\x" + (h.length < 2 ? "0" : "") + h;
    });
  }

  /* A new element: tag, class names, and text put in with textContent (never parsed as HTML). */
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }

  function draw(node) {
    if (node.classList.contains("anatomy-live-ready")) return;
    var render = renderers[node.getAttribute("data-kind")];
    if (!render) return;
    var holder = node.querySelector("script.anatomy-live-data");
    if (!holder) return;
    var data;
    try {
      data = JSON.parse(holder.textContent);
    } catch (err) {
      console.error("anatomy-live: the data of a figure is not JSON", err);
      return;
    }
    if (lang() === "zh" && node.hasAttribute("data-alt-zh")) {
      node.setAttribute("aria-label", node.getAttribute("data-alt-zh"));
    }
    if (!node.hasAttribute("tabindex")) node.setAttribute("tabindex", "0");
    try {
      render(node, data);
      node.classList.add("anatomy-live-ready");
    } catch (err) {
      console.error("anatomy-live: drawing a " + node.getAttribute("data-kind") + " figure failed", err);
    }
  }

  function drawAll(kind) {
    var nodes = document.querySelectorAll(".anatomy-live");
    for (var i = 0; i < nodes.length; i++) {
      if (!kind || nodes[i].getAttribute("data-kind") === kind) draw(nodes[i]);
    }
  }

  function register(kind, render) {
    renderers[kind] = render;
    if (document.readyState !== "loading") drawAll(kind); // a renderer that arrives after the page is parsed
  }

  /* Arrow keys on a focused figure: calls move(dRow, dCol) and stops the page from scrolling. */
  function arrows(node, move) {
    node.addEventListener("keydown", function (ev) {
      if (ev.target !== node && ev.target.tagName === "INPUT") return; // a slider moves itself
      var d = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[ev.key];
      if (!d || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      ev.preventDefault();
      move(d[0], d[1]);
    });
  }

  /* Buttons that pick one of several options (e.g. the model), like radio buttons; calls pick(i). */
  function choices(options, current, pick, label) {
    var box = el("div", "anatomy-live-choices");
    box.setAttribute("role", "group");
    if (label) box.setAttribute("aria-label", label);
    var buttons = options.map(function (name, i) {
      var b = el("button", "anatomy-live-choice", name);
      b.type = "button";
      b.setAttribute("aria-pressed", i === current ? "true" : "false");
      b.addEventListener("click", function () {
        buttons.forEach(function (o, j) { o.setAttribute("aria-pressed", j === i ? "true" : "false"); });
        pick(i);
      });
      box.appendChild(b);
      return b;
    });
    return box;
  }

  /* Shade an element by a value: background = colour rgb ([r, g, b]) at strength a (0..1) over white,
     opaque; the text black or white, whichever contrasts more (at least 4.5:1 whatever the colour,
     in the light and the dark scheme alike). a = null: no shade, the theme's colours. */
  function shade(e, rgb, a) {
    if (a == null) { e.style.background = ""; e.style.color = ""; return; }
    a = Math.max(0, Math.min(1, a));
    var c = rgb.map(function (v) { return Math.round(255 - a * (255 - v)); });
    var lin = c.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    var L = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
    e.style.background = "rgb(" + c.join(",") + ")";
    e.style.color = (L + 0.05) / 0.05 >= 1.05 / (L + 0.05) ? "#000" : "#fff";
  }

  window.AnatomyLive = {register: register, lang: lang, t: t, fmt: fmt, pct: pct, tok: tok, el: el,
                        arrows: arrows, choices: choices, shade: shade};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  }
})();
