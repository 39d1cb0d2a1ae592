/* The console's small behaviours: copy buttons, and a confirmation before a destructive form is sent. */
(function () {
  "use strict";
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;  // shown once it works: the page's script may still be loading when the page is read
    button.addEventListener("click", function () {
      var field = document.getElementById(button.dataset.copy);
      var status = document.getElementById("copy-status");
      function done(ok) { if (status) { status.textContent = ok ? "Copied to the clipboard." : "Select the key and copy it."; } }
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(false); });
      } else {
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        done(ok);
      }
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
})();
