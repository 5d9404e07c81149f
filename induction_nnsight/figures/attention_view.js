/* induction-nnsight attention view: no dependencies, no network. Every div.inv-attn on the page
   holds its data as JSON in a child script element of class inv-attn-data. */
(function () {
  "use strict";
  var SHOWN = 0.01; // weights from 1% up count as highlighted (class inv-hl)

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function shown(token) {
    return token === "" ? "\u2205" : token.replace(/\n/g, "\u23ce").replace(/\t/g, "\u21e5");
  }

  function init(root) {
    if (root.getAttribute("data-ready")) return;
    root.setAttribute("data-ready", "1");
    var data = JSON.parse(root.querySelector("script.inv-attn-data").textContent);
    var n = data.tokens.length, state = { sel: null, locked: false, dir: "from" };
    if (data.title) root.appendChild(el("div", "inv-title", data.title));
    var controls = root.appendChild(el("div", "inv-controls"));
    var heads = controls.appendChild(el("div", "inv-heads"));
    heads.appendChild(el("span", null, "Heads: "));
    data.heads.forEach(function (label, h) {
      var box = el("input", "inv-head");
      box.type = "checkbox";
      box.value = String(h);
      box.checked = data.shown.indexOf(h) >= 0;
      var tag = el("label");
      tag.appendChild(box);
      tag.appendChild(document.createTextNode(" " + label));
      heads.appendChild(tag);
    });
    var dir = controls.appendChild(el("div", "inv-dir"));
    [["from", "from the token: where it looks"], ["to", "to the token: who looks at it"]].forEach(function (d) {
      var button = el("button", null, d[1]);
      button.type = "button";
      button.setAttribute("data-dir", d[0]);
      button.setAttribute("aria-pressed", String(d[0] === "from"));
      dir.appendChild(button);
    });
    if (data.targets.length) {
      var legend = controls.appendChild(el("div", "inv-legend", "Outlined: "));
      data.targets.forEach(function (t, j) { legend.appendChild(el("span", "inv-t" + j, t.name)); });
    }
    var status = root.appendChild(el("div", "inv-status"));
    var panels = root.appendChild(el("div", "inv-panels"));
    data.heads.forEach(function (label, h) {
      var panel = panels.appendChild(el("div", "inv-panel"));
      panel.setAttribute("data-head", String(h));
      panel.hidden = data.shown.indexOf(h) < 0;
      panel.appendChild(el("div", "inv-panel-title", label));
      var text = panel.appendChild(el("div", "inv-text"));
      data.tokens.forEach(function (token, i) {
        var span = text.appendChild(el("span", "inv-tok", shown(token)));
        span.setAttribute("data-i", String(i));
        span.title = i + ": " + JSON.stringify(token);
      });
    });

    function weight(h, i, s) { // [head][query][key]
      return state.dir === "from" ? data.weights[h][s][i] : data.weights[h][i][s];
    }

    function outlined(j, i, s) {
      var keys = data.targets[j].keys;
      return state.dir === "from" ? keys[s].indexOf(i) >= 0 : keys[i].indexOf(s) >= 0;
    }

    function paint() {
      var s = state.sel;
      root.classList.toggle("inv-locked", state.locked);
      panels.querySelectorAll(".inv-panel").forEach(function (panel) {
        var h = Number(panel.getAttribute("data-head")), spans = panel.querySelectorAll(".inv-tok"), top = 0, i;
        if (s !== null) for (i = 0; i < n; i++) top = Math.max(top, weight(h, i, s));
        spans.forEach(function (span, i) {
          var w = s === null ? 0 : weight(h, i, s), cls = "inv-tok";
          if (s !== null) {
            if (w >= SHOWN) cls += " inv-hl";
            if (top > 0 && w >= top - 1e-9) cls += " inv-top";
            if (w > 0.6) cls += " inv-dark";
            if (i === s) cls += " inv-sel";
            for (var j = 0; j < data.targets.length; j++) if (outlined(j, i, s)) cls += " inv-t" + j;
          }
          span.className = cls;
          span.style.backgroundColor = w > 0 ? "rgba(31, 111, 235, " + w.toFixed(4) + ")" : "";
          span.setAttribute("data-w", w.toFixed(5));
          span.title = i + ": " + JSON.stringify(data.tokens[i]) + (s === null ? "" : " \u2014 " + w.toFixed(3));
        });
      });
      if (s === null) {
        status.textContent = "Hover a token to see where the heads look from it; click to lock.";
      } else {
        status.textContent = (state.dir === "from" ? "Attention from " : "Attention to ") + s + ": " +
          JSON.stringify(data.tokens[s]) + (state.locked ? " (locked: click it again to unlock)" : " (click to lock)");
      }
    }

    function tokenOf(event) {
      var span = event.target.closest ? event.target.closest(".inv-tok") : null;
      return span && root.contains(span) ? Number(span.getAttribute("data-i")) : null;
    }

    panels.addEventListener("mouseover", function (event) {
      var i = tokenOf(event);
      if (i !== null && !state.locked && i !== state.sel) { state.sel = i; paint(); }
    });
    panels.addEventListener("mouseleave", function () {
      if (!state.locked && state.sel !== null) { state.sel = null; paint(); }
    });
    panels.addEventListener("click", function (event) {
      var i = tokenOf(event);
      if (i === null) return;
      if (state.locked && i === state.sel) state.locked = false;
      else { state.locked = true; state.sel = i; }
      paint();
    });
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && state.locked) { state.locked = false; paint(); }
    });
    heads.addEventListener("change", function (event) {
      var h = event.target.value;
      panels.querySelector('.inv-panel[data-head="' + h + '"]').hidden = !event.target.checked;
    });
    dir.addEventListener("click", function (event) {
      var d = event.target.getAttribute && event.target.getAttribute("data-dir");
      if (!d) return;
      state.dir = d;
      dir.querySelectorAll("button").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b.getAttribute("data-dir") === d));
      });
      paint();
    });
    paint();
  }

  var own = document.currentScript && document.currentScript.parentNode; // a notebook output's own view
  if (own && own.classList && own.classList.contains("inv-attn")) init(own);
  function initAll() { document.querySelectorAll("div.inv-attn").forEach(init); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
})();
