// Progressive enhancement only: every page works without this script.
// Baseline form: show the engine's R-MEAS/R-SEL findings while the reader types.
(function () {
  "use strict";
  var form = document.getElementById("baseline-form");
  if (!form || !window.fetch) { return; }
  var list = document.getElementById("findings");
  var url = form.getAttribute("data-check-url");
  var timer = null;
  var token = form.querySelector("input[name=csrf_token]").value;

  var inputError = document.getElementById("input-error");

  function render(data) {
    while (list.firstChild) { list.removeChild(list.firstChild); }
    var items = data.findings || [];
    // Input that cannot be saved at all is an error, not a finding one may save past.
    if (inputError) {
      // One error box: the live check's error replaces a refused save's, never stands
      // beside it in other words.
      var saved = document.getElementById("error");
      if (saved && data.error) { saved.parentNode.removeChild(saved); saved = null; }
      if (!saved) {
        Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) {
          el.removeAttribute("aria-invalid");
        });
      }
      inputError.textContent = data.error || "";
      inputError.hidden = !data.error;
      var bad = data.field ? form.querySelector("[name='" + data.field + "']") : null;
      if (bad) {
        bad.setAttribute("aria-invalid", "true");
        bad.setAttribute("aria-describedby", "input-error");
      }
    }
    items.forEach(function (f) {
      var li = document.createElement("li");
      var code = document.createElement("code");
      code.textContent = f.rule;
      li.appendChild(code);
      li.appendChild(document.createTextNode(" " + (f.lesion || "") + ": " + f.message));
      list.appendChild(li);
    });
    var reason = form.querySelector("label.reason");
    if (reason) { reason.classList.toggle("needed", items.length > 0); }
  }

  function check() {
    var body = new FormData(form);
    fetch(url, { method: "POST", body: body, credentials: "same-origin",
                 headers: { "X-CSRFToken": token } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { render(data); } })
      .catch(function () { /* offline: the server checks again on save */ });
  }

  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });
  // A form shown again after a refused save: check what it holds straight away.
  var typed = Array.prototype.some.call(form.querySelectorAll("input[name^='size_']"),
    function (input) { return input.value.trim() !== ""; });
  if (typed) { check(); }
})();

// Follow-up form: typing a size selects "measured"; Enter in a size moves to the next size.
(function () {
  "use strict";
  var form = document.getElementById("timepoint-form");
  if (!form) { return; }
  var sizes = Array.prototype.slice.call(form.querySelectorAll("input[name$='_mm']"));
  sizes.forEach(function (input, index) {
    input.addEventListener("input", function () {
      var state = form.querySelector("select[name='" + input.name.replace(/_mm$/, "_state") + "']");
      if (state && input.value.trim() !== "") { state.value = "measured"; }
    });
    input.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") { return; }
      // Enter never submits from a size: it moves on, past the last size to the next
      // field (the non-targets), so a half-entered read is never saved by accident.
      event.preventDefault();
      if (index + 1 < sizes.length) {
        sizes[index + 1].focus();
        return;
      }
      var fields = Array.prototype.slice.call(form.elements);
      var next = fields.slice(fields.indexOf(input) + 1).filter(function (el) {
        return !el.disabled && el.type !== "hidden" && !/_(state|fragments|merged)$/.test(el.name)
          && !/^(scan|img)_/.test(el.name);
      })[0];
      if (next) { next.focus(); }
    });
  });
  // A row holds one kind of value: choosing a state empties the fields of the others
  // (the server refuses a row that says two things); filling fragments or a merge
  // target selects their state.
  var field = function (prefix, suffix) {
    return form.querySelector("[name='" + prefix + suffix + "']");
  };
  Array.prototype.slice.call(form.querySelectorAll("select[name$='_state']")).forEach(
    function (select) {
      var prefix = select.name.replace(/_state$/, "");
      select.addEventListener("change", function () {
        var mm = field(prefix, "_mm"), parts = field(prefix, "_fragments");
        var merged = field(prefix, "_merged");
        if (mm && select.value !== "measured") { mm.value = ""; }
        if (parts && select.value !== "fragments") { parts.value = ""; }
        if (merged && select.value !== "merged") { merged.value = ""; }
      });
      var parts = field(prefix, "_fragments"), merged = field(prefix, "_merged");
      if (parts) {
        parts.addEventListener("input", function () {
          if (parts.value.trim() !== "") { select.value = "fragments"; }
        });
      }
      if (merged) {
        merged.addEventListener("change", function () {
          if (merged.value !== "") { select.value = "merged"; }
        });
      }
    }
  );
})();

