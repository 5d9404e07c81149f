// Render every <div class="plotly-chart"> from the figure JSON inlined beside it.
// Sets data-rendered="true" once Plotly has drawn it, or data-error on failure.
(function () {
  function render(div) {
    var source = document.getElementById(div.dataset.figure);
    try {
      var figure = JSON.parse(source.textContent);
      var config = { responsive: true, displaylogo: false };
      Plotly.newPlot(div, figure.data, figure.layout || {}, config).then(
        function () { div.dataset.rendered = "true"; },
        function (error) { div.dataset.error = String(error); console.error("chart " + div.id + ": " + error); }
      );
    } catch (error) {
      div.dataset.error = String(error);
      console.error("chart " + div.id + ": " + error);
    }
  }
  function renderAll() {
    if (typeof Plotly === "undefined") {
      console.error("plotly.js did not load: charts cannot render");
      return;
    }
    document.querySelectorAll("div.plotly-chart").forEach(render);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderAll);
  } else {
    renderAll();
  }
})();
