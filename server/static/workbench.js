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
  function suggest(input) {
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
          var list = document.getElementById(input.getAttribute("data-list"));
          if (list) list.innerHTML = html;
          if (document.activeElement === input) openSuggestions(input);
        });
    }, 150);
  }
  document.addEventListener("input", function (e) {
    var input = e.target;
    if (!e.isTrusted || !input.matches || !input.matches("[data-autocomplete]")) return;
    suggest(input);
  });
  // A hint from the source (a SNOMED condition, say) looks for its ICD-10-CM codes: its words
  // go into the first empty diagnosis field and the suggestions open there.
  document.addEventListener("click", function (e) {
    var hint = e.target.closest ? e.target.closest("[data-hint-search]") : null;
    if (!hint) return;
    var empty = Array.prototype.find.call(
      document.querySelectorAll("#codes-form input[name=dx_code]"), function (i) { return !i.value; });
    if (!empty) { addLine("dx"); empty = document.querySelector("#dx-lines tbody tr:last-child input[name=dx_code]"); }
    if (!empty) return;
    empty.value = hint.getAttribute("data-hint-search").replace(/\([^)]*\)/g, "").trim();
    empty.focus();
    suggest(empty);
  });
  // Suggestions as an accessible combobox (ARIA 1.2): the server's escaped <option>s are read
  // into one listbox under the field; arrow keys move, Enter picks, Escape closes.
  var box = document.createElement("ul");
  box.id = "code-suggestions";
  box.setAttribute("role", "listbox");
  box.setAttribute("aria-label", "Code suggestions");
  box.className = "suggestions";
  box.hidden = true;
  document.body.appendChild(box);
  var owner = null, active = -1;
  function closeSuggestions() {
    box.hidden = true;
    active = -1;
    if (owner) { owner.setAttribute("aria-expanded", "false"); owner.removeAttribute("aria-activedescendant"); }
    owner = null;
  }
  function highlight(n) {
    var items = box.querySelectorAll("li");
    if (!items.length || !owner) return;
    active = (n + items.length) % items.length;
    items.forEach(function (li, i) { li.setAttribute("aria-selected", i === active ? "true" : "false"); });
    owner.setAttribute("aria-activedescendant", items[active].id);
    items[active].scrollIntoView({ block: "nearest" });
  }
  function pick(li) {
    if (!owner || !li) return;
    var input = owner;
    input.value = li.getAttribute("data-value");
    closeSuggestions();
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }
  function openSuggestions(input) {
    var list = document.getElementById(input.getAttribute("data-list"));
    box.replaceChildren();
    if (!list || !list.options.length) { closeSuggestions(); return; }
    Array.prototype.forEach.call(list.options, function (o, i) {
      var li = document.createElement("li");
      li.id = "code-suggestion-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.setAttribute("data-value", o.value);
      li.textContent = o.textContent;
      box.appendChild(li);
    });
    var r = input.getBoundingClientRect();
    box.style.left = (r.left + window.scrollX) + "px";
    box.style.top = (r.bottom + window.scrollY) + "px";
    box.hidden = false;
    owner = input;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    var path = (e.detail.requestConfig && e.detail.requestConfig.path) || "";
    // Words being looked up (not a code: codes start with a digit or a letter and a digit)
    // are not checked as a code while their suggestions are open.
    var words = owner && !/^[A-Za-z]?[0-9]/.test(owner.value.trim());
    if (!box.hidden && words && /\/codes\/check$/.test(path)) e.preventDefault();
  });
  box.addEventListener("mousedown", function (e) {
    var li = e.target.closest("li");
    if (li) { e.preventDefault(); pick(li); }
  });
  document.addEventListener("focusout", function (e) {
    if (owner && e.target === owner) setTimeout(closeSuggestions, 100);
  });
  document.addEventListener("keydown", function (e) {
    if (!owner || e.target !== owner || box.hidden) return;
    if (e.key === "ArrowDown") { e.preventDefault(); e.stopImmediatePropagation(); highlight(active + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); e.stopImmediatePropagation(); highlight(active - 1); }
    else if (e.key === "Escape") { e.preventDefault(); e.stopImmediatePropagation(); closeSuggestions(); }
    else if (e.key === "Enter" && active >= 0) {
      e.preventDefault(); e.stopImmediatePropagation();
      pick(box.querySelectorAll("li")[active]);
    }
  }, true);

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

  // Focus lands in the first empty code field when a chart opens.
  var empty = Array.prototype.find.call(
    document.querySelectorAll("#codes-form input[name=dx_code]"), function (i) { return !i.value; });
  if (empty) empty.focus({ preventScroll: true });

  // Find in the chart: highlight every hit in the documents (text nodes only: the notes stay
  // escaped), Enter jumps to the next one.
  var search = document.getElementById("doc-search");
  var hitsLabel = document.getElementById("doc-hits");
  var current = -1;
  function clearMarks() {
    document.querySelectorAll("#documents mark.hit").forEach(function (m) {
      var parent = m.parentNode;
      parent.replaceChild(document.createTextNode(m.textContent), m);
      parent.normalize();
    });
  }
  function mark(term) {
    clearMarks();
    current = -1;
    if (term.length < 2) { hitsLabel.textContent = ""; return []; }
    var needle = term.toLowerCase();
    document.querySelectorAll("#documents .document").forEach(function (doc) {
      var walker = document.createTreeWalker(doc, NodeFilter.SHOW_TEXT);
      var nodes = [];
      while (walker.nextNode()) nodes.push(walker.currentNode);
      nodes.forEach(function (node) {
        var text = node.nodeValue, lower = text.toLowerCase(), at = lower.indexOf(needle);
        if (at < 0) return;
        var frag = document.createDocumentFragment(), from = 0;
        while (at >= 0) {
          frag.appendChild(document.createTextNode(text.slice(from, at)));
          var m = document.createElement("mark");
          m.className = "hit";
          m.textContent = text.slice(at, at + needle.length);
          frag.appendChild(m);
          from = at + needle.length;
          at = lower.indexOf(needle, from);
        }
        frag.appendChild(document.createTextNode(text.slice(from)));
        node.parentNode.replaceChild(frag, node);
      });
    });
    var hits = document.querySelectorAll("#documents mark.hit");
    hitsLabel.textContent = hits.length ? hits.length + " found (Enter: next)" : "not found";
    return hits;
  }
  if (search) {
    var searchTimer = null;
    search.addEventListener("input", function () {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(function () { mark(search.value.trim()); }, 200);
    });
    search.addEventListener("keydown", function (e) {
      if (e.key !== "Enter") return;
      e.preventDefault();
      var hits = document.querySelectorAll("#documents mark.hit");
      if (!hits.length) hits = mark(search.value.trim());
      if (!hits.length) return;
      if (current >= 0 && hits[current]) hits[current].classList.remove("current");
      current = (current + 1) % hits.length;
      hits[current].classList.add("current");
      hits[current].scrollIntoView({ block: "center" });
      hitsLabel.textContent = (current + 1) + " of " + hits.length + " (Enter: next)";
    });
  }

  // Privacy at home: the chart blurs when the window loses focus or after a minute without
  // input, and comes back on a key press or a click.
  if (document.getElementById("documents")) {
    var note = document.createElement("div");
    note.className = "privacy-note";
    note.setAttribute("role", "status");
    note.textContent = "Chart hidden for privacy. Press any key to show it again.";
    document.body.appendChild(note);
    var lastTouch = Date.now();
    var hide = function () { document.body.classList.add("privacy"); };
    var show = function () { lastTouch = Date.now(); document.body.classList.remove("privacy"); };
    window.addEventListener("blur", hide);
    // The key that brings the chart back only does that: it is not typed into the code field
    // that still has the focus (it used to append itself to the code, J06.9 -> J06.9x).
    document.addEventListener("keydown", function (e) {
      if (document.body.classList.contains("privacy")) {
        e.preventDefault(); // other capture listeners (the idle clock) still see the key
        e.stopPropagation();
      }
      show();
    }, true);
    document.addEventListener("pointerdown", show, true);
    document.addEventListener("pointermove", function () {
      if (!document.body.classList.contains("privacy")) lastTouch = Date.now();
    }, { passive: true });
    setInterval(function () { if (Date.now() - lastTouch > 60000) hide(); }, 5000);
  }

  // The description beside each code: from the autocomplete option that matches what is in
  // the field (the server puts the saved lines' descriptions there when the chart opens).
  function describe(input) {
    var cell = input.closest("tr") ? input.closest("tr").querySelector(".code-title") : null;
    var list = input.getAttribute("data-list") ? document.getElementById(input.getAttribute("data-list")) : null;
    if (!cell || !list) return;
    var value = input.value.trim().toUpperCase();
    var match = Array.prototype.find.call(list.options, function (o) {
      return o.value.toUpperCase() === value;
    });
    // No option for what is typed (a half-typed or unknown code): no description, never the
    // one of the code that was there before. Only the text: the cell also holds the line's
    // evidence links (and their hidden field), which stay.
    var text = match ? match.textContent.replace(match.value, "").trim() : "";
    var first = cell.firstChild;
    if (first && first.nodeType === 3) first.nodeValue = text;
    else if (text) cell.insertBefore(document.createTextNode(text), first);
  }
  document.addEventListener("input", function (e) {
    if (e.target.matches && e.target.matches("input.code-input")) {
      var input = e.target;
      describe(input);
      setTimeout(function () { describe(input); }, 600); // after the options arrive
    }
  });
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("input.code-input")) describe(e.target);
  });

  // Evidence: select a passage in a note and press Alt+E to link it to the current code
  // line. The link is the document and the character range of its text (not a copy of the
  // words); it is saved with the codes and shown to QA, where a click shows the passage.
  var currentRow = null;
  document.addEventListener("focusin", function (e) {
    if (e.target.matches && e.target.matches("#codes-form input.code-input")) {
      currentRow = e.target.closest("tr");
    }
  });
  function offsetIn(doc, node, offset) {
    var range = document.createRange();
    range.selectNodeContents(doc);
    range.setEnd(node, offset);
    return range.toString().length;
  }
  function chip(cell, value, docId) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "link evidence";
    b.setAttribute("data-evidence", value);
    b.title = "Show the passage";
    b.textContent = "\uD83D\uDCCE note " + docId;
    cell.appendChild(b);
  }
  document.addEventListener("keydown", function (e) {
    if (!(e.altKey && (e.key === "e" || e.key === "E"))) return;
    var sel = window.getSelection();
    if (!sel || sel.isCollapsed || !currentRow) return;
    var anchor = sel.anchorNode && (sel.anchorNode.nodeType === 1 ? sel.anchorNode : sel.anchorNode.parentNode);
    var doc = anchor ? anchor.closest("#documents .document") : null;
    var article = doc ? doc.closest("article[id^=document-]") : null;
    if (!doc || !article) return;
    e.preventDefault();
    var range = sel.getRangeAt(0);
    var start = offsetIn(doc, range.startContainer, range.startOffset);
    var end = offsetIn(doc, range.endContainer, range.endOffset);
    if (end <= start) return;
    var docId = article.id.replace("document-", "");
    var value = docId + ":" + start + "-" + end;
    var field = currentRow.querySelector("input[name$=_evidence]");
    var links = currentRow.querySelector(".evidence-links");
    if (!field || !links || field.value.split(" ").indexOf(value) >= 0) return;
    field.value = (field.value.trim() + " " + value).trim();
    chip(links, value, docId);
    var input = currentRow.querySelector("input.code-input");
    if (input) {
      input.focus();
      var f = form();
      if (f) f.dispatchEvent(new Event("change", { bubbles: true })); // saved (and audited)
    }
  });
  document.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("[data-evidence]") : null;
    if (!b) return;
    var parts = b.getAttribute("data-evidence").split(/[:-]/);
    var doc = document.querySelector("#document-" + parts[0] + " .document");
    if (!doc) return;
    var start = parseInt(parts[1], 10), end = parseInt(parts[2], 10);
    var walker = document.createTreeWalker(doc, NodeFilter.SHOW_TEXT);
    var seen = 0, range = document.createRange(), begun = false;
    while (walker.nextNode()) {
      var node = walker.currentNode, len = node.nodeValue.length;
      if (!begun && start <= seen + len) { range.setStart(node, start - seen); begun = true; }
      if (begun && end <= seen + len) { range.setEnd(node, end - seen); break; }
      seen += len;
    }
    if (!begun) return;
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    var el = range.startContainer.parentNode;
    if (el && el.scrollIntoView) el.scrollIntoView({ block: "center" });
  });
  // A picked charge code: the as-you-type check answers what it sets (.charge-fill in the
  // code panel); fill the line with it at once, the code where blank and the charge where
  // none was entered (or it still shows an earlier fill), then save the draft as shown.
  // (After every settle: the panel is swapped outerHTML, and filling twice changes nothing.)
  document.addEventListener("htmx:afterSettle", function () {
    var panel = document.getElementById("code-problems");
    if (!panel) return;
    var lines = document.querySelectorAll("#px-lines tbody tr.px-line");
    var changed = null;
    panel.querySelectorAll(".charge-fill").forEach(function (p) {
      var tr = lines[Number(p.getAttribute("data-fill-line"))];
      if (!tr) return;
      var picked = tr.querySelector("input[name=px_charge_code]");
      if (!picked || picked.value.trim() !== p.getAttribute("data-charge-code")) return; // stale
      var code = tr.querySelector("input[name=px_code]");
      if (code && !code.value.trim()) {
        code.value = p.getAttribute("data-code");
        var system = tr.querySelector("select[name=px_system]");
        if (system) system.value = p.getAttribute("data-system");
        changed = code;
      }
      var charge = tr.querySelector("input[name=px_charge]");
      var value = p.getAttribute("data-charge");
      var shown = charge ? charge.value.trim() : "";
      if (charge && shown !== value &&
          (!shown || Number(shown) === 0 || shown === charge.getAttribute("data-filled"))) {
        charge.value = value;
        charge.setAttribute("data-filled", value);
        changed = charge;
      }
    });
    if (changed) changed.dispatchEvent(new Event("change", { bubbles: true }));
  });
  // A code the check refuses (not a code, not valid on the date, a header...) is marked at its
  // field too, like refused units, not only in the list under the lines. The server numbers
  // the lines it read: the filled ones, in order (a procedure line counts with a charge code).
  function markRefusedCodes() {
    var panel = document.getElementById("code-problems");
    if (!panel || !form()) return;
    var bad = {};
    panel.querySelectorAll(".problem.error[data-loc]").forEach(function (p) {
      var m = /^(diagnoses|procedures)\.(\d+)\.code$/.exec(p.getAttribute("data-loc"));
      if (m) bad[m[1] + "." + m[2]] = true;
    });
    function mark(input, refused) {
      if (refused) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    var n = 0;
    form().querySelectorAll("#dx-lines input[name=dx_code]").forEach(function (input) {
      if (!input.value.trim()) { mark(input, false); return; }
      mark(input, bad["diagnoses." + n]);
      n += 1;
    });
    n = 0;
    form().querySelectorAll("#px-lines tbody tr").forEach(function (tr) {
      var code = tr.querySelector("input[name=px_code]");
      var charge = tr.querySelector("input[name=px_charge_code]");
      if (!code) return;
      if (!code.value.trim() && !(charge && charge.value.trim())) { mark(code, false); return; }
      mark(code, bad["procedures." + n]);
      n += 1;
    });
  }
  document.addEventListener("htmx:afterSettle", markRefusedCodes);
  markRefusedCodes(); // a saved draft's refused codes, as the chart opens
})();
