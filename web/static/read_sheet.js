// The worksheets: central read (central_read.html) and the site reader's (views/site_sheet.html,
// which has a Save button: Ctrl+S saves, it never signs). Progressive enhancement only: without this
// script, "Add visit columns" / "Add lesion rows" re-render the page with more, and the
// server numbers blank ids. With it: columns and rows are added in place, blank ids show
// the id they will get (T01, NT01, NL01, as web/read_sheet.py numbers them), each cell
// says what it takes, and Enter moves down a column instead of submitting.
(function () {
  "use strict";
  var form = document.getElementById("read-sheet");
  if (!form) { return; }
  var table = document.getElementById("sheet");
  var body = table.tBodies[0];
  var headRow = table.tHead.rows[0];
  var columnsField = form.querySelector("input[name=columns]");
  var rowsField = form.querySelector("input[name=rows]");
  var MAX_COLUMNS = 40, MAX_ROWS = 80;  // as in web/read_sheet.py
  var PREFIX = { "target": "T", "non-target": "NT", "new": "NL" };
  var HELP = {
    "target": "mm, TS (too small), A (absent), NE, 10+8 (split), >T01 (merged)",
    "non-target": "P (present), A (absent), PD (unequivocal progression), NE",
    "new": "blank (not seen), N (new), EQ (equivocal); a new node: N 12 (short axis mm)"
  };

  function field(name) { return form.querySelector("[name='" + name + "']"); }
  function rowCount() { return parseInt(rowsField.value, 10); }
  function columnCount() { return parseInt(columnsField.value, 10); }

  // Blank ids: the next free id of the row's role, skipping ids typed elsewhere.
  function renumber() {
    var n = rowCount(), typed = {}, counters = { "target": 0, "non-target": 0, "new": 0 };
    var i, id, role;
    for (i = 0; i < n; i += 1) {
      id = field("id_" + i).value.trim();
      if (id) { typed[id] = true; }
    }
    for (i = 0; i < n; i += 1) {
      var input = field("id_" + i);
      role = field("role_" + i).value;
      var row = input.closest("tr");
      row.className = "role-" + role;
      if (input.value.trim()) {
        id = input.value.trim();
      } else {
        do {
          counters[role] += 1;
          id = PREFIX[role] + (counters[role] < 10 ? "0" : "") + counters[role];
        } while (typed[id]);
        input.placeholder = id;
      }
      Array.prototype.forEach.call(row.querySelectorAll("input[name^='cell_']"), function (cell) {
        var j = cell.name.split("_")[2], visit = field("visit_" + j);
        cell.title = id + ": " + HELP[role];
        cell.setAttribute("aria-label", id + " at visit " +
          ((visit && visit.value.trim()) || String(parseInt(j, 10) + 1)));
      });
    }
  }

  function addColumn() {
    var j = columnCount();
    if (j >= MAX_COLUMNS) { return; }
    var th = document.createElement("th");
    th.scope = "col";
    th.className = "visit";
    th.setAttribute("data-column", String(j));
    var visit = document.createElement("input");
    visit.name = "visit_" + j;
    visit.size = 6;
    visit.placeholder = "visit";
    visit.setAttribute("aria-label", "visit " + (j + 1) + " name");
    var day = document.createElement("input");
    day.name = "date_" + j;
    day.type = "date";
    day.setAttribute("aria-label", "visit " + (j + 1) + " scan date");
    th.appendChild(visit);
    th.appendChild(day);
    headRow.appendChild(th);
    Array.prototype.forEach.call(body.rows, function (tr, i) {
      var td = document.createElement("td");
      var cell = document.createElement("input");
      cell.name = "cell_" + i + "_" + j;
      cell.size = 7;
      cell.autocomplete = "off";
      cell.setAttribute("aria-label", "row " + (i + 1) + " at visit " + (j + 1));
      td.appendChild(cell);
      tr.appendChild(td);
    });
    columnsField.value = String(j + 1);
    return visit;
  }

  function addRow() {
    var i = rowCount();
    if (i >= MAX_ROWS) { return; }
    var last = body.rows[body.rows.length - 1];
    var tr = last.cloneNode(true);
    tr.setAttribute("data-row", String(i));
    Array.prototype.forEach.call(tr.querySelectorAll("input, select"), function (input) {
      input.name = input.name.replace(/^(id|role|site|node)_\d+$/, "$1_" + i)
        .replace(/^cell_\d+_(\d+)$/, "cell_" + i + "_$1");
      input.classList.remove("bad");
      input.removeAttribute("aria-invalid");
      var label = input.getAttribute("aria-label");
      if (label) { input.setAttribute("aria-label", label.replace(/^row \d+/, "row " + (i + 1))); }
      if (input.type === "checkbox") { input.checked = false; }
      else if (input.name.indexOf("role_") === 0) { input.value = last.querySelector("select[name^='role_']").value; }
      else if (input.tagName === "SELECT") { input.selectedIndex = 0; }
      else { input.value = ""; }
    });
    body.appendChild(tr);
    rowsField.value = String(i + 1);
    return tr.querySelector("input");
  }

  document.getElementById("add-columns").addEventListener("click", function (event) {
    event.preventDefault();
    var first = addColumn();
    addColumn();
    renumber();
    if (first) { first.focus(); }
  });
  document.getElementById("add-rows").addEventListener("click", function (event) {
    event.preventDefault();
    var first = addRow();
    addRow();
    addRow();
    renumber();
    if (first) { first.focus(); }
  });

  form.addEventListener("change", function (event) {
    if (/^role_\d+$/.test(event.target.name)) { renumber(); }
  });
  form.addEventListener("input", function (event) {
    if (/^(id|visit)_\d+$/.test(event.target.name)) { renumber(); }
  });
  // Ctrl+S / Cmd+S saves the site worksheet from any field (the central one has no Save:
  // signing needs the password and the button).
  var save = document.getElementById("save");
  form.addEventListener("keydown", function (event) {
    var saving = (event.key === "s" || event.key === "S") && (event.ctrlKey || event.metaKey);
    if (!saving || !save) { return; }
    event.preventDefault();
    if (form.requestSubmit) { form.requestSubmit(save); } else { save.click(); }
  });
  // Enter in a cell moves down the column, as in a spreadsheet; at the last row, it
  // goes to the next column's first row. It never submits (signing needs the button).
  form.addEventListener("keydown", function (event) {
    var m = /^cell_(\d+)_(\d+)$/.exec(event.target.name || "");
    if (event.key !== "Enter" || !m) { return; }
    event.preventDefault();
    var i = parseInt(m[1], 10), j = parseInt(m[2], 10);
    var next = field("cell_" + (i + 1) + "_" + j) || field("cell_0_" + (j + 1));
    if (next) { next.focus(); }
  });
  renumber();

  // Live check: as the reader types, the engine's assessment of the worksheet (the same
  // "check" the button posts; nothing is stored), shown under the worksheet.
  var live = document.getElementById("live-check");
  var url = form.getAttribute("data-check-url");
  var token = form.querySelector("input[name=csrf_token]").value;
  var timer = null;

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function css(code) { return code ? "r-" + code.toLowerCase().replace("/", "-") : ""; }
  function pct(v) { return v === null || v === undefined ? "" : (v > 0 ? "+" : "") + v.toFixed(1) + " %"; }

  function show(data) {
    while (live.firstChild) { live.removeChild(live.firstChild); }
    Array.prototype.forEach.call(form.querySelectorAll(".bad"), function (input) {
      input.classList.remove("bad");
      input.removeAttribute("aria-invalid");
    });
    var stale = document.getElementById("outcome");
    if (stale) { stale.hidden = true; }
    var h = el("h2", "Live check ");
    h.appendChild(el("small", "the engine's assessment as you type — not signed, nothing stored"));
    live.appendChild(h);
    live.hidden = false;
    if (data.error) {
      var message = el("p", data.error + (data.rule && data.error.indexOf(data.rule) < 0 ? " (" + data.rule + ")" : ""), "error");
      message.id = "live-error";
      live.appendChild(message);
      var bad = data.field && field(data.field);
      if (bad) {
        bad.classList.add("bad");
        bad.setAttribute("aria-invalid", "true");
        bad.setAttribute("aria-describedby", "live-error");
        // The cursor goes to the cell the error names, once per new error (never back
        // again while the reader is fixing it or typing on elsewhere after seeing it).
        var key = data.field + "|" + data.error;
        if (key !== lastFocused && document.activeElement !== bad) { bad.focus(); }
        lastFocused = key;
      }
      return;
    }
    lastFocused = null;
    if (data.pending && data.pending.length) {
      var pending = el("p", "Not filled yet, counted as not evaluated here: " + data.pending.join(", "), "pending");
      pending.id = "live-pending";
      live.appendChild(pending);
    }
    var r = data.outcome;
    var summary = el("p", "Best overall response ");
    summary.appendChild(el("strong", r.best_overall_response, css(r.best_overall_response)));
    summary.appendChild(document.createTextNode(" · progression "));
    summary.appendChild(el("strong", r.progression ? "PD at " + r.progression.timepoint + ", " +
      r.progression.date : "none"));
    summary.id = "live-summary";
    live.appendChild(summary);
    (r.warnings || []).forEach(function (w) {
      live.appendChild(el("p", w.rule + " " + (w.lesion || "") + ": " + w.message, "findings"));
    });
    var table = el("table", null, "list");
    table.id = "live-timepoints";
    var head = el("tr");
    ["Visit", "Sum (mm)", "vs baseline", "vs nadir", "Target", "Non-target", "New", "Overall", "Rules"]
      .forEach(function (t) { head.appendChild(el("th", t)); });
    table.appendChild(head);
    r.timepoints.forEach(function (tp) {
      var tr = el("tr");
      tr.appendChild(el("td", tp.id + " · " + tp.date));
      tr.appendChild(el("td", tp.sum_mm === null ? "" : tp.sum_mm.toFixed(1), "num"));
      tr.appendChild(el("td", pct(tp.change_from_baseline_pct), "num"));
      tr.appendChild(el("td", pct(tp.change_from_nadir_pct), "num"));
      tr.appendChild(el("td", tp.target_response || "", css(tp.target_response)));
      tr.appendChild(el("td", tp.non_target_response || "", css(tp.non_target_response)));
      tr.appendChild(el("td", tp.new_lesions || ""));
      var overall = el("td", tp.overall_response || "", css(tp.overall_response));
      overall.title = (tp.reasons || []).join("\n");
      tr.appendChild(overall);
      var rules = el("td", null, "rules");
      rules.title = (tp.reasons || []).join("\n");
      (tp.rules || []).forEach(function (rule) { rules.appendChild(el("code", rule)); });
      tr.appendChild(rules);
      tr.setAttribute("data-tp", tp.id);
      table.appendChild(tr);
    });
    var wrap = el("div", null, "grid-wrap");  // scrolls sideways on a narrow screen
    wrap.appendChild(table);
    live.appendChild(wrap);
  }

  // Friendly to the server: one check per pause in typing (debounced), none when the
  // worksheet is as last checked, and a check still running is abandoned for the newer one.
  var lastFocused = null, lastSent = null, running = null;
  function check() {
    if (!window.fetch || !field("date_0").value) { return; }  // nothing to assess yet
    var body = new FormData(form);
    body.set("action", "check");
    body.delete("password");
    body.delete("reason");
    var sent = new URLSearchParams(body).toString();
    if (sent === lastSent) { return; }
    lastSent = sent;
    if (running && running.abort) { running.abort(); }
    running = window.AbortController ? new AbortController() : null;
    fetch(url, { method: "POST", body: body, credentials: "same-origin",
                 signal: running ? running.signal : undefined,
                 headers: { "X-CSRFToken": token, "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { show(data); } })
      .catch(function () { lastSent = null; /* offline or abandoned: "Check" and saving check again on the server */ });
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 500);
  });
  form.addEventListener("change", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 500);
  });
  // The site worksheet opens with the result of its stored visits.
  if (save && !document.getElementById("outcome")) { check(); }
})();
