// Coding workbench: add/remove lines, autocomplete, keyboard shortcuts.
// Loaded from our origin (CSP script-src 'self'); everything hangs off data- attributes and
// event delegation, so it keeps working after htmx swaps the code panel in.
(function () {
  "use strict";
  function form() { return document.getElementById("codes-form"); }
  function renumber(tbody) {
    tbody.querySelectorAll("tr").forEach(function (tr, i) {
      var seq = tr.querySelector(".seq");
      if (seq) seq.textContent = String(i + 1);
    });
  }
  function addLine(kind) {
    var tpl = document.getElementById(kind + "-template");
    var tbody = document.querySelector("#" + kind + "-lines tbody");
    if (!tpl || !tbody) return;
    tbody.appendChild(tpl.content.cloneNode(true));
    renumber(tbody);
    var inputs = tbody.querySelectorAll("tr:last-child input:not([type=hidden])");
    var first = kind === "px" ? tbody.querySelector("tr:last-child input[name=px_code]") : inputs[0];
    if (first) first.focus();
  }
  document.addEventListener("click", function (e) {
    var add = e.target.closest("[data-add-line]");
    if (add) { addLine(add.getAttribute("data-add-line")); return; }
    var remove = e.target.closest("[data-remove-line]");
    if (remove) {
      var tr = remove.closest("tr");
      var tbody = tr.parentNode;
      tr.remove();
      renumber(tbody);
      var f = form();
      if (f) f.dispatchEvent(new Event("line-removed", { bubbles: true }));
    }
  });
  // Autocomplete: fill the field's datalist with server-rendered (escaped) <option>s.
  var timer = null;
  document.addEventListener("input", function (e) {
    var input = e.target;
    if (!input.matches || !input.matches("[data-autocomplete]")) return;
    var system = input.getAttribute("data-autocomplete");
    if (system === "px") {
      var sel = input.closest("tr").querySelector("[data-system-select]");
      system = sel ? sel.value : "CPT";
    }
    var q = input.value.trim();
    clearTimeout(timer);
    if (q.length < 2) return;
    timer = setTimeout(function () {
      var url = "/codes/search?system=" + encodeURIComponent(system) + "&q=" + encodeURIComponent(q);
      fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) {
          var list = document.getElementById(input.getAttribute("list"));
          if (list) list.innerHTML = html;
        });
    }, 150);
  });
  // Keyboard: Alt+D / Alt+P add a line, Ctrl+Enter submits, Enter moves to the next field.
  document.addEventListener("keydown", function (e) {
    var f = form();
    if (!f) return;
    if (e.altKey && (e.key === "d" || e.key === "D")) { e.preventDefault(); addLine("dx"); return; }
    if (e.altKey && (e.key === "p" || e.key === "P")) { e.preventDefault(); addLine("px"); return; }
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      var submit = document.getElementById("submit-codes");
      if (submit) submit.click();
      return;
    }
    if (e.key === "Enter" && f.contains(e.target) && e.target.tagName === "INPUT") {
      e.preventDefault();
      var fields = Array.prototype.slice.call(
        f.querySelectorAll("input:not([type=hidden]), select"));
      var next = fields[fields.indexOf(e.target) + 1];
      if (next) next.focus();
    }
  });
})();
