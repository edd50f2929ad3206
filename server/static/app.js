// Chartdesk's own script: idle sign-out warning and small keyboard helpers.
// Loaded from our origin; CSP forbids inline script, so behaviour hangs off data- attributes.
(function () {
  "use strict";
  var body = document.body;
  var idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  if (idle > 0) {
    var warnAt = parseInt(body.getAttribute("data-warning-seconds") || "120", 10);
    var last = Date.now();
    var box = document.getElementById("idle-warning");
    var countdown = document.getElementById("idle-countdown");
    var touch = function () { last = Date.now(); };
    // Any htmx request the server saw counts as activity on the server too.
    document.addEventListener("htmx:afterRequest", touch);
    document.getElementById("stay-signed-in").addEventListener("click", function () {
      fetch("/api/v1/me", { credentials: "same-origin" }).then(function (r) {
        if (r.ok) { touch(); box.hidden = true; } else { window.location = "/login?expired=1"; }
      });
    });
    setInterval(function () {
      var left = idle - Math.floor((Date.now() - last) / 1000);
      if (left <= 0) { window.location = "/login?expired=1"; return; }
      if (left <= warnAt) {
        box.hidden = false;
        countdown.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      } else {
        box.hidden = true;
      }
    }, 1000);
  }
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
    });
  }, 1000);
})();
