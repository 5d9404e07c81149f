// Long chart titles wrap to the width of the chart's column instead of running past the chart's edge
// (an SVG clips them). Loaded after plotly.js and before anything draws: every Plotly.newPlot call on
// the page (the chart directive's and notebook outputs') gets its title broken into lines at word
// boundaries, and the top margin grown to hold the lines.
(function () {
  if (typeof Plotly === "undefined" || Plotly.__fitTitles) {
    return;
  }
  var CHAR_WIDTH = 0.56; // average glyph width of Plotly's default font, in font sizes
  var MARGIN = 70; // px of the chart's width the title does not get
  var TAGGED = /^<(sup|sub|b|i)>([\s\S]*)<\/\1>$/;

  function wrap(text, maxChars) {
    var lines = [];
    var line = "";
    text.split(/\s+/).forEach(function (word) {
      if (line && line.length + 1 + word.length > maxChars) {
        lines.push(line);
        line = word;
      } else {
        line = line ? line + " " + word : word;
      }
    });
    if (line) {
      lines.push(line);
    }
    return lines;
  }

  function fitTitle(layout, width) {
    var title = layout.title;
    var text = typeof title === "string" ? title : title && title.text;
    if (!text || !width) {
      return layout;
    }
    var size = (title.font && title.font.size) || ((layout.font && layout.font.size) || 12) * 1.4;
    var maxChars = Math.max(20, Math.floor((width - MARGIN) / (CHAR_WIDTH * size)));
    var wrapped = false;
    var lines = [];
    text.split(/<br\s*\/?>/i).forEach(function (segment) {
      var tagged = segment.match(TAGGED);
      var tag = tagged ? tagged[1] : null;
      var inner = tagged ? tagged[2] : segment;
      var limit = tag === "sup" || tag === "sub" ? Math.floor(maxChars / 0.7) : maxChars;
      if (inner.length <= limit || /<[^>]+>/.test(inner)) { // fits, or holds markup of its own
        lines.push(segment);
        return;
      }
      wrapped = true;
      wrap(inner, limit).forEach(function (part) {
        lines.push(tag ? "<" + tag + ">" + part + "</" + tag + ">" : part);
      });
    });
    if (!wrapped) {
      return layout;
    }
    // The title sits in the middle of the top margin: make that margin hold every line.
    var height = lines.reduce(function (sum, line) {
      return sum + (/^<(sup|sub)>/.test(line) ? 0.7 : 1) * size * 1.3;
    }, 0);
    var fitted = Object.assign({}, layout);
    fitted.title = Object.assign({}, typeof title === "string" ? {} : title, {text: lines.join("<br>")});
    var top = (layout.margin && layout.margin.t) || 100;
    fitted.margin = Object.assign({}, layout.margin, {t: Math.max(top, Math.ceil(height) + 40)});
    return fitted;
  }

  var newPlot = Plotly.newPlot;
  Plotly.newPlot = function (gd, data, layout, config) {
    var div = typeof gd === "string" ? document.getElementById(gd) : gd;
    if (div && Array.isArray(data) && layout && typeof layout === "object") {
      var width = layout.width || div.clientWidth || (div.parentElement && div.parentElement.clientWidth);
      layout = fitTitle(layout, width);
    }
    return newPlot.call(this, gd, data, layout, config);
  };
  Plotly.__fitTitles = true;
})();
