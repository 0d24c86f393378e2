/* beam-receiver dashboard: a node's status over time, from when its heartbeats arrived
 * (GET /api/nodes/<id>/status-history, read with the dashboard session).
 *
 * The server cuts the range into segments: online for 2 telemetry intervals after each
 * heartbeat, degraded up to 5, then offline until the next one, the same rule as the
 * fleet table (status.py); "none" before the first heartbeat on record. The strip spans
 * the range picked for the charts. State is reported on #history as data attributes
 * (data-state, data-heartbeats, data-segments, data-offline) for people and the browser
 * test. */
(function () {
  "use strict";

  var section = document.getElementById("history");
  if (!section || !window.beamFormat) {
    return;
  }
  var strip = document.getElementById("history-strip");
  var axis = document.getElementById("history-axis");
  var note = document.getElementById("history-note");
  var nodeId = section.dataset.nodeId;
  var apiRoot = section.dataset.apiRoot || "";
  var LABELS = {
    online: "online",
    degraded: "degraded (heartbeat late)",
    offline: "offline (no heartbeat)",
    none: "no heartbeat on record"
  };
  var generation = 0;

  function rangeSeconds() {
    var link = document.querySelector(".ranges a[aria-current=\"true\"]") ||
      document.querySelector(".ranges a[data-seconds]");
    return link ? Number(link.dataset.seconds) : 86400;
  }

  function draw(body, start, end) {
    var parts = (body.segments || []).map(function (segment) {
      return {
        status: segment.status,
        from: Date.parse(segment.start) / 1000,
        to: Date.parse(segment.end) / 1000
      };
    });
    strip.textContent = "";
    parts.forEach(function (part) {
      var block = document.createElement("span");
      block.className = "history-part history-" + (LABELS[part.status] ? part.status : "none");
      block.dataset.status = part.status;
      // CSSOM, not a style attribute: allowed by the page's strict style-src.
      block.style.left = (100 * (part.from - start) / (end - start)) + "%";
      block.style.width = (100 * (part.to - part.from) / (end - start)) + "%";
      block.title = (LABELS[part.status] || part.status) + ": " +
        beamFormat.isoLocal(part.from) + " to " + beamFormat.isoLocal(part.to);
      strip.appendChild(block);
    });
    axis.textContent = "";
    [start, end].forEach(function (moment) {
      var label = document.createElement("span");
      label.textContent = beamFormat.isoLocal(moment);
      axis.appendChild(label);
    });
    var count = body.heartbeats || 0;
    var words = count + " heartbeat" + (count === 1 ? "" : "s") + " in this range";
    if (body.truncated) {
      words += " (the first " + count + " only)";
    }
    words += ". Online within 2 × " + body.interval_s + " s of a heartbeat, degraded within" +
      " 5 ×, then offline; grey: no heartbeat on record.";
    note.textContent = words;
    strip.setAttribute("aria-label", "Status over the range: " + parts.map(function (part) {
      return LABELS[part.status] || part.status;
    }).join(", then "));
    var offline = parts.filter(function (part) { return part.status === "offline"; });
    section.dataset.heartbeats = String(count);
    section.dataset.segments = String(parts.length);
    section.dataset.offline = String(offline.length);
    section.dataset.state = "ready";
  }

  function load() {
    generation += 1;
    var mine = generation;
    var end = Date.now() / 1000;
    var start = end - rangeSeconds();
    var params = new URLSearchParams({
      start: new Date(start * 1000).toISOString(),
      end: new Date(end * 1000).toISOString()
    });
    var url = apiRoot + "/api/nodes/" + encodeURIComponent(nodeId) + "/status-history?" +
      params.toString();
    section.dataset.state = "loading";
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status + " " + response.statusText);
        }
        return response.json();
      })
      .then(function (body) {
        if (mine === generation) {
          draw(body, start, end);
        }
      }, function (error) {
        if (mine === generation) {
          note.textContent = "Could not load the heartbeat history: " + error.message;
          section.dataset.state = "error";
        }
      });
  }

  Array.prototype.forEach.call(document.querySelectorAll(".ranges a[data-range]"),
    function (link) {
      // After dashboard.js has marked the new range as current.
      link.addEventListener("click", function () { setTimeout(load, 0); });
    });
  load();

  // The page's "Last seen" counts on too, on the server's clock.
  var details = document.getElementById("node-details");
  var serverNow = Number(section.dataset.serverNow);
  var skewS = serverNow ? serverNow - Date.now() / 1000 : 0;
  if (details) {
    setInterval(function () { beamFormat.tickAges(details, skewS); }, 1000);
  }
})();
