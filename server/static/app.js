// Chartdesk's own script: automatic sign-out, errors shown where the person is looking,
// and small keyboard helpers. Loaded from our origin; CSP forbids inline script, so
// behaviour hangs off data- attributes.
(function () {
  "use strict";
  var body = document.body;

  // A form that failed is shown again at the address of the page it came from (with its
  // filters), not at the address it was posted to: a reload or a bookmark lands there.
  var pageUrl = body.getAttribute("data-page-url");
  if (pageUrl && pageUrl.charAt(0) === "/" && pageUrl.charAt(1) !== "/" &&
      window.location.pathname + window.location.search !== pageUrl) {
    window.history.replaceState(null, "", pageUrl);
  }

  // ------------------------------------------------------------ automatic sign-out
  // Idle time counts from the person's own input (keys, pointer, wheel, form posts), never
  // from the page's background requests: the chart's lease heartbeat and the dashboard's
  // refresh carry X-Chartdesk-Background, and the server does not count them either.
  // While the person is active the page tells the server now and then (GET /api/v1/me).
  var idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  var lastInput = Date.now();
  var lastPing = Date.now();
  var signingOut = false;
  function signOut() {
    if (signingOut) return;
    signingOut = true;
    var main = document.getElementById("main");
    if (main) main.innerHTML = ""; // the chart's text leaves the screen at once
    var here = window.location.pathname + window.location.search;
    var target = "/login?expired=1&next=" + encodeURIComponent(here);
    fetch("/api/v1/session", {
      method: "DELETE",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": body.getAttribute("data-csrf") || "" }
    }).catch(function () { return null; }).then(function () { window.location = target; });
  }
  if (idle > 0) {
    var warnAt = parseInt(body.getAttribute("data-warning-seconds") || "120", 10);
    var box = document.getElementById("idle-warning");
    var countdown = document.getElementById("idle-countdown");
    var input = function () { lastInput = Date.now(); };
    ["keydown", "pointerdown", "wheel", "submit", "touchstart"].forEach(function (name) {
      document.addEventListener(name, input, { capture: true, passive: true });
    });
    var moved = 0;
    document.addEventListener("pointermove", function () {
      var now = Date.now();
      if (now - moved > 5000) { moved = now; input(); }
    }, { passive: true });
    document.getElementById("stay-signed-in").addEventListener("click", function () {
      fetch("/api/v1/me", { credentials: "same-origin" }).then(function (r) {
        if (r.ok) { lastInput = lastPing = Date.now(); box.hidden = true; } else { signOut(); }
      });
    });
    setInterval(function () {
      var now = Date.now();
      var left = idle - Math.floor((now - lastInput) / 1000);
      if (left <= 0) { signOut(); return; }
      if (left <= warnAt) {
        box.hidden = false;
        countdown.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
        return;
      }
      box.hidden = true;
      if (lastInput > lastPing && now - lastPing > 60000) {
        lastPing = now; // the person is here: keep the server's idle clock in step
        fetch("/api/v1/me", { credentials: "same-origin" }).then(function (r) {
          if (r.status === 401) signOut();
        });
      }
    }, 1000);
  }
  document.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("[data-background]")) {
      e.detail.headers["X-Chartdesk-Background"] = "1";
    }
  });

  // ------------------------------------------------------------ errors
  // Error answers are swapped in (meta htmx-config): the server sends a flash fragment for
  // #flash, or the form's own fragment. The code panel must not keep saying "ready to
  // submit" after its save failed: say there what happened to the input.
  var flash = document.getElementById("flash");
  function show(message) {
    if (!flash) return;
    var div = document.createElement("div");
    div.className = "flash flash-error";
    div.setAttribute("role", "alert");
    div.textContent = message;
    flash.replaceChildren(div);
  }
  document.addEventListener("htmx:responseError", function (e) {
    var elt = e.detail.elt;
    var leaseLost = e.detail.xhr.status === 409 &&
      /data-code="lease_expired"/.test(e.detail.xhr.responseText || "");
    if (leaseLost) leaseEnded(); // the heartbeat's answer too
    var form = elt && elt.closest ? elt.closest("#codes-form") : null;
    if (!form) return;
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(e.detail.xhr.responseText, "text/html");
      var alert = doc.querySelector("[role=alert]");
      text = alert ? alert.textContent.trim() : "";
    } catch (err) { text = ""; }
    if (leaseLost) {
      text = "this chart is no longer yours (its lease ended or was taken back). " +
        "Your codes are still on screen: copy what you need, then press Next chart.";
    }
    var problems = document.getElementById("code-problems");
    if (problems) {
      var p = document.createElement("p");
      p.className = "problem error";
      p.setAttribute("role", "alert");
      p.id = "codes-not-saved";
      p.textContent = "✖ Not saved: " + (text || "the server refused this change.") +
        (leaseLost ? "" : " What you typed is still on screen.");
      problems.replaceChildren(p);
    }
    // A refused number of units: the field itself says so (the message names the line).
    form.querySelectorAll("input[name=px_units]").forEach(function (input) {
      var v = input.value.trim();
      if (v === "" || (/^[0-9]{1,3}$/.test(v) && parseInt(v, 10) >= 1)) {
        input.removeAttribute("aria-invalid");
      } else {
        input.setAttribute("aria-invalid", "true");
      }
    });
  });
  // A save or check the server took: no units field stays marked as refused.
  document.addEventListener("htmx:afterRequest", function (e) {
    var elt = e.detail.elt;
    var form = elt && elt.closest ? elt.closest("#codes-form") : null;
    if (!form || !e.detail.successful) return;
    form.querySelectorAll("input[name=px_units][aria-invalid]").forEach(function (input) {
      input.removeAttribute("aria-invalid");
    });
  });
  // A "Show identity" lookup refused for its purpose of use (422): the purpose picker it sent
  // is marked as the field at fault (the message is in the flash); a lookup that went
  // through, or another pick, clears it.
  function identityPurpose(elt) {
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-identity")) return null;
    var include = elt.getAttribute("hx-include");
    return include ? document.querySelector(include) : null;
  }
  document.addEventListener("htmx:afterRequest", function (e) {
    var picker = identityPurpose(e.detail.elt);
    if (!picker) return;
    if (e.detail.xhr.status === 422) picker.setAttribute("aria-invalid", "true");
    else if (e.detail.successful) picker.removeAttribute("aria-invalid");
  });
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("select[name=purpose][aria-invalid]")) {
      e.target.removeAttribute("aria-invalid");
    }
  });
  // The lease is gone: the header stops counting it down (and its heartbeat stops).
  function leaseEnded() {
    var lease = document.getElementById("lease");
    if (!lease || lease.getAttribute("data-ended")) return;
    var ended = document.createElement("span");
    ended.id = "lease";
    ended.setAttribute("data-ended", "1");
    ended.className = "lease-ended";
    ended.textContent = "Lease ended: this chart is no longer yours.";
    lease.replaceWith(ended);
    statusEnded();
    // Release and Hold act on a lease the coder no longer holds: they could only answer 409
    // on a page of their own; the flash offers the ways on (My work, Next chart).
    var actions = document.querySelector("#item-head #item-actions");
    if (actions) actions.remove();
    // Submit too: it could only answer the same 409 again.
    var submit = document.getElementById("submit-codes");
    if (submit) submit.disabled = true;
  }
  // The status badge beside the title says so too, not "in progress" under a lease that ended.
  function statusEnded() {
    var badge = document.getElementById("item-status");
    if (!badge || badge.getAttribute("data-ended")) return;
    badge.setAttribute("data-ended", "1");
    badge.className = "badge bad";
    badge.textContent = "Lease ended";
  }
  // A button replaced by what it fetched ("Show identity", "Show reason", "Show answer"):
  // the button had focus and is gone, so focus goes to the text that took its place
  // (data-focus-on-arrival), not back to the top of the page where the next Tab would start.
  document.addEventListener("htmx:load", function (e) {
    var elt = e.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-focus-on-arrival")) return;
    var active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) return;
    elt.setAttribute("tabindex", "-1");
    elt.focus();
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    var elt = e.detail.elt;
    var inPanel = elt && elt.closest && elt.closest("#codes-form");
    if (inPanel && e.detail.xhr.status === 422) e.detail.shouldSwap = false;
  });
  document.addEventListener("htmx:sendError", function () {
    show("Chartdesk could not be reached: your last change was not saved. " +
      "Check your connection; what you typed is still on screen.");
  });

  // A page shown again after its form failed (form_error: #form-error) opens at the top,
  // while the form may be far down (the QA sampling page's Add a rule): bring the message
  // into view and put the cursor in the first field it names, unless something has focus.
  var formError = document.getElementById("form-error");
  if (formError && (!document.activeElement || document.activeElement === body)) {
    var scope = formError.parentElement || document;
    var field = scope.querySelector("[aria-invalid=true]");
    formError.scrollIntoView({ block: "center" });
    if (field) {
      field.focus({ preventScroll: true });
      // A field far below the message (the QA worksheet's differences) with its own message
      // cut off at the bottom of the window: show the field and its message instead.
      var note = document.getElementById((field.getAttribute("aria-describedby") || "").split(" ")[0]) || field;
      var box = note.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) note.scrollIntoView({ block: "center" });
    } else {
      formError.setAttribute("tabindex", "-1");
      formError.focus({ preventScroll: true });
    }
  }

  // ------------------------------------------------------------ downloads that change state
  // A form with data-download-then="/page" answers with a file (the biller's batch: an X12
  // interchange) and changes what the page lists (the claims sent are billed). A plain post
  // leaves the page as it was, still listing and checking what was just sent; here the file
  // is saved and the page then goes to data-download-then. A refusal (422, nothing changed)
  // is shown in place with the person's choices kept, as the server renders it.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var then = form && form.getAttribute ? form.getAttribute("data-download-then") : null;
    if (!then || then.charAt(0) !== "/" || then.charAt(1) === "/" || !window.fetch) return;
    e.preventDefault();
    var data = new FormData(form);
    var by = e.submitter;
    if (by && by.name) data.append(by.name, by.value);
    var buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (r) {
        var disposition = r.headers.get("Content-Disposition") || "";
        var named = /filename="([^"]+)"/.exec(disposition);
        if (r.ok && named) {
          return r.blob().then(function (blob) {
            var link = document.createElement("a");
            link.href = URL.createObjectURL(blob);
            link.download = named[1];
            document.body.appendChild(link);
            link.click();
            window.setTimeout(function () { window.location.assign(then); }, 300);
          });
        }
        return r.text().then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var main = doc.getElementById("main");
          var here = document.getElementById("main");
          if (!main || !here) { show("Not sent: the server answered " + r.status + "."); return; }
          here.replaceChildren.apply(here, Array.prototype.slice.call(main.childNodes));
          var alert = here.querySelector("[role=alert]");
          if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
        });
      })
      .catch(function () {
        show("Chartdesk could not be reached: nothing was sent. Check your connection.");
      })
      .finally(function () { buttons.forEach(function (b) { b.disabled = false; }); });
  });

  // ------------------------------------------------------------ auto-next after Submit
  // Each coder chooses (kept in this browser) whether the next chart opens by itself after a
  // Submit; on by default. My work shows where the submitted chart went first.
  var autoNext = document.getElementById("auto-next");
  if (autoNext) {
    var key = "chartdesk.autoNext";
    autoNext.checked = window.localStorage.getItem(key) !== "off";
    autoNext.addEventListener("change", function () {
      window.localStorage.setItem(key, autoNext.checked ? "on" : "off");
    });
    var nextForm = document.getElementById("next-form");
    if (nextForm && nextForm.hasAttribute("data-auto-next") && autoNext.checked) {
      var status = document.getElementById("auto-next-status");
      if (status) status.textContent = "Opening the next chart…";
      setTimeout(function () {
        if (autoNext.checked) nextForm.submit();
        else if (status) status.textContent = "";
      }, 1500);
    }
  }

  // ------------------------------------------------------------ keyboard and countdowns
  // Elements with data-shortcut="n" are clicked when that key is pressed outside a field.
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    var el = document.querySelector('[data-shortcut="' + e.key + '"]');
    if (el) { e.preventDefault(); el.click(); }
  });
  // Countdowns: <span data-countdown-to="ISO"> shows mm:ss left.
  setInterval(function () {
    document.querySelectorAll("[data-countdown-to]").forEach(function (el) {
      var left = Math.floor((Date.parse(el.getAttribute("data-countdown-to")) - Date.now()) / 1000);
      el.textContent = left > 0 ? Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") : "expired";
      if (left <= 0 && el.closest("#lease")) statusEnded(); // the header's own lease ran out
    });
  }, 1000);
})();
