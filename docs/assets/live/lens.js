/* The logit lens (Chapter 7): a layers x positions grid; hovering a cell, or moving to it with the
   arrow keys, shows the top tokens the LM head reads at that layer and position, with their
   probabilities. Data: anatomy.plot.live_lens (src/anatomy/plot/live_figures.py). */
(function () {
  "use strict";
  var A = window.AnatomyLive;

  function render(root, data) {
    var L = data.labels, models = data.models, m = 0, row = 0, pos = 0, cells = [];
    root.appendChild(A.el("p", "anatomy-live-title", A.t(L.title)));
    root.appendChild(A.el("p", "anatomy-live-hint", A.t(L.hint)));
    if (models.length > 1) {
      root.appendChild(A.choices(models.map(function (x) { return x.name; }), 0, function (i) {
        m = i; build(); show();
      }, A.t(L.model)));
    }
    var scroll = A.el("div", "anatomy-live-scroll");
    scroll.setAttribute("tabindex", "0"); // the keyboard reaches a box that scrolls (the arrows move the cell)
    scroll.setAttribute("role", "group");
    scroll.setAttribute("aria-label", A.t(L.grid));
    var grid = A.el("div", "anatomy-live-grid");
    scroll.appendChild(grid);
    root.appendChild(scroll);
    var panel = A.el("div", "anatomy-live-panel");
    panel.setAttribute("aria-live", "polite");
    root.appendChild(panel);

    function build() {
      var d = models[m], T = d.tokens.length, R = d.stages.length;
      row = R - 1; pos = T - 1; cells = [];
      grid.textContent = "";
      grid.style.gridTemplateColumns = "max-content repeat(" + T + ", minmax(2.5em, max-content))";
      for (var r = R - 1; r >= 0; r--) { // the last layer on top, the embedding at the bottom
        var head = A.el("div", "anatomy-live-head anatomy-live-rowhead", A.t(d.stages[r]));
        grid.appendChild(head);
        cells[r] = [];
        for (var p = 0; p < T; p++) {
          var top = d.vocab[d.top[r][p][0]], prob = d.probs[r][p][0];
          var c = A.el("div", "anatomy-live-cell", A.tok(top));
          c.style.background = "color-mix(in srgb, var(--md-primary-fg-color, #4051b5) " + Math.round(6 + 34 * prob) + "%, transparent)";
          c.setAttribute("data-row", r);
          c.setAttribute("data-pos", p);
          c.addEventListener("mouseenter", pick(r, p));
          c.addEventListener("click", pick(r, p));
          cells[r][p] = c;
          grid.appendChild(c);
        }
      }
      grid.appendChild(A.el("div", "anatomy-live-head", ""));
      for (var q = 0; q < T; q++) grid.appendChild(A.el("div", "anatomy-live-head", A.tok(d.tokens[q])));
    }

    function pick(r, p) {
      return function () { row = r; pos = p; show(); };
    }

    function show() {
      var d = models[m], k = d.top[row][pos].length;
      cells.forEach(function (line) { line.forEach(function (c) { c.classList.remove("anatomy-live-selected"); }); });
      cells[row][pos].classList.add("anatomy-live-selected");
      panel.textContent = "";
      var title = A.el("p", "anatomy-live-panel-title");
      title.setAttribute("data-row", row);
      title.setAttribute("data-pos", pos);
      title.textContent = d.name + " · " + A.t(L.layer) + " " + A.t(d.stages[row]) + " · " + A.t(L.position) + " " + pos +
        " (" + A.tok(d.tokens[pos]) + ") → " + A.t(L.top).replace("{k}", k);
      panel.appendChild(title);
      var bars = A.el("div", "anatomy-live-bars");
      for (var j = 0; j < k; j++) {
        var p = d.probs[row][pos][j];
        bars.appendChild(A.el("span", "anatomy-live-tok", A.tok(d.vocab[d.top[row][pos][j]])));
        var bar = A.el("span", "anatomy-live-bar");
        bar.style.width = Math.max(0.5, 100 * p) + "%";
        bars.appendChild(bar);
        bars.appendChild(A.el("span", "anatomy-live-val", A.pct(p)));
      }
      panel.appendChild(bars);
    }

    A.arrows(root, function (dr, dc) {
      var d = models[m];
      row = Math.min(d.stages.length - 1, Math.max(0, row - dr)); // up: a later layer
      pos = Math.min(d.tokens.length - 1, Math.max(0, pos + dc));
      show();
      var c = cells[row][pos];
      if (c.scrollIntoView) c.scrollIntoView({block: "nearest", inline: "nearest"});
    });
    build();
    show();
  }

  A.register("lens", render);
})();
