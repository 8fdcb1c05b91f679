// Enhancement only: every page works without it.
(function () {
  "use strict";
  // The organization switcher submits on change; its button stays for people without script.
  var select = document.getElementById("org-select");
  if (select && select.form) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
  // Destructive buttons ask first.
  document.querySelectorAll("[data-confirm]").forEach(function (el) {
    el.addEventListener("click", function (ev) {
      if (!window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
})();
// Gateway pages: countdowns rendered by the server (seconds left) tick down.
(function () {
  "use strict";
  var clocks = document.querySelectorAll("[data-countdown]");
  if (!clocks.length) { return; }
  var started = Date.now();
  window.setInterval(function () {
    var passed = Math.floor((Date.now() - started) / 1000);
    clocks.forEach(function (el) {
      var left = Math.max(0, parseInt(el.getAttribute("data-countdown"), 10) - passed);
      el.textContent = left + " s";
    });
  }, 1000);
})();
