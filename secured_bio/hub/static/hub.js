// secured_bio Innohub: the pages' only script (CSP script-src 'self': no inline code).
// - job pages: poll the job's JSON every 2 s and update the progress bars until it finishes;
// - job form: show only the parameters of the chosen analysis;
// - forms with data-confirm: ask before sending.
(function () {
  "use strict";
  var FINISHED = ["succeeded", "failed", "cancelled"];

  function setBadge(el, status) {
    if (!el) { return; }
    el.textContent = status;
    el.className = "badge badge-" + status.replace(/[^a-z]/g, "");
  }

  function pollJob(root) {
    var url = root.getAttribute("data-url");
    var initial = root.getAttribute("data-status");
    function update(job) {
      setBadge(root.querySelector("h1 [data-field=status]"), job.status);
      var bar = document.getElementById("job-progress");
      if (bar) { bar.value = job.progress; }
      var pct = root.querySelector("[data-field=percent]");
      if (pct) { pct.textContent = Math.round(job.progress * 100) + " %"; }
      var err = root.querySelector("[data-field=error]");
      if (err) { err.textContent = job.error || ""; err.hidden = !job.error; }
      (job.sites || []).forEach(function (t) {
        var row = root.querySelector("tr[data-rank='" + Number(t.rank) + "']");
        if (!row) { return; }
        setBadge(row.querySelector("[data-field=site-status]"), t.status);
        var p = row.querySelector("progress");
        if (p) { p.value = t.progress; }
        var msg = row.querySelector("[data-field=message]");
        if (msg) { msg.textContent = t.error || t.message || ""; }
      });
      root.setAttribute("data-status", job.status);
    }
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (job) {
          update(job);
          if (FINISHED.indexOf(job.status) >= 0) {
            if (initial !== job.status) { window.location.reload(); }  // show the artifacts
            return;
          }
          window.setTimeout(tick, 2000);
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    }
    window.setTimeout(tick, 2000);
  }

  function kindSwitch(select) {
    function show() {
      document.querySelectorAll("fieldset[data-kind]").forEach(function (fs) {
        var on = fs.getAttribute("data-kind") === select.value;
        fs.hidden = !on;
        fs.disabled = !on;
      });
    }
    select.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("job-live");
    if (live && !live.hasAttribute("data-finished")) { pollJob(live); }
    var kind = document.querySelector("select[data-kind-select]");
    if (kind) { kindSwitch(kind); }
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
      });
    });
  });
}());
