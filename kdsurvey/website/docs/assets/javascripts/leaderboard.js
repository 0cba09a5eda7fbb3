/*
 * kdsurvey leaderboards: sort a table by any column with its header (a second click reverses).
 * A table opts in with `data-kd-board`; numeric cells may carry data-kd-value (the number a
 * formatted cell such as "+1.23" or "−0.40" stands for). No dependency, no network.
 */
(function () {
  "use strict";
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function value(cell, type) {
    if (type !== "number") return cell.textContent.trim();
    var raw = cell.hasAttribute("data-kd-value") ? cell.getAttribute("data-kd-value") : cell.textContent;
    var n = parseFloat(raw);
    return isNaN(n) ? null : n;
  }

  function setup(table) {
    if (table.hasAttribute("data-kd-ready")) return;
    table.setAttribute("data-kd-ready", "");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, column) {
      var type = th.getAttribute("data-kd-sort");
      if (!type) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "kd-sort";
      button.title = "Sort by " + th.textContent;
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var direction = ascending ? 1 : -1;
        var keyed = rows.map(function (row, i) {
          return { row: row, i: i, key: value(row.cells[column], type) };
        });
        keyed.sort(function (a, b) {
          if (a.key === null || b.key === null) {  // empty cells (no gain) last either way
            return (a.key === null) - (b.key === null) || a.i - b.i;
          }
          var order = type === "number" ? a.key - b.key : collator.compare(a.key, b.key);
          return order * direction || a.i - b.i;
        });
        var fragment = document.createDocumentFragment();
        keyed.forEach(function (k) { fragment.appendChild(k.row); });
        body.appendChild(fragment);
      });
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table[data-kd-board]"), setup);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(init);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
