/* Activation patching (Chapter 17): layers × (part, positions) for one fact pair; a cell shows the
   clean, corrupted and patched logit differences. Data: anatomy.plot.live_patching.
   Prompts and tokens are untrusted text: they go into the page with textContent only (AnatomyLive.el). */
(function () {
  "use strict";
  var A = window.AnatomyLive;

  function show(x) { return x === null ? "–" : String(x); }

  function render(el, data) {
    var lab = data.labels, t = function (k) { return A.t(lab[k]); };
    var dirs = ["denoise", "noise"];
    var state = { s: 0, p: 0, d: 0, row: 0, col: 0 };
    var root = A.el("div", "al-patching");
    if (data.sets.length > 1) {
      root.appendChild(A.choices(data.sets.map(function (s) { return s.name + " (" + s.language + ")"; }), 0,
        function (i) { state.s = i; state.p = 0; build(); }, t("set")));
      root.lastChild.classList.add("al-sets");
    }
    var dirButtons = A.choices(dirs.map(t), 0, function (i) { state.d = i; draw(); }, t("direction"));
    dirButtons.classList.add("al-dirs");
    root.appendChild(dirButtons);
    var pairs = A.el("div", "al-stepper");
    pairs.setAttribute("role", "group");
    pairs.setAttribute("aria-label", t("pair"));
    var minus = A.el("button", "anatomy-live-choice", "−"), plus = A.el("button", "anatomy-live-choice", "+");
    var pairValue = A.el("output", "al-stepper-value");
    minus.type = plus.type = "button";
    minus.setAttribute("aria-label", t("pair") + " −");
    plus.setAttribute("aria-label", t("pair") + " +");
    minus.addEventListener("click", function () { stepPair(-1); });
    plus.addEventListener("click", function () { stepPair(1); });
    pairs.appendChild(A.el("span", "al-stepper-label", t("pair")));
    pairs.appendChild(minus);
    pairs.appendChild(pairValue);
    pairs.appendChild(plus);
    var controls = A.el("div", "al-controls");
    controls.appendChild(pairs);
    root.appendChild(controls);
    var prompts = A.el("p", "al-prompts");
    var grid = A.el("div", "al-grid");
    var readout = A.el("p", "al-readout");
    readout.setAttribute("aria-live", "polite");
    root.appendChild(A.el("p", "anatomy-live-hint", t("help")));
    root.appendChild(prompts);
    var scroll = A.el("div", "anatomy-live-scroll");
    scroll.appendChild(grid);
    root.appendChild(scroll);
    root.appendChild(readout);
    el.appendChild(root);

    function set() { return data.sets[state.s]; }
    function stepPair(d) { var n = set().pairs.length; state.p = (state.p + d + n) % n; draw(); }
    function columns() {  /* (kind index, position index), part by part */
      var cols = [];
      data.kinds.forEach(function (k, ki) {
        set().positions.forEach(function (p, pi) { cols.push([ki, pi]); });
      });
      return cols;
    }
    function cell(row, col) {
      var s = set(), pair = s.pairs[state.p], c = columns()[col];
      var patched = pair[dirs[state.d]][c[0]][row][c[1]];
      var gap = pair.clean_d - pair.corrupted_d, share = null;
      if (patched !== null && gap !== 0) {
        share = state.d === 0 ? (patched - pair.corrupted_d) / gap : (pair.clean_d - patched) / gap;
      }
      return { patched: patched, share: share, pair: pair, kind: data.kinds[c[0]], position: s.positions[c[1]] };
    }
    function build() {
      var s = set(), cols = columns();
      grid.textContent = "";
      grid.style.gridTemplateColumns = "auto repeat(" + cols.length + ", minmax(2.8em, auto))";
      grid.appendChild(A.el("span", "al-head", t("layers")));
      cols.forEach(function (c) {
        grid.appendChild(A.el("span", "al-head al-colhead", t(data.kinds[c[0]]) + "\n" + t(s.positions[c[1]])));
      });
      s.layers.forEach(function (layer, row) {
        grid.appendChild(A.el("span", "al-head", String(layer)));
        cols.forEach(function (c, col) {
          var b = A.el("span", "al-cell");
          b.setAttribute("data-row", String(row));
          b.setAttribute("data-col", String(col));
          b.addEventListener("mouseenter", function () { state.row = row; state.col = col; draw(); });
          b.addEventListener("click", function () { state.row = row; state.col = col; draw(); });
          grid.appendChild(b);
        });
      });
      state.row = Math.min(state.row, s.layers.length - 1);
      state.col = Math.min(state.col, cols.length - 1);
      draw();
    }
    function draw() {
      var s = set(), pair = s.pairs[state.p];
      pairValue.textContent = (state.p + 1) + "/" + s.pairs.length;
      Array.prototype.forEach.call(dirButtons.children, function (b, i) {
        b.setAttribute("aria-pressed", i === state.d ? "true" : "false");
      });
      prompts.textContent = t("clean") + ": “" + pair.clean + "” → " + A.tok(pair.answers[0]) + " · " +
        t("corrupted") + ": “" + pair.corrupted + "” → " + A.tok(pair.answers[1]);
      Array.prototype.forEach.call(grid.querySelectorAll(".al-cell"), function (b) {
        var row = Number(b.getAttribute("data-row")), col = Number(b.getAttribute("data-col")), v = cell(row, col).share;
        b.textContent = v === null ? "" : v.toFixed(2);
        A.shade(b, v !== null && v < 0 ? [31, 119, 180] : [214, 39, 40], v === null ? null : Math.min(0.9, Math.abs(v)));
        b.classList.toggle("al-selected", row === state.row && col === state.col);
      });
      var c = cell(state.row, state.col);
      readout.textContent = t("layers") + " " + s.layers[state.row] + ", " + t(c.kind) + ", " + t(c.position) +
        " — " + t("diff") + " " + A.tok(pair.answers[0]) + " − " + A.tok(pair.answers[1]) + ": " +
        t("clean") + " " + show(pair.clean_d) + ", " + t("corrupted") + " " + show(pair.corrupted_d) + ", " +
        t("patched") + " " + show(c.patched) + "; " + t("share") + " " + (c.share === null ? "–" : c.share.toFixed(2));
      readout.setAttribute("data-patched", show(c.patched));
      readout.setAttribute("data-clean", show(pair.clean_d));
      readout.setAttribute("data-corrupted", show(pair.corrupted_d));
    }
    el.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      var rows = set().layers.length, cols = columns().length;
      var moves = {
        ArrowUp: function () { state.row = (state.row + rows - 1) % rows; },
        ArrowDown: function () { state.row = (state.row + 1) % rows; },
        ArrowLeft: function () { state.col = (state.col + cols - 1) % cols; },
        ArrowRight: function () { state.col = (state.col + 1) % cols; },
        PageUp: function () { stepPair(-1); },
        PageDown: function () { stepPair(1); }
      };
      if (e.target === el && (e.key === "Enter" || e.key === " ")) moves[e.key] = function () { state.d = 1 - state.d; };
      if (!moves[e.key]) return;
      e.preventDefault();
      moves[e.key]();
      draw();
    });
    build();
  }

  A.register("patching", render);
})();
