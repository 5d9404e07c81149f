// What makes a page too wide at the current viewport: the document's scroll width, and every visible
// element that reaches past the content column (inside the article) or past the viewport (elsewhere).
// The theme lets the article container scroll sideways, so a too-wide element never widens the page
// itself; it is caught here instead. Allowed: anything inside a block made to scroll on its own (a code
// block, a table's scroll container, a notebook output) that itself stays inside the limit. Plotly's
// off-screen text measurer (#js-plotly-tester) is not content.
(() => {
  const vw = document.documentElement.clientWidth;
  const article = document.querySelector("article.bd-article");
  const column = article ? article.getBoundingClientRect() : {left: 0, right: vw};
  const SCROLLERS = "pre, div.highlight, .pst-scrollable-table-container, div.cell_output, div.output";
  const scrolls = el => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(el).overflowX);
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("#js-plotly-tester")) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const limit = article && article.contains(el) ? column : {left: 0, right: vw};
    if (r.right <= limit.right + 1 && r.left >= limit.left - 1) continue;
    let scroller = el.parentElement && el.parentElement.closest(SCROLLERS);
    while (scroller && !scrolls(scroller)) scroller = scroller.parentElement && scroller.parentElement.closest(SCROLLERS);
    if (scroller) {
      const s = scroller.getBoundingClientRect();
      if (s.right <= limit.right + 1 && s.left >= limit.left - 1) continue;
    }
    wide.push(`${name(el)} spans [${Math.round(r.left)}, ${Math.round(r.right)}] px, limit [${Math.round(limit.left)}, ${Math.round(limit.right)}]`);
  }
  return {scrollWidth: document.documentElement.scrollWidth, clientWidth: vw, wide: wide};
})()
