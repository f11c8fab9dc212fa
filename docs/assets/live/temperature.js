/* Temperature (Chapter 4): a slider over the temperatures the chapter computed; the bars are the
   top tokens' probabilities at the chosen T, with the entropy in bits.
   Data: anatomy.plot.live_temperature (src/anatomy/plot/lm_head.py). */
(function () {
  "use strict";
  var A = window.AnatomyLive;

  function render(root, data) {
    var L = data.labels, models = data.models, m = 0;
    root.appendChild(A.el("p", "anatomy-live-title", A.t(L.title)));
    root.appendChild(A.el("p", "anatomy-live-hint", A.t(L.hint)));
    if (models.length > 1) {
      root.appendChild(A.choices(models.map(function (x) { return x.name; }), 0, function (i) {
        m = i; reset(); show();
      }, A.t(L.model)));
    }
    var line = A.el("div", "anatomy-live-slider");
    var id = "anatomy-live-t-" + Math.random().toString(36).slice(2);
    var label = A.el("label", null, A.t(L.temperature));
    label.setAttribute("for", id);
    var slider = A.el("input");
    slider.type = "range";
    slider.id = id;
    slider.min = "0";
    slider.step = "1";
    var value = A.el("output", "anatomy-live-temp");
    value.setAttribute("for", id);
    line.appendChild(label);
    line.appendChild(slider);
    line.appendChild(value);
    root.appendChild(line);
    var panel = A.el("div", "anatomy-live-panel");
    panel.setAttribute("aria-live", "polite");
    root.appendChild(panel);

    function reset() { // at T = 1 (the model's own distribution) when the chapter computed it
      var d = models[m], one = d.temps.indexOf(1);
      slider.max = String(d.temps.length - 1);
      slider.value = String(one >= 0 ? one : 0);
    }

    function show() {
      var d = models[m], i = Number(slider.value), top = 0;
      d.probs.forEach(function (ps) { top = Math.max(top, ps[0]); }); // one scale for all T: flatter = shorter
      value.textContent = "T = " + A.fmt(d.temps[i]);
      slider.setAttribute("aria-valuetext", "T = " + A.fmt(d.temps[i]));
      panel.textContent = "";
      var title = A.el("p", "anatomy-live-panel-title");
      title.textContent = d.name + " · “" + A.tok(d.prompt) + "” →";
      panel.appendChild(title);
      var spread = A.el("p", "anatomy-live-note", A.t(L.entropy) + ": ");
      spread.appendChild(A.el("span", "anatomy-live-entropy", A.fmt(d.entropy[i])));
      spread.appendChild(document.createTextNode(" " + A.t(L.bits)));
      panel.appendChild(spread);
      var bars = A.el("div", "anatomy-live-bars");
      d.tokens.forEach(function (tk, j) {
        var p = d.probs[i][j];
        bars.appendChild(A.el("span", "anatomy-live-tok", A.tok(tk)));
        var bar = A.el("span", "anatomy-live-bar");
        bar.style.width = Math.max(0.5, 100 * p / top) + "%";
        bars.appendChild(bar);
        bars.appendChild(A.el("span", "anatomy-live-val", A.pct(p)));
      });
      panel.appendChild(bars);
    }

    slider.addEventListener("input", show);
    A.arrows(root, function (dr, dc) { // the figure focused: left/right (or down/up) move the slider
      var step = dc || -dr;
      slider.value = String(Math.min(Number(slider.max), Math.max(0, Number(slider.value) + step)));
      show();
    });
    reset();
    show();
  }

  A.register("temperature", render);
})();