// After a refused save: mark the field the error names and put the cursor in it.
(function () {
  "use strict";
  var error = document.getElementById("error");
  if (!error) { return; }
  var field = error.getAttribute("data-field") || "";
  var pointer = error.getAttribute("data-pointer") || "";
  function named(name) { return document.querySelector("[name='" + name + "']"); }
  function target() {
    // The server names the form's own input where it knows it (size_3, new_0_site…).
    var direct = field ? named(field) : null;
    if (direct) { return direct; }
    var parts = field.split(".");
    var match = /^\/lesions\/(\d+)\/(\w+)$/.exec(pointer);
    if (match) { return named((match[2] === "state" ? "kind" : match[2]) + "_" + match[1]); }
    if (parts[0] === "targets" && parts[1]) { return named("t_" + parts[1] + "_mm"); }
    if (parts[0] === "non_targets" && parts[1]) { return named("nt_" + parts[1]); }
    if (parts[0] === "new_lesions" && parts[1]) {
      var ids = document.querySelectorAll("input[name^='new_'][name$='_id']");
      for (var i = 0; i < ids.length; i++) {
        if (ids[i].value.trim() === parts[1]) {
          var row = ids[i].name.replace(/_id$/, "");
          var suffix = { site: "_site", short_axis_mm: "_sa" }[parts[2]] || "_id";
          return named(row + suffix);
        }
      }
      return null;
    }
    return named({ id: "code", visit: "code" }[field] || field);
  }
  var el = field || pointer ? target() : null;
  if (el && !el.disabled) {
    el.setAttribute("aria-invalid", "true");
    el.setAttribute("aria-describedby", "error");
    el.focus();
  }
})();

// Entry forms (follow-up, baseline): Enter in a field never submits (it moves to the next
// field), and Ctrl+S / Cmd+S or Ctrl+Enter saves from anywhere in the form, so a reader
// never tabs through every field to reach the button.
(function () {
  "use strict";
  ["timepoint-form", "baseline-form"].forEach(function (id) {
    var form = document.getElementById(id);
    if (!form) { return; }
    var save = form.querySelector("button[type=submit]");
    form.addEventListener("keydown", function (event) {
      var target = event.target;
      var saving = (event.key === "s" || event.key === "S") && (event.ctrlKey || event.metaKey);
      if (saving || (event.key === "Enter" && (event.ctrlKey || event.metaKey))) {
        event.preventDefault();
        if (form.requestSubmit) { form.requestSubmit(save || undefined); } else { form.submit(); }
        return;
      }
      if (event.key !== "Enter" || event.defaultPrevented) { return; }
      if (target.tagName !== "INPUT" || target.type === "submit" || target.type === "button") {
        return;
      }
      event.preventDefault();
      var fields = Array.prototype.slice.call(form.elements).filter(function (el) {
        return !el.disabled && el.type !== "hidden" && el.tabIndex !== -1;
      });
      var next = fields[fields.indexOf(target) + 1];
      if (next) { next.focus(); }
    });
    if (save && !save.title) { save.title = "Save: Ctrl+S (⌘S on a Mac)"; }
  });
})();

// Plots (trial and subject pages): a click on a plot enlarges it in a dialog; Escape, the
// close button or a click on the enlarged plot closes it. Without this script the link
// opens the SVG itself.
(function () {
  "use strict";
  var links = document.querySelectorAll(".plots a.enlarge");
  if (!links.length || typeof HTMLDialogElement !== "function") { return; }
  var dialog = document.createElement("dialog");
  dialog.className = "plot-viewer";
  dialog.id = "plot-viewer";
  var bar = document.createElement("p");
  var caption = document.createElement("strong");
  var open = document.createElement("a");
  open.textContent = "open the SVG (hover names the subjects)";
  open.target = "_blank";
  open.rel = "noopener";
  var close = document.createElement("button");
  close.type = "button";
  close.textContent = "Close";
  bar.appendChild(caption);
  bar.appendChild(open);
  bar.appendChild(close);
  var image = document.createElement("img");
  dialog.appendChild(bar);
  dialog.appendChild(image);
  document.body.appendChild(dialog);
  close.addEventListener("click", function () { dialog.close(); });
  image.addEventListener("click", function () { dialog.close(); });
  Array.prototype.forEach.call(links, function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var thumb = link.querySelector("img");
      image.src = link.getAttribute("href");
      image.alt = thumb ? thumb.alt : "";
      caption.textContent = thumb ? thumb.alt : "";
      open.href = link.getAttribute("href");
      dialog.showModal();
      close.focus();
    });
  });
}());

// The follow-up form's "Add a new-lesion row": as many new lesions as the reader needs
// (issue 14), up to the rows the server reads (data-max). Without script the form keeps
// its spare rows.
(function () {
  var button = document.getElementById("add-new-lesion");
  var table = document.getElementById("new-lesions");
  if (!button || !table) { return; }
  var body = table.tBodies[0];
  var max = parseInt(button.getAttribute("data-max"), 10);
  button.hidden = false;
  button.disabled = body.rows.length >= max;
  button.addEventListener("click", function () {
    var index = body.rows.length;
    if (index >= max) { return; }
    var row = body.rows[index - 1].cloneNode(true);
    row.className = "";
    Array.prototype.forEach.call(
      row.querySelectorAll("small.carried, input[type=hidden]"),
      function (node) { node.parentNode.removeChild(node); }
    );
    Array.prototype.forEach.call(row.querySelectorAll("input, select"), function (field) {
      field.name = field.name.replace(/^new_\d+_/, "new_" + index + "_");
      var label = field.getAttribute("aria-label");
      if (label) {
        field.setAttribute("aria-label", label.replace(/^new lesion \d+/, "new lesion " + (index + 1)));
      }
      field.removeAttribute("aria-invalid");
      if (field.type === "checkbox") { field.checked = false; }
      else if (field.tagName === "SELECT") { field.selectedIndex = 0; }
      else { field.value = ""; }
    });
    body.appendChild(row);
    row.querySelector("input").focus();
    button.disabled = body.rows.length >= max;
  });
}());
