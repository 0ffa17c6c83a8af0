/* Draws the customer's usage charts as SVG from the page's JSON data
   (<script type="application/json" id="usage-chart-data">), with the plan's limit as a dashed
   line. No inline script and no library: the page's Content-Security-Policy allows this
   service's own files only. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function draw(figure, data, days) {
    var values = data[figure.dataset.series].slice(-days);
    var labels = data.days.slice(-days);
    var limit = data[figure.dataset.limit];
    var width = 800, height = 200, left = 44, right = 8, top = 16, bottom = 22;
    var peak = Math.max.apply(null, values.concat([limit === null ? 0 : limit, 1]));
    var x = function (i) { return left + (values.length < 2 ? 0 : i * (width - left - right) / (values.length - 1)); };
    var y = function (v) { return top + (height - top - bottom) * (1 - v / peak); };
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": figure.dataset.title, "data-points": values.length, preserveAspectRatio: "none" });
    svg.appendChild(el("text", { x: left, y: 11 }, figure.dataset.title + " (" + days + " days)"));
    svg.appendChild(el("line", { x1: left, y1: y(0), x2: width - right, y2: y(0), "class": "bo-axis" }));
    svg.appendChild(el("line", { x1: left, y1: top, x2: left, y2: y(0), "class": "bo-axis" }));
    svg.appendChild(el("text", { x: 2, y: top + 4 }, String(Math.round(peak * 100) / 100)));
    svg.appendChild(el("text", { x: 2, y: y(0) }, "0"));
    svg.appendChild(el("text", { x: left, y: height - 6 }, labels[0] || ""));
    svg.appendChild(el("text", { x: width - right - 64, y: height - 6 }, labels[labels.length - 1] || ""));
    var points = values.map(function (v, i) { return x(i) + "," + y(v); });
    svg.appendChild(el("polygon", { points: [x(0) + "," + y(0)].concat(points, [x(values.length - 1) + "," + y(0)]).join(" "), "class": "bo-area" }));
    svg.appendChild(el("polyline", { points: points.join(" "), "class": "bo-line", "data-series": figure.dataset.series }));
    if (limit !== null && limit !== undefined) {
      svg.appendChild(el("line", { x1: left, y1: y(limit), x2: width - right, y2: y(limit), "class": "bo-limit", "data-limit": limit }));
      svg.appendChild(el("text", { x: width - right - 150, y: y(limit) - 4 }, "plan limit " + limit + " " + figure.dataset.unit));
    }
    values.forEach(function (v, i) {
      var dot = el("circle", { cx: x(i), cy: y(v), r: 2, fill: "#2b6cb0" });
      dot.appendChild(el("title", {}, labels[i] + ": " + v + " " + figure.dataset.unit));
      svg.appendChild(dot);
    });
    figure.replaceChildren(svg);
  }

  function start() {
    var source = document.getElementById("usage-chart-data");
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var figures = document.querySelectorAll(".bo-chart[data-series]");
    var buttons = document.querySelectorAll(".bo-days");
    function show(days) {
      figures.forEach(function (figure) { draw(figure, data, days); });
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(Number(b.dataset.days) === days)); });
    }
    buttons.forEach(function (b) { b.addEventListener("click", function () { show(Number(b.dataset.days)); }); });
    show(30);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
