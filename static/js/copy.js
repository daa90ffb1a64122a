// Copy buttons: <button data-copy-target="ID" data-copy-status="ID">. Copies the target's text
// and says so in the status element (a live region). Works for content htmx swaps in later.
(function () {
  "use strict";

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copyTarget);
    var status = document.getElementById(button.dataset.copyStatus);
    if (!source) return;
    var text = source.textContent.trim();
    function say(message) {
      if (status) status.textContent = message;
    }
    function fallback() {
      selectText(source);
      say("Selected: press Ctrl+C (or Cmd+C) to copy.");
    }
    if (!navigator.clipboard || !window.isSecureContext) {
      fallback();
      return;
    }
    navigator.clipboard.writeText(text).then(function () {
      say("Copied");
    }, fallback);
  });
})();
