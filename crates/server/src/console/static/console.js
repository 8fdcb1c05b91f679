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
  // Secret-name autocomplete: names from the chosen credential fill the input's <datalist>.
  document.querySelectorAll("input[data-autocomplete]").forEach(function (input) {
    var source = document.getElementById(input.getAttribute("data-autocomplete"));
    var list = document.getElementById(input.getAttribute("list"));
    var hint = document.getElementById(input.id.replace(/-name$/, "-hint"));
    var timer = null;
    function fill() {
      if (!source || !source.value || !list) { return; }
      var url = "/console/secret-providers/" + encodeURIComponent(source.value) +
        "/secrets?prefix=" + encodeURIComponent(input.value.split("#")[0]);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          list.replaceChildren.apply(list, (body.names || []).map(function (name) {
            var option = document.createElement("option");
            option.value = name;
            return option;
          }));
          if (hint) { hint.textContent = body.hint || body.error || ""; }
        })
        .catch(function () { if (hint) { hint.textContent = "Secret names could not be listed."; } });
    }
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(fill, 250); });
    input.addEventListener("focus", fill);
  });
  // Workload identity form: only the chosen cloud's fields show (all show without script).
  var cloud = document.getElementById("wi-cloud");
  if (cloud) {
    var showCloud = function () {
      document.querySelectorAll("fieldset[data-cloud]").forEach(function (set) {
        set.hidden = set.getAttribute("data-cloud") !== cloud.value;
      });
    };
    cloud.addEventListener("change", showCloud);
    showCloud();
  }
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
