/* Function Dashboard: rows in flight update themselves (bounded polling of a small JSON endpoint).
 *
 * While a row of the list is in flight (its status reads "queued…", "rendering…", ...),
 * the page asks the admin for the live columns of those rows: every 1.5 s for the
 * first minute, then every 5 s, and gives up after 15 minutes (a reload shows the same
 * truth: the cells come from the same display methods). It stops as soon as no row is
 * in flight. Rows with a refresh schedule are asked for every 10 s for as long as the
 * page is open (the list is a dashboard that keeps itself current): a scheduled refresh
 * shows without a click. The browser only ever talks to the admin.
 */
function fdLiveRows() {
  "use strict";
  const box = document.getElementById("fd-batches");
  const table = document.getElementById("result_list");
  if (!box || !table) return;
  const url = box.dataset.liveUrl;
  const FAST = 1500, SLOW = 5000, FAST_FOR = 60000, GIVE_UP = 15 * 60000, SCHEDULED = 10000;
  const started = Date.now();
  let timer = null;

  function rowOf(id) {
    const box = table.querySelector('input.action-select[value="' + CSS.escape(String(id)) + '"]');
    return box ? box.closest("tr") : null;
  }

  function idsInFlight() {
    return Array.from(table.querySelectorAll("tbody tr"))
      .filter((tr) => tr.querySelector("td.field-status .fd-running"))
      .map((tr) => (tr.querySelector("input.action-select") || {}).value)
      .filter(Boolean);
  }

  function idsScheduled() {
    return Array.from(table.querySelectorAll("tbody tr"))
      .filter((tr) => tr.querySelector("td.field-schedule .fd-scheduled"))
      .map((tr) => (tr.querySelector("input.action-select") || {}).value)
      .filter(Boolean);
  }

  function apply(body) {
    for (const row of body.rows) {
      const tr = rowOf(row.id);
      if (!tr) continue;
      for (const [name, html] of Object.entries(row.cells)) {
        const cell = tr.querySelector("td.field-" + name);
        if (cell && cell.innerHTML !== html) cell.innerHTML = html;
      }
      tr.classList.toggle("fd-in-flight", row.in_progress);
    }
    if (typeof body.batches === "string") {
      box.innerHTML = body.batches;
      box.hidden = body.batches.trim() === "";
    }
  }

  async function poll() {
    timer = null;
    const flying = Date.now() - started > GIVE_UP ? [] : idsInFlight();
    const ids = Array.from(new Set([...flying, ...idsScheduled()]));
    if (ids.length === 0) {
      if (idsInFlight().length > 0) document.body.dataset.fdLive = "gave-up";
      return; // nothing in flight (or given up) and nothing scheduled: stop
    }
    try {
      const response = await fetch(url + "?ids=" + ids.join(","), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) apply(await response.json());
    } catch (error) {
      // offline for a moment: the next poll tries again
    }
    schedule();
  }

  function schedule() {
    const busy = idsInFlight().length > 0 && Date.now() - started <= GIVE_UP;
    const scheduled = idsScheduled().length > 0;
    document.body.dataset.fdLive = busy ? "polling" : scheduled ? "scheduled" : "idle";
    if (timer !== null) return;
    if (busy) timer = setTimeout(poll, Date.now() - started < FAST_FOR ? FAST : SLOW);
    else if (scheduled) timer = setTimeout(poll, SCHEDULED);
  }

  schedule();
}

// The admin puts its media scripts in <head>: start once the list exists.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fdLiveRows);
else fdLiveRows();
