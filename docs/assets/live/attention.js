/* Attention patterns (Chapters 9 and 10): choose model, layer and head; select a token to see what
   it attends to (its row) and what attends to it (its column). Data: anatomy.plot.live_attention.
   Tokens are untrusted text: they go into the page with textContent only (AnatomyLive.el). */
(function () {
  "use strict";
  var A = window.AnatomyLive;

  /* "label − value +": a small stepper; step(d) is called with -1 or +1. */
  function stepper(label, step) {
    var box = A.el("div", "al-stepper");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", label);
    var minus = A.el("button", "anatomy-live-choice", "−"), plus = A.el("button", "anatomy-live-choice", "+");
    var value = A.el("output", "al-stepper-value");
    minus.type = plus.type = "button";
    minus.setAttribute("aria-label", label + " −");
    plus.setAttribute("aria-label", label + " +");
    minus.addEventListener("click", function () { step(-1); });
    plus.addEventListener("click", function () { step(1); });
    box.appendChild(A.el("span", "al-stepper-label", label));
    box.appendChild(minus);
    box.appendChild(value);
    box.appendChild(plus);
    return { box: box, set: function (text) { value.textContent = text; } };
  }

  function render(el, data) {
    var lab = data.labels, t = function (k) { return A.t(lab[k]); };
    var state = { m: 0, l: 0, h: 0, q: 0 };
    var root = A.el("div", "al-attention");
    var controls = A.el("div", "al-controls");
    var toRow = A.el("div", "al-tokens al-to"), fromRow = A.el("div", "al-tokens al-from");
    var readout = A.el("p", "al-readout");
    readout.setAttribute("aria-live", "polite");
    if (data.models.length > 1) {
      root.appendChild(A.choices(data.models.map(function (m) { return m.name; }), 0, setModel, t("model")));
    }
    var layerStep = stepper(t("layer"), function (d) { move("l", d); });
    var headStep = stepper(t("head"), function (d) { move("h", d); });
    controls.appendChild(layerStep.box);
    controls.appendChild(headStep.box);
    root.appendChild(controls);
    root.appendChild(A.el("p", "anatomy-live-hint", t("help")));
    root.appendChild(A.el("div", "al-strip-title", t("to")));
    root.appendChild(toRow);
    root.appendChild(A.el("div", "al-strip-title", t("from")));
    root.appendChild(fromRow);
    root.appendChild(readout);
    el.appendChild(root);

    function model() { return data.models[state.m]; }
    /* weight of query i on key j in the current layer and head (0 above the diagonal) */
    function weight(i, j) {
      var m = model();
      if (j > i) return 0;
      var T = m.tokens.length, per = T * (T + 1) / 2;
      return m.w[state.l][state.h * per + i * (i + 1) / 2 + j] / data.scale;
    }
    function move(what, d) {
      var m = model(), n = { l: m.layers.length, h: m.heads, q: m.tokens.length }[what];
      state[what] = (state[what] + d + n) % n;
      draw();
    }
    function setModel(i) {
      state.m = i;
      var m = model();
      state.l = m.start[0]; state.h = m.start[1]; state.q = m.start[2];
      chips(toRow); chips(fromRow);
      draw();
    }
    function chips(row) {
      row.textContent = "";
      model().tokens.forEach(function (tok, j) {
        var c = A.el("span", "al-token");
        c.setAttribute("data-pos", String(j));
        c.appendChild(A.el("span", "al-text", A.tok(tok)));
        c.appendChild(A.el("span", "al-value"));
        c.addEventListener("mouseenter", function () { state.q = j; draw(); });
        c.addEventListener("click", function () { state.q = j; draw(); });
        row.appendChild(c);
      });
    }
    function paint(row, values, rgb) {
      Array.prototype.forEach.call(row.children, function (c, j) {
        var v = values[j];
        c.classList.toggle("al-selected", j === state.q);
        c.classList.toggle("al-none", v === null);
        A.shade(c, rgb, v === null ? null : Math.min(0.9, v));
        c.lastChild.textContent = v === null ? "·" : v.toFixed(3);
      });
    }
    function draw() {
      var m = model(), T = m.tokens.length, q = state.q, to = [], from = [], best = 0;
      for (var j = 0; j < T; j++) {
        to.push(j <= q ? weight(q, j) : null);
        from.push(j >= q ? weight(j, q) : null);
        if (j <= q && weight(q, j) > weight(q, best)) best = j;
      }
      layerStep.set(String(m.layers[state.l]));
      headStep.set(String(state.h));
      paint(toRow, to, [255, 140, 0]);
      paint(fromRow, from, [66, 133, 244]);
      readout.textContent = t("layer") + " " + m.layers[state.l] + ", " + t("head") + " " + state.h + ": “" +
        A.tok(m.tokens[q]) + "” (" + q + ") → “" + A.tok(m.tokens[best]) + "” (" + best + "), " + t("weight") + " " +
        weight(q, best).toFixed(3);
      readout.setAttribute("data-query", String(q));
      readout.setAttribute("data-key", String(best));
    }
    el.addEventListener("keydown", function (e) {
      var keys = { ArrowLeft: ["q", -1], ArrowRight: ["q", 1], ArrowUp: ["h", -1], ArrowDown: ["h", 1],
                   PageUp: ["l", -1], PageDown: ["l", 1] };
      var k = keys[e.key];
      if (!k || e.altKey || e.ctrlKey || e.metaKey) return;
      e.preventDefault();
      move(k[0], k[1]);
    });
    setModel(0);
  }

  A.register("attention", render);
})();
