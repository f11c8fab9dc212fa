/* SAE features (Chapter 16): pick a latent; its top contexts with each token shaded by the
   latent's activation, and the tokens it promotes. Data: anatomy.plot.live_sae.
   Tokens are untrusted text: they go into the page with textContent only (AnatomyLive.el). */
(function () {
  "use strict";
  var A = window.AnatomyLive;

  function render(el, data) {
    var lab = data.labels, t = function (k) { return A.t(lab[k]); };
    var state = { k: 0, tok: -1 };
    var root = A.el("div", "al-sae");
    var picker = A.choices(data.latents.map(function (f) { return String(f.latent); }), 0,
      function (i) { pick(i); }, t("latent"));
    root.appendChild(A.el("div", "al-strip-title", t("latent")));
    root.appendChild(picker);
    var info = A.el("p", "al-info"), promoted = A.el("p", "al-promoted");
    var list = A.el("div", "al-contexts");
    var readout = A.el("p", "al-readout");
    readout.setAttribute("aria-live", "polite");
    root.appendChild(A.el("p", "anatomy-live-hint", t("help")));
    root.appendChild(info);
    root.appendChild(promoted);
    root.appendChild(A.el("div", "al-strip-title", t("contexts")));
    root.appendChild(list);
    root.appendChild(readout);
    el.appendChild(root);

    function latent() { return data.latents[state.k]; }
    function spans() { return list.querySelectorAll(".al-token"); }
    function pick(i) {
      state.k = i;
      state.tok = -1;
      Array.prototype.forEach.call(picker.children, function (b, j) {
        b.setAttribute("aria-pressed", j === i ? "true" : "false");
      });
      build();
    }
    function build() {
      var f = latent();
      info.textContent = t("latent") + " " + f.latent + " · " + f.model + ", " + t("layer") + " " + f.layer + " · " +
        t("frequency") + " " + A.pct(f.frequency);
      promoted.textContent = t("promoted") + ": ";
      f.promoted.forEach(function (p) { promoted.appendChild(A.el("span", "al-chip", A.tok(p))); });
      var peak = Math.max.apply(null, f.top.map(function (c) { return c.activation; }).concat([1e-9]));
      list.textContent = "";
      var n = 0;
      f.top.forEach(function (c, ci) {
        var line = A.el("div", "al-context");
        line.appendChild(A.el("span", "al-rank", (ci + 1) + ". "));
        c.tokens.forEach(function (pair, ti) {
          var s = A.el("span", "al-token al-inline", A.tok(pair[0]));
          var mine = n++;
          s.setAttribute("data-context", String(ci));
          s.setAttribute("data-index", String(ti));
          var a = Math.max(0, Math.min(1, pair[1] / peak));
          A.shade(s, [255, 140, 0], a > 0 ? 0.9 * a : null);
          s.addEventListener("mouseenter", function () { state.tok = mine; draw(); });
          s.addEventListener("click", function () { state.tok = mine; draw(); });
          line.appendChild(s);
        });
        line.appendChild(A.el("span", "al-act", String(c.activation)));
        list.appendChild(line);
      });
      draw();
    }
    function draw() {
      var f = latent(), all = spans();
      Array.prototype.forEach.call(all, function (s, i) { s.classList.toggle("al-selected", i === state.tok); });
      if (state.tok < 0 || state.tok >= all.length) {
        readout.textContent = t("activation") + ": " + f.top.map(function (c) { return c.activation; }).join(", ");
        readout.removeAttribute("data-value");
        return;
      }
      var s = all[state.tok], pair = f.top[Number(s.getAttribute("data-context"))].tokens[Number(s.getAttribute("data-index"))];
      readout.textContent = "“" + A.tok(pair[0]) + "” — " + t("activation") + " " + pair[1];
      readout.setAttribute("data-value", String(pair[1]));
    }
    el.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      var n = data.latents.length, m = spans().length;
      var moves = {
        ArrowUp: function () { pick((state.k + n - 1) % n); },
        ArrowDown: function () { pick((state.k + 1) % n); },
        ArrowLeft: function () { state.tok = state.tok <= 0 ? m - 1 : state.tok - 1; draw(); },
        ArrowRight: function () { state.tok = (state.tok + 1) % m; draw(); }
      };
      if (!moves[e.key]) return;
      e.preventDefault();
      moves[e.key]();
    });
    pick(0);
  }

  A.register("sae", render);
})();
