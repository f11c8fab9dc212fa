// MathJax 3 (docs/assets/mathjax), configured here and loaded only on a page that has math.
// This script is deferred (mkdocs.yml): it runs once the page is parsed, and MathJax itself
// (about 1 MB, the site's heaviest script) is added then, asynchronously, only where a math
// delimiter appears in the article outside code. Pages without math never download it.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
  },
  // the build typesets every page (scripts/typeset.py): a menu would leave a focus stop on each formula
  options: { ignoreHtmlClass: "highlight", enableMenu: false },
};

(function () {
  var self = document.currentScript;
  var src = self && self.src.replace(/mathjax-config\.js([?#].*)?$/, "mathjax/tex-chtml.js");
  var SKIP = "pre, code, script, style, textarea, .highlight";

  function hasMath() {
    var root = document.querySelector("article") || document.body;
    if (root.querySelector(".arithmatex")) return true;
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode: function (node) {
        return node.parentElement && node.parentElement.closest(SKIP) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT;
      },
    });
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      if (/\$|\\\(|\\\[/.test(node.data)) return true;
    }
    return false;
  }

  // The fonts nearly every formula uses, fetched beside the script: typeset before they arrive, a
  // formula is measured with a fallback font, then again, and the lines around it move twice.
  var FONTS = ["MathJax_Zero", "MathJax_Main-Regular", "MathJax_Math-Italic"];

  function load() {
    if (!src || !hasMath()) return;
    FONTS.forEach(function (name) {
      var link = document.createElement("link");
      link.rel = "preload";
      link.as = "font";
      link.type = "font/woff";
      link.crossOrigin = "anonymous";
      link.href = src.replace(/tex-chtml\.js$/, "output/chtml/fonts/woff-v2/" + name + ".woff");
      document.head.appendChild(link);
    });
    var script = document.createElement("script");
    script.src = src;
    script.async = true;
    document.head.appendChild(script);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
