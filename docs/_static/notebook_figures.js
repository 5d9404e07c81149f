// Plotly figures in notebook outputs are drawn by inline scripts while the page is still being parsed,
// before the theme's right-hand column exists, so they come out wider than the content column.
// Fit each one to its container once the page is laid out (then mark it data-fitted="true"), and
// again whenever the container resizes.
(function () {
  function fit() {
    if (typeof Plotly === "undefined") {
      return;
    }
    document.querySelectorAll("div.plotly-graph-div").forEach(function (div) {
      Plotly.Plots.resize(div).then(function () { div.dataset.fitted = "true"; });
      if (window.ResizeObserver && !div.dataset.observed) {
        div.dataset.observed = "true";
        new ResizeObserver(function () { Plotly.Plots.resize(div); }).observe(div.parentElement);
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", fit);
  } else {
    fit();
  }
})();
