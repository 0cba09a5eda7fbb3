/*
 * kdsurvey paper tables: sort by any column, filter by text, year range, venue, task and
 * "has code". Written for this site (MIT, like the rest of kdsurvey): no dependency, no network.
 *
 * A table opts in with `data-kd-papers`; its rows carry data-year, data-venue, data-tasks
 * (space-separated task keys) and data-code (1 or 0); sortable headers carry data-kd-sort
 * ("text" or "number"); data-find holds what the text filter also matches (authors, arXiv id,
 * citation key). The state (filter fields, sort) lives in one parameter of the URL's query string,
 * `table` (itself a query string: `?table=q%3DZhao%26sort%3D2%3Aasc`), replaced as the reader types,
 * so a reload or Back restores it and a filtered view can be shared. It is never `q`: Material's
 * search reads `q` and opens its dialog. A filter that hides every row says so, with a reset
 * button. A table of one paper gets no form. The script runs on every page Material's instant navigation shows (`document$`), and on
 * a plain page load without Material.
 */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function unique(values) {
    var seen = {};
    return values.filter(function (v) { return v && !seen[v] && (seen[v] = true); });
  }

  function select(name, label, options) {
    var field = el("select", { name: name, "aria-label": label },
      [el("option", { value: "", text: label })].concat(options.map(function (o) {
        return el("option", { value: o[0], text: o[1] });
      })));
    return el("label", { class: "kd-field" }, [field]);
  }

  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var counter = 0;

  function setup(table) {
    if (table.hasAttribute("data-kd-ready")) return;
    table.setAttribute("data-kd-ready", "");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var id = "kd-table-" + (++counter);
    table.id = table.id || id;

    // The choices offered come from the rows themselves.
    var years = unique(rows.map(function (r) { return r.dataset.year; }))
      .sort(function (a, b) { return a - b; });
    var venues = unique(rows.map(function (r) { return r.dataset.venue; })).sort(collator.compare);
    var taskLabels = {};
    Array.prototype.forEach.call(table.querySelectorAll("a.kd-task"), function (a) {
      var key = a.getAttribute("href").split("/").filter(Boolean).pop();
      taskLabels[key] = a.textContent;
    });
    var tasks = Object.keys(taskLabels).sort(function (a, b) {
      return collator.compare(taskLabels[a], taskLabels[b]);
    });
    var texts = rows.map(function (r) {
      return (r.textContent + " " + (r.dataset.find || "")).toLowerCase();
    });
    if (rows.length < 2) return;  // nothing to filter or sort

    var query = el("input", { type: "search", name: "q", placeholder: "Filter: title, author, venue, loss, arXiv id…",
      "aria-label": "Filter by text", autocomplete: "off" });
    var yearOptions = years.map(function (y) { return [y, y]; });
    var fields = [el("label", { class: "kd-field kd-query" }, [query]),
      select("from", "From year", yearOptions), select("to", "To year", yearOptions)];
    if (venues.length > 1) {
      fields.push(select("venue", "Any venue", venues.map(function (v) { return [v, v]; })));
    }
    if (tasks.length > 1) {
      fields.push(select("task", "Any task", tasks.map(function (t) { return [t, taskLabels[t]]; })));
    }
    var code = el("input", { type: "checkbox", name: "code" });
    fields.push(el("label", { class: "kd-field kd-check" }, [code, document.createTextNode(" has code")]));
    var reset = el("button", { type: "reset", class: "md-button", text: "Reset" });
    var count = el("output", { class: "kd-count", "aria-live": "polite", for: table.id });
    var form = el("form", { class: "kd-filters", "aria-label": "Filter papers",
      "aria-controls": table.id }, fields.concat([reset, count]));
    var wrapper = table.closest(".kd-table") || table;
    wrapper.parentNode.insertBefore(form, wrapper);
    var clear = el("button", { type: "button", class: "md-button", text: "Show all papers" });
    var empty = el("p", { class: "kd-empty", hidden: "" }, [
      document.createTextNode("No paper matches these filters. Loosen them, or "), clear]);
    wrapper.parentNode.insertBefore(empty, wrapper.nextSibling);
    clear.addEventListener("click", function () { form.reset(); query.focus(); });

    function apply() {
      var words = query.value.toLowerCase().split(/\s+/).filter(Boolean);
      var from = Number(form.elements.from.value) || -Infinity;
      var to = Number(form.elements.to.value) || Infinity;
      var venue = form.elements.venue ? form.elements.venue.value : "";
      var task = form.elements.task ? form.elements.task.value : "";
      var shown = 0;
      rows.forEach(function (row, i) {
        var year = Number(row.dataset.year);
        var ok = year >= from && year <= to &&
          (!venue || row.dataset.venue === venue) &&
          (!task || (" " + row.dataset.tasks + " ").indexOf(" " + task + " ") >= 0) &&
          (!code.checked || row.dataset.code === "1") &&
          words.every(function (w) { return texts[i].indexOf(w) >= 0; });
        row.hidden = !ok;
        if (ok) shown++;
      });
      empty.hidden = shown > 0;
      var noun = rows.length === 1 ? " paper" : " papers";
      count.textContent = shown === rows.length
        ? rows.length + noun
        : shown + " of " + rows.length + noun;
    }

    // The URL's `table` parameter holds the state: q, from, to, venue, task, code, sort
    // (column:dir); other parameters of the URL are kept as they are.
    var sortState = "";
    function save() {
      var params = new URLSearchParams();
      ["q", "from", "to", "venue", "task"].forEach(function (name) {
        var field = form.elements[name];
        if (field && field.value) params.set(name, field.value);
      });
      if (code.checked) params.set("code", "1");
      if (sortState) params.set("sort", sortState);
      var outer = new URLSearchParams(location.search);
      if (params.toString()) outer.set("table", params.toString());
      else outer.delete("table");
      var search = outer.toString();
      var url = location.pathname + (search ? "?" + search : "") + location.hash;
      if (url !== location.pathname + location.search + location.hash) {
        history.replaceState(history.state, "", url);
      }
    }
    function restore() {
      var params = new URLSearchParams(new URLSearchParams(location.search).get("table") || "");
      ["q", "from", "to", "venue", "task"].forEach(function (name) {
        var field = form.elements[name];
        if (field && params.has(name)) field.value = params.get(name);
      });
      code.checked = params.get("code") === "1";
      var sorted = (params.get("sort") || "").split(":");
      var th = headers[Number(sorted[0])];
      if (sorted.length === 2 && th && th.getAttribute("data-kd-sort")) {
        order(Number(sorted[0]), sorted[1] !== "desc");
      }
    }

    form.addEventListener("input", function () { apply(); save(); });
    form.addEventListener("change", function () { apply(); save(); });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    form.addEventListener("reset", function () {
      setTimeout(function () { sortState = ""; apply(); save(); }, 0);
    });

    // Sorting: a button in each sortable header; a second click reverses the order.
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, column) {
      var type = th.getAttribute("data-kd-sort");
      if (!type) return;
      var button = el("button", { type: "button", class: "kd-sort", title: "Sort by " + th.textContent });
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        order(column, th.getAttribute("aria-sort") !== "ascending");
        save();
      });
    });

    function order(column, ascending) {
      var th = headers[column];
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      sortState = column + ":" + (ascending ? "asc" : "desc");
      sort(column, th.getAttribute("data-kd-sort"), ascending ? 1 : -1);
    }

    function sort(column, type, direction) {
      var keyed = rows.map(function (row, i) {
        var text = row.cells[column].textContent.trim();
        return { row: row, i: i, key: type === "number" ? parseFloat(text) || 0 : text };
      });
      keyed.sort(function (a, b) {
        var order = type === "number" ? a.key - b.key : collator.compare(a.key, b.key);
        return order * direction || a.i - b.i;  // stable: ties keep the page's order
      });
      var fragment = document.createDocumentFragment();
      keyed.forEach(function (k) { fragment.appendChild(k.row); });
      body.appendChild(fragment);
    }

    restore();
    apply();
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table[data-kd-papers]"), setup);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(init);  // Material: every page, instant navigation included
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
