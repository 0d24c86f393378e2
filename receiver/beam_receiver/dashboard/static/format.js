/* beam-receiver dashboard: units and dates shared by the fleet and node pages.
 *
 * window.beamFormat.unitOf(field) names a field's unit from its name (*_bytes, *_percent,
 * *_pct, temperature / *_c, usv_per_hr, ...); unitOf(field, "collectd") from the collectd
 * type the field belongs to ("memory-used.value" is bytes, "if_octets.rx" bytes/s);
 * axisFormatter(unit, values) picks one scale for a whole axis (all ticks in MiB, say),
 * valueText(unit, v) formats one value.
 * Dates are ISO 8601 in the viewer's time zone: isoLocal(seconds) gives
 * "2026-12-04 17:08:45 +01:00". */
(function () {
  "use strict";

  var IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  var HERTZ = ["Hz", "kHz", "MHz", "GHz"];

  /* Suffix rules, most specific first: [pattern, unit]. */
  var UNIT_RULES = [
    [/(^|_)bytes$/, "bytes"],
    [/(^|_)(percent|pct)$/, "%"],
    [/^humidity$/, "%"],
    [/(^|_)usv_per_h(r|our)?$/, "µSv/h"],
    [/(^|_)(celsius|degc)$/, "°C"],
    [/^temperature$|^temp$|(^|_)(temperature|temp)_c$|_c$/, "°C"],
    [/(^|_)hpa$/, "hPa"],
    [/(^|_)pa$/, "Pa"],
    [/(^|_)mhz$/, "MHz"],
    [/(^|_)hz$/, "hz"],
    [/(^|_)(seconds|secs)$/, "s"],
    [/(^|_)ms$/, "ms"],
    [/(^|_)volts?$|(^|_)v$/, "V"],
    [/^cpm$|_cpm$/, "counts/min"],
    [/^cps$|_cps$/, "counts/s"]
  ];

  /* collectd's types (types.db) by what their values count. A field is
   * "type[-type_instance].dsname"; the rates assume StoreRates true, as docs/receiver.md
   * configures write_http (without it a derive or counter is the raw, ever-growing count). */
  var COLLECTD_UNITS = {
    memory: "bytes",
    swap: "bytes",
    df_complex: "bytes",
    bytes: "bytes",
    percent: "%",
    percent_bytes: "%",
    percent_inodes: "%",
    humidity: "%",
    if_octets: "bytes/s",
    disk_octets: "bytes/s",
    io_octets: "bytes/s",
    if_packets: "packets/s",
    if_dropped: "packets/s",
    if_errors: "errors/s",
    disk_ops: "ops/s",
    disk_merged: "ops/s",
    cpu: "jiffies/s",
    temperature: "°C",
    cpufreq: "hz",
    frequency: "hz",
    uptime: "s",
    voltage: "V"
  };

  function collectdUnit(field) {
    var type = String(field || "").split(".")[0].split("-")[0];
    return Object.prototype.hasOwnProperty.call(COLLECTD_UNITS, type) ? COLLECTD_UNITS[type] : "";
  }

  function unitOf(field, sensorType) {
    if (sensorType === "collectd") {
      return collectdUnit(field);
    }
    var name = String(field || "").toLowerCase();
    for (var i = 0; i < UNIT_RULES.length; i++) {
      if (UNIT_RULES[i][0].test(name)) {
        return UNIT_RULES[i][1];
      }
    }
    return "";
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  /* The fewest digits after the point (at most 6) that show every tick exactly. */
  function decimalsFor(values) {
    for (var digits = 0; digits < 6; digits++) {
      var factor = Math.pow(10, digits);
      var exact = values.every(function (value) {
        var shifted = value * factor;
        return Math.abs(shifted - Math.round(shifted)) < 1e-6 * Math.max(1, Math.abs(shifted));
      });
      if (exact) {
        return digits;
      }
    }
    return 6;
  }

  /* Tick steps for a bytes axis: 1, 2, 5, 10, 20, 25, 50 ... 500 of each binary unit,
   * so ticks land on round numbers of MiB or GiB instead of round numbers of bytes. */
  function byteIncrements() {
    var steps = [];
    for (var power = 0; power < IEC.length; power++) {
      [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500].forEach(function (m) {
        steps.push(m * Math.pow(1024, power));
      });
    }
    return steps;
  }

  /* Bytes, or bytes per second: both scale in binary units (KiB, KiB/s). */
  function isBytes(unit) {
    return unit === "bytes" || unit === "bytes/s";
  }

  function grouped(value, decimals) {
    return value.toLocaleString("en-US", {
      minimumFractionDigits: decimals,
      maximumFractionDigits: decimals,
      useGrouping: true
    }).replace(/,/g, "\u202f");
  }

  /* The power of `base` (1024 for bytes, 1000 for hertz) that keeps `magnitude` below it. */
  function scaleIndex(magnitude, base, count) {
    var index = 0;
    while (index < count - 1 && Math.abs(magnitude) >= Math.pow(base, index + 1)) {
      index += 1;
    }
    return index;
  }

  function scaled(unit, magnitude) {
    if (isBytes(unit)) {
      var b = scaleIndex(magnitude, 1024, IEC.length);
      return { divisor: Math.pow(1024, b), suffix: IEC[b] + (unit === "bytes/s" ? "/s" : "") };
    }
    if (unit === "hz" || unit === "MHz") {
      var offset = unit === "MHz" ? 2 : 0;
      var start = Math.abs(magnitude) * Math.pow(1000, offset);
      var h = scaleIndex(start, 1000, HERTZ.length);
      return { divisor: Math.pow(1000, h - offset), suffix: HERTZ[h] };
    }
    return { divisor: 1, suffix: unit };
  }

  function withSuffix(text, suffix) {
    if (!suffix) {
      return text;
    }
    return suffix === "%" || suffix === "°C" ? text + "\u202f" + suffix : text + " " + suffix;
  }

  /* A formatter for every tick of one axis: one scale and one precision for all of them.
   * The scale is the largest tick's, unless the ticks step by less than that unit and it
   * would take more than two decimals: then the step's unit ("2 400 MiB", not
   * "2.34375 GiB"; "6 500 B/s", not "6.34766 KiB/s"). */
  function axisFormatter(unit, values) {
    var finite = (values || []).filter(isNumber);
    var largest = finite.reduce(function (m, v) { return Math.max(m, Math.abs(v)); }, 0);
    var scale = scaled(unit, largest);
    var decimals = decimalsFor(finite.map(function (v) { return v / scale.divisor; }));
    var sorted = finite.slice().sort(function (a, b) { return a - b; });
    var step = 0;
    for (var i = 1; i < sorted.length; i++) {
      var gap = sorted[i] - sorted[i - 1];
      if (gap > 0 && (!step || gap < step)) {
        step = gap;
      }
    }
    if (decimals > 2 && step) {
      var fine = scaled(unit, step);
      var fineDecimals = decimalsFor(finite.map(function (v) { return v / fine.divisor; }));
      if (fine.divisor < scale.divisor && fineDecimals < decimals) {
        scale = fine;
        decimals = fineDecimals;
      }
    }
    return function (value) {
      if (!isNumber(value)) {
        return "";
      }
      return withSuffix(grouped(value / scale.divisor, decimals), scale.suffix);
    };
  }

  /* One value on its own (legend, facts): three significant digits after scaling. */
  function valueText(unit, value) {
    if (!isNumber(value)) {
      return "—";
    }
    var scale = scaled(unit, value);
    var shown = value / scale.divisor;
    var decimals = 0;
    if (shown !== 0 && Math.abs(shown) < 100 && shown !== Math.round(shown)) {
      decimals = Math.max(0, Math.min(6, 2 - Math.floor(Math.log10(Math.abs(shown)))));
    }
    return withSuffix(grouped(shown, decimals), scale.suffix);
  }

  function pad(number, width) {
    var text = String(Math.abs(number));
    while (text.length < (width || 2)) {
      text = "0" + text;
    }
    return text;
  }

  function isoDate(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }

  function isoTime(date, seconds) {
    var text = pad(date.getHours()) + ":" + pad(date.getMinutes());
    return seconds ? text + ":" + pad(date.getSeconds()) : text;
  }

  function isoOffset(date) {
    var minutes = -date.getTimezoneOffset();
    return (minutes < 0 ? "-" : "+") + pad(Math.floor(Math.abs(minutes) / 60)) + ":" +
      pad(Math.abs(minutes) % 60);
  }

  /* "2026-12-04 17:08:45 +01:00" (the viewer's zone) from epoch seconds. */
  function isoLocal(seconds) {
    if (!isNumber(seconds)) {
      return "—";
    }
    var date = new Date(seconds * 1000);
    return isoDate(date) + " " + isoTime(date, true) + " " + isoOffset(date);
  }

  /* Time-axis ticks: "HH:MM", with the date added on the first tick and where it changes;
   * a tick at midnight is the date alone. */
  function timeTicks(splits) {
    var previousDay = "";
    return splits.map(function (seconds) {
      var date = new Date(seconds * 1000);
      var day = isoDate(date);
      var text = isoTime(date, false);
      if (text === "00:00") {
        text = day;
      } else if (day !== previousDay) {
        text += "\n" + day;
      }
      previousDay = day;
      return text;
    });
  }

  /* "42 s ago", "5 min ago", "3 h ago", "2 d ago": the server's words (formatting.py). */
  function ageText(seconds) {
    if (!isNumber(seconds)) {
      return "never";
    }
    if (seconds < 0) {
      return "in the future";
    }
    var units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        return Math.floor(seconds / units[i][1]) + " " + units[i][0] + " ago";
      }
    }
    return Math.floor(seconds) + " s ago";
  }

  /* Every <time datetime> gets its moment in the viewer's zone as a tooltip; one marked
   * data-local shows it as its text. */
  function localiseTimes(root) {
    Array.prototype.forEach.call((root || document).querySelectorAll("time[datetime]"),
      function (node) {
        var seconds = Date.parse(node.getAttribute("datetime")) / 1000;
        if (isNumber(seconds)) {
          node.title = isoLocal(seconds);
          if (node.hasAttribute("data-local")) {
            node.textContent = isoLocal(seconds);
          }
        }
      });
  }

  /* Count every "… ago" in root on: each <time datetime> gets its age on the server's
   * clock (skewS: server minus browser, seconds). */
  function tickAges(root, skewS) {
    var now = Date.now() / 1000 + (skewS || 0);
    Array.prototype.forEach.call(root.querySelectorAll("time[datetime]"), function (node) {
      var seen = Date.parse(node.getAttribute("datetime")) / 1000;
      if (isNumber(seen)) {
        node.textContent = ageText(Math.floor(now - seen));
      }
    });
  }

  window.beamFormat = {
    unitOf: unitOf,
    axisFormatter: axisFormatter,
    byteIncrements: byteIncrements,
    isBytes: isBytes,
    valueText: valueText,
    isoLocal: isoLocal,
    timeTicks: timeTicks,
    ageText: ageText,
    tickAges: tickAges,
    localiseTimes: localiseTimes
  };
  localiseTimes(document);
})();
