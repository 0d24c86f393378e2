/* beam-receiver dashboard: the fleet table's filters and live refresh.
 *
 * Filters (site = the `site` tag, role, status) hide rows at once and keep the choice in
 * the URL (?site=roof&status=online), the same query the server filters by without
 * JavaScript. Every second each "… ago" is counted on; every data-refresh-s seconds
 * GET /api/nodes (the dashboard session reads it) brings fresh values. A changed status or
 * a node that came or went reloads the table's rows from the page itself, without
 * reloading the page, and so does a new version or release record (the Version cell and the
 * last rollout line are rendered on the server); other values are written into their cells.
 *
 * State for people and the browser test: #fleet-filters data-shown (rows shown),
 * data-refreshed (polls answered), data-refresh-state ("ok" or "error"). */
(function () {
  "use strict";

  var form = document.getElementById("fleet-filters");
  var table = document.getElementById("fleet-table");
  if (!form || !table || !window.beamFormat) {
    return;
  }
  var FILTERS = ["site", "role", "status"];
  // Cells written from GET /api/nodes: data-label -> the node's field.
  var CELLS = { Role: "role", "Queue depth": "queue_depth", Dropped: "dropped" };
  var RELEASE_KEYS = ["active", "previous", "rolled_back_from", "rollout", "changed_at"];
  var apiRoot = form.dataset.apiRoot || "";
  var refreshS = Math.max(2, Number(form.dataset.refreshS) || 10);
  var shownText = document.getElementById("fleet-shown");
  var refreshText = document.getElementById("fleet-refresh");
  // Server clock minus this browser's: ages are counted on the server's clock.
  var skewS = Number(form.dataset.serverNow) ? Number(form.dataset.serverNow) - Date.now() / 1000
    : 0;
  var lastRefresh = Date.now() / 1000;
  var refreshed = 0;

  function rows() {
    return Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-node-id]"));
  }

  function chosen() {
    var picked = {};
    FILTERS.forEach(function (name) {
      var select = form.elements[name];
      picked[name] = select ? select.value : "";
    });
    return picked;
  }

  function matches(row, picked, skip) {
    return FILTERS.every(function (name) {
      return name === skip || !picked[name] || (row.dataset[name] || "") === picked[name];
    });
  }

  /* Hide what the filters leave out; each option's count is what it would show, the
   * other filters kept (as the server counts them). */
  function applyFilters() {
    var picked = chosen();
    var all = rows();
    var shown = 0;
    all.forEach(function (row) {
      row.hidden = !matches(row, picked, "");
      shown += row.hidden ? 0 : 1;
    });
    FILTERS.forEach(function (name) {
      var select = form.elements[name];
      if (!select) {
        return;
      }
      Array.prototype.forEach.call(select.options, function (option) {
        if (!option.value) {
          return;
        }
        var count = all.filter(function (row) {
          return matches(row, picked, name) && (row.dataset[name] || "") === option.value;
        }).length;
        option.dataset.count = String(count);
        option.textContent = option.textContent.replace(/\s*\(\d+\)$/, "") + " (" + count + ")";
      });
    });
    shownText.textContent = shown + " of " + all.length + " shown";
    form.dataset.shown = String(shown);
  }

  function rememberFilters() {
    var params = new URLSearchParams(location.search);
    var picked = chosen();
    FILTERS.forEach(function (name) {
      if (picked[name]) {
        params.set(name, picked[name]);
      } else {
        params.delete(name);
      }
    });
    var query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  function tickAges() {
    beamFormat.tickAges(table, skewS);
    var age = Math.max(0, Math.round(Date.now() / 1000 - lastRefresh));
    refreshText.textContent = "updated " + beamFormat.ageText(age);
  }

  function cellText(value) {
    return value === null || value === undefined || value === "" ? "—" : String(value);
  }

  /* Rows and summary from a fresh copy of this page (same filters). */
  function reloadRows() {
    return fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status + " " + response.statusText);
        }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var body = page.querySelector("#fleet-table tbody");
        var summary = page.getElementById("fleet-summary");
        if (!body) {
          location.reload(); // the fleet became empty, or the page changed shape
          return;
        }
        table.querySelector("tbody").replaceWith(document.adoptNode(body));
        var current = document.getElementById("fleet-summary");
        if (summary && current) {
          current.replaceWith(document.adoptNode(summary));
        }
        var rollout = page.getElementById("fleet-rollout");
        var shownRollout = document.getElementById("fleet-rollout");
        if (rollout && shownRollout) {
          shownRollout.replaceWith(document.adoptNode(rollout));
        } else if (rollout) {
          document.getElementById("fleet-summary").after(document.adoptNode(rollout));
        } else if (shownRollout) {
          shownRollout.remove();
        }
        beamFormat.localiseTimes(document.getElementById("fleet-rollout") || table);
        beamFormat.localiseTimes(table);
      });
  }

  /* Whether the row shows this release record (data-release) and software version. */
  function sameRelease(row, node) {
    var shown = row.dataset.release ? JSON.parse(row.dataset.release) : null;
    var now = node.release || null;
    if (!shown || !now) {
      return !shown === !now;
    }
    return RELEASE_KEYS.every(function (key) { return shown[key] === now[key]; });
  }

  function update(nodes) {
    var byId = {};
    nodes.forEach(function (node) { byId[node.node_id] = node; });
    var present = rows();
    var changed = present.length !== nodes.length || present.some(function (row) {
      var node = byId[row.dataset.nodeId];
      var site = (node && node.tags && node.tags.site !== undefined && node.tags.site !== null)
        ? String(node.tags.site) : "";
      return !node || node.status !== row.dataset.status ||
        (node.role === null || node.role === undefined ? "" : String(node.role)) !==
          (row.dataset.role || "") || site !== (row.dataset.site || "") ||
        !sameRelease(row, node) ||
        cellText(node.software_version) !== (row.dataset.version || "—");
    });
    if (changed) {
      return reloadRows();
    }
    present.forEach(function (row) {
      var node = byId[row.dataset.nodeId];
      Object.keys(CELLS).forEach(function (label) {
        var cell = row.querySelector("[data-label=\"" + label + "\"]");
        if (cell) {
          cell.textContent = cellText(node[CELLS[label]]);
        }
      });
      var time = row.querySelector("time[datetime]");
      if (time && node.last_seen) {
        time.setAttribute("datetime", node.last_seen);
      }
    });
    beamFormat.localiseTimes(table);
    return null;
  }

  function poll() {
    fetch(apiRoot + "/api/nodes", {
      credentials: "same-origin", headers: { Accept: "application/json" }
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status + " " + response.statusText);
        }
        return response.json();
      })
      .then(function (body) {
        (body.nodes || []).forEach(function (node) {
          if (node.last_seen && typeof node.last_seen_age_s === "number") {
            skewS = Date.parse(node.last_seen) / 1000 + node.last_seen_age_s - Date.now() / 1000;
          }
        });
        return update(body.nodes || []);
      })
      .then(function () {
        refreshed += 1;
        lastRefresh = Date.now() / 1000;
        form.dataset.refreshed = String(refreshed);
        form.dataset.refreshState = "ok";
        refreshText.classList.remove("filters-stale");
        applyFilters();
        tickAges();
      }, function (error) {
        form.dataset.refreshState = "error";
        refreshText.classList.add("filters-stale");
        refreshText.textContent = "refresh failed (" + error.message + "), retrying";
      })
      .then(function () {
        setTimeout(poll, refreshS * 1000);
      });
  }

  form.classList.add("filters-live");
  FILTERS.forEach(function (name) {
    var select = form.elements[name];
    if (select) {
      select.addEventListener("change", function () {
        applyFilters();
        rememberFilters();
      });
    }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    applyFilters();
    rememberFilters();
  });
  applyFilters();
  tickAges();
  setInterval(tickAges, 1000);
  setTimeout(poll, refreshS * 1000);
})();
