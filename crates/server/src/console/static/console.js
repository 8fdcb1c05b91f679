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
