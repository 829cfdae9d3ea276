// Shows a background job's progress without reloading the page: every element with a
// data-progress-url polls that JSON ({"job": {"status", "progress", "stage"}}) every 2 s,
// moves its <progress> bar and stage text, and reloads the page once the job has finished,
// so the page shows the result. Without JavaScript the page offers a "check again" link.
(function () {
  "use strict";
  var RUNNING = ["queued", "running"];
  document.querySelectorAll("[data-progress-url]").forEach(function (box) {
    var url = box.getAttribute("data-progress-url");
    var bar = box.querySelector("progress");
    var stage = box.querySelector("[data-stage]");
    function poll() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          var job = body && body.job;
          if (!job) return;  // no such job any more (new data): the link still works
          if (bar) {
            bar.value = job.progress;
            bar.textContent = Math.round(job.progress * 100) + "%";
          }
          if (stage && job.stage) stage.textContent = job.stage;
          if (RUNNING.indexOf(job.status) >= 0) {
            window.setTimeout(poll, 2000);
          } else {
            window.location.reload();
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 2000);
  });
})();
