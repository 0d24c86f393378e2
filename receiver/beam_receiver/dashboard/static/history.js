/* beam-receiver dashboard: a node's status over time, from its recent heartbeats
 * (GET /api/nodes/<id>/telemetry, the last 100, read with the dashboard session).
 *
 * After each heartbeat the node counts as online for 2 telemetry intervals, degraded up to
 * 5, then offline until the next one: the same rule as the fleet table (status.py). The
 * strip spans the range picked for the charts. State is reported on #history as data
 * attributes (data-state, data-heartbeats, data-segments) for people and the browser test. */
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
  var intervalS = Number(section.dataset.intervalS) || 30;
  var LIMIT = 100; // what the endpoint returns at most
  var LABELS = {
    online: "online",
    degraded: "degraded (heartbeat late)",
    offline: "offline (no heartbeat)",
    none: "no heartbeat on record"
  };
  var events = null;

  function rangeSeconds() {
    var link = document.querySelector(".ranges a[aria-current=\"true\"]") ||
      document.querySelector(".ranges a[data-seconds]");
    return link ? Number(link.dataset.seconds) : 86400;
  }

  /* [{status, from, to}] in epoch seconds, clipped to [start, end], neighbours merged. */
  function segments(times, start, end) {
    var raw = [];
    if (!times.length || times[0] > start) {
      raw.push({ status: "none", from: start, to: times.length ? times[0] : end });
    }
    times.forEach(function (beat, index) {
      var next = index + 1 < times.length ? times[index + 1] : end;
      raw.push({ status: "online", from: beat, to: Math.min(next, beat + 2 * intervalS) });
      raw.push({
        status: "degraded", from: beat + 2 * intervalS, to: Math.min(next, beat + 5 * intervalS)
      });
      raw.push({ status: "offline", from: beat + 5 * intervalS, to: next });
    });
    var merged = [];
    raw.forEach(function (part) {
      var from = Math.max(part.from, start);
      var to = Math.min(part.to, end);
      if (to <= from) {
        return;
      }
      var last = merged[merged.length - 1];
      if (last && last.status === part.status && Math.abs(last.to - from) < 1e-6) {
        last.to = to;
      } else {
        merged.push({ status: part.status, from: from, to: to });
      }
    });
    return merged;
  }

  function draw() {
    if (!events) {
      return;
    }
    var end = Date.now() / 1000;
    var start = end - rangeSeconds();
    var times = events.map(function (event) {
      return Date.parse(event.received_at) / 1000;
    }).filter(function (value) {
      return isFinite(value);
    }).sort(function (a, b) { return a - b; });
    var parts = segments(times, start, end);
    strip.textContent = "";
    parts.forEach(function (part) {
      var block = document.createElement("span");
      block.className = "history-part history-" + part.status;
      block.dataset.status = part.status;
      // CSSOM, not a style attribute: allowed by the page's strict style-src.
      block.style.left = (100 * (part.from - start) / (end - start)) + "%";
      block.style.width = (100 * (part.to - part.from) / (end - start)) + "%";
      block.title = LABELS[part.status] + ": " + beamFormat.isoLocal(part.from) + " to " +
        beamFormat.isoLocal(part.to);
      strip.appendChild(block);
    });
    axis.textContent = "";
    [start, end].forEach(function (moment) {
      var label = document.createElement("span");
      label.textContent = beamFormat.isoLocal(moment);
      axis.appendChild(label);
    });
    var inWindow = times.filter(function (t) { return t >= start; }).length;
    var words = inWindow + " heartbeat" + (inWindow === 1 ? "" : "s") + " in this range";
    if (times.length) {
      words += "; last " + beamFormat.isoLocal(times[times.length - 1]);
    }
    if (events.length >= LIMIT) {
      words += ". Only the last " + LIMIT + " are kept for this view; grey is before them";
    }
    words += ". Online within 2 × " + intervalS + " s of a heartbeat, degraded within 5 ×.";
    note.textContent = words;
    strip.setAttribute("aria-label", "Status over the last " + rangeSeconds() / 3600 + " h: " +
      parts.map(function (part) { return LABELS[part.status]; }).join(", then "));
    var counts = {};
    parts.forEach(function (part) { counts[part.status] = (counts[part.status] || 0) + 1; });
    section.dataset.heartbeats = String(times.length);
    section.dataset.segments = String(parts.length);
    section.dataset.offline = String(counts.offline || 0);
    section.dataset.state = "ready";
  }

  function load() {
    var url = apiRoot + "/api/nodes/" + encodeURIComponent(nodeId) + "/telemetry";
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status + " " + response.statusText);
        }
        return response.json();
      })
      .then(function (body) {
        events = body.events || [];
        draw();
      }, function (error) {
        note.textContent = "Could not load the heartbeat history: " + error.message;
        section.dataset.state = "error";
      });
  }

  Array.prototype.forEach.call(document.querySelectorAll(".ranges a[data-range]"),
    function (link) {
      // After dashboard.js has marked the new range as current.
      link.addEventListener("click", function () { setTimeout(draw, 0); });
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
