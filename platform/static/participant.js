// Keyboard shortcuts and response timing for the claim page; the form works without them.
(function () {
  "use strict";
  var form = document.getElementById("judgment");
  if (!form) return;
  var started = performance.now();
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();  // after a refused submission, say why first
  var timing = form.querySelector("input[name=response_time_ms]");
  var sent = false;

  function pick(name, value) {
    var input = form.querySelector("input[name=" + name + "][value='" + value + "']");
    if (input) { input.checked = true; input.focus(); }
    return !!input;
  }
  function answered(name) { return !!form.querySelector("input[name=" + name + "]:checked"); }

  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }  // one submission per page, even on a double click
    sent = true;
    if (timing) timing.value = Math.round(performance.now() - started);
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"))) return;
    var key = event.key.toLowerCase();
    if (key === "y" || key === "n") {
      pick("accurate", key === "y" ? "yes" : "no");
      event.preventDefault();
    } else if (/^[1-5]$/.test(key)) {
      // A digit answers the first scale still open, then the second; with both answered it
      // changes the scale that has the focus, or familiarity.
      var name = !answered("confidence") ? "confidence"
        : !answered("familiarity") ? "familiarity"
        : (target && target.name === "confidence" ? "confidence" : "familiarity");
      pick(name, key);
      event.preventDefault();
    } else if (key === "enter" && !(target && (target.tagName === "A" || target.tagName === "BUTTON"))) {
      event.preventDefault();
      if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    }
  });
})();
