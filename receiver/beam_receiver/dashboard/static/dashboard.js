/* beam-receiver dashboard: draws one uPlot chart per (sensor, numeric payload field) of a
 * node from /api/analytics/series, over the range picked in the range selector. A collectd
 * plugin instance is one sensor whose fields are "type[-type_instance].dsname".
 *
 * State is reported on #charts as data attributes (data-state, data-charts, data-points) and
 * per chart (data-points), so people and the browser test can see what was drawn. */
(function () {
  "use strict";

  var section = document.getElementById("charts");
  if (!section) {
    return;
  }
  var nodeId = section.dataset.nodeId;
  var apiRoot = section.dataset.apiRoot || "";
  var grid = document.getElementById("chart-grid");
  var message = document.getElementById("charts-message");
  var facts = document.getElementById("facts");
  var factsList = document.getElementById("facts-list");
  var rangeLinks = Array.prototype.slice.call(section.querySelectorAll(".ranges a[data-range]"));
  var CHART_HEIGHT = 220;
  var charts = [];
  var generation = 0;

  function apiUrl(path, params) {
    return apiRoot + path + "?" + new URLSearchParams(params).toString();
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.ok) {
          return response.json();
        }
        return response.json().then(
          function (body) {
            throw new Error((body && body.message) || response.status + " " + response.statusText);
          },
          function () {
            throw new Error(response.status + " " + response.statusText);
          }
        );
      });
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  /* Epoch seconds from an RFC 3339 string or a number; NaN when neither. */
  function toSeconds(value) {
    if (isNumber(value)) {
      return value;
    }
    if (typeof value === "string") {
      return Date.parse(value) / 1000;
    }
    return NaN;
  }

  /* The chartable fields of one reading's payload. An agent's are its top-level numbers. A
   * collectd value list's payload is {"type[-type_instance]": {dsname: value}}, flattened
   * one level to "type[-type_instance].dsname" (percent-user.value, if_octets.rx), the path
   * /api/analytics/series reads; a null there is collectd's NaN, still a numeric field. */
  function payloadFields(sensorType, payload) {
    var fields = [];
    Object.keys(payload).forEach(function (key) {
      var value = payload[key];
      if (sensorType !== "collectd") {
        if (isNumber(value)) {
          fields.push(key);
        }
        return;
      }
      if (value && typeof value === "object" && !Array.isArray(value)) {
        Object.keys(value).forEach(function (dsname) {
          if (isNumber(value[dsname]) || value[dsname] === null) {
            fields.push(key + "." + dsname);
          }
        });
      }
    });
    return fields;
  }

  /* [{sensor, sensorType, fields: [...]}] from the latest readings: one per agent sensor,
   * one per value list of a collectd plugin instance at its newest time (cpu-0's
   * percent-user, percent-idle, ...), whose fields are merged into one sensor. */
  function sensorsFromLatest(body) {
    var readings = body.readings || [];
    var bySensor = {};
    var sensors = [];
    readings.forEach(function (reading) {
      var fields = payloadFields(reading.sensor_type, reading.payload || {});
      if (!fields.length) {
        return;
      }
      var sensor = bySensor[reading.sensor];
      if (!sensor) {
        sensor = { sensor: reading.sensor, sensorType: reading.sensor_type, fields: [] };
        bySensor[reading.sensor] = sensor;
        sensors.push(sensor);
      }
      fields.forEach(function (field) {
        if (sensor.fields.indexOf(field) < 0) {
          sensor.fields.push(field);
        }
      });
    });
    sensors.forEach(function (sensor) {
      sensor.fields.sort();
    });
    sensors.sort(function (a, b) {
      return a.sensor < b.sensor ? -1 : a.sensor > b.sensor ? 1 : 0;
    });
    return sensors;
  }

  /* uPlot's columnar data [[x], [avg], [min], [max]] from the analytics buckets, and the
   * number of buckets with data. Where buckets are missing (the node was silent) a null is
   * put in, so the line breaks there instead of bridging the silence. */
  function columnsFromSeries(body) {
    var buckets = body.buckets || [];
    var width = isNumber(body.bucket_s) ? body.bucket_s : 0;
    var columns = [[], [], [], []];
    var points = 0;
    buckets.forEach(function (bucket) {
      var x = toSeconds(bucket.start);
      if (!isNumber(x) || !bucket.count) {
        return;
      }
      var previous = columns[0][columns[0].length - 1];
      if (width && previous !== undefined && x - previous > width * 1.5) {
        columns[0].push(previous + width);
        columns[1].push(null);
        columns[2].push(null);
        columns[3].push(null);
      }
      columns[0].push(x);
      columns[1].push(isNumber(bucket.avg) ? bucket.avg : null);
      columns[2].push(isNumber(bucket.min) ? bucket.min : null);
      columns[3].push(isNumber(bucket.max) ? bucket.max : null);
      points += 1;
    });
    return { columns: columns, points: points };
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  /* Room for the longest tick label, measured in the axis's own font (uPlot's fixed width
   * cut labels such as "1 500 000"). uPlot calls this again once the labels are known. */
  function axisSize(box) {
    return function (self, values, axisIdx, cycleNum) {
      var axis = self.axes[axisIdx];
      if (cycleNum > 1) {
        return axis._size;
      }
      var size = axis.ticks.size + axis.gap;
      var longest = 0;
      self.ctx.font = axis.font[0];
      (values || []).forEach(function (text) {
        String(text).split("\n").forEach(function (line) {
          longest = Math.max(longest, self.ctx.measureText(line).width);
        });
      });
      var total = Math.ceil(size + longest / (window.devicePixelRatio || 1)) + 4;
      if (axisIdx === 1) {
        // For people and the browser test: the widest label and the room it was given.
        box.dataset.yLabelWidth = String(Math.ceil(longest / (window.devicePixelRatio || 1)));
        box.dataset.yAxisSize = String(total);
      }
      return total;
    };
  }

  /* The x axis always spans the chosen range, so a short burst of data looks short. Ticks,
   * legend and y labels carry the field's unit; times are ISO 8601 in the viewer's zone. */
  function chartOptions(chart, width, startS, endS) {
    var field = chart.field;
    var unit = chart.unit;
    function legendValue(self, value) {
      return value == null ? "—" : beamFormat.valueText(unit, value);
    }
    return {
      width: width,
      height: CHART_HEIGHT,
      scales: {
        x: {
          time: true,
          range: function () {
            return [startS, endS];
          }
        }
      },
      series: [
        {
          value: function (self, seconds) {
            return seconds == null ? "—" : beamFormat.isoLocal(seconds);
          }
        },
        {
          label: field + " avg", stroke: "#1f5fbf", width: 2, points: { size: 5 },
          value: legendValue
        },
        {
          label: "min", stroke: "#8fb0e0", width: 1, dash: [4, 4], points: { show: false },
          value: legendValue
        },
        {
          label: "max", stroke: "#8fb0e0", width: 1, dash: [4, 4], points: { show: false },
          value: legendValue
        }
      ],
      bands: [{ series: [3, 2], fill: "rgba(31, 95, 191, 0.10)" }],
      axes: [
        {
          size: 48,
          space: 80, // room for "2026-12-04" between ticks
          values: function (self, splits) {
            var labels = beamFormat.timeTicks(splits);
            chart.element.dataset.xTicks = labels.join(" | ");
            return labels;
          }
        },
        {
          size: axisSize(chart.element),
          incrs: beamFormat.isBytes(unit) ? beamFormat.byteIncrements() : undefined,
          values: function (self, splits) {
            var format = beamFormat.axisFormatter(unit, splits);
            var labels = splits.map(format);
            chart.element.dataset.yTicks = labels.join(" | ");
            return labels;
          }
        }
      ],
      legend: { live: true }
    };
  }

  function destroyCharts() {
    charts.forEach(function (chart) {
      if (chart.plot) {
        chart.plot.destroy();
      }
    });
    charts = [];
    grid.textContent = "";
    factsList.textContent = "";
    facts.hidden = true;
  }

  function chartWidth(body) {
    return Math.max(200, Math.floor(body.clientWidth));
  }

  function drawOne(chart, range, myGeneration) {
    var end = new Date();
    var start = new Date(end.getTime() - range.seconds * 1000);
    var url = apiUrl("/api/analytics/series", {
      device_id: nodeId,
      sensor: chart.sensor,
      field: chart.field,
      bucket: range.bucket,
      start: start.toISOString(),
      end: end.toISOString()
    });
    return getJson(url).then(
      function (body) {
        if (myGeneration !== generation) {
          return 0;
        }
        var series = columnsFromSeries(body);
        chart.element.dataset.points = String(series.points);
        var steady = steadyValue(series);
        if (!series.points || steady !== undefined) {
          addFact(chart, range, series.points ? steady : null);
          return series.points;
        }
        var options = chartOptions(
          chart, chartWidth(chart.body), start.getTime() / 1000, end.getTime() / 1000
        );
        chart.element.dataset.unit = chart.unit;
        chart.plot = new uPlot(options, series.columns, chart.body);
        chart.element.dataset.state = "drawn";
        return series.points;
      },
      function (error) {
        if (myGeneration === generation) {
          chart.body.appendChild(element("p", "chart-error", "Could not load: " + error.message));
          chart.element.dataset.state = "error";
          chart.element.dataset.points = "0";
        }
        return 0;
      }
    );
  }

  /* The one value a series holds across the window (every min and max equal: total memory,
   * swap 0, a fixed CPU frequency), or undefined when it moves. Not worth a chart. */
  function steadyValue(series) {
    var seen;
    var values = series.columns[2].concat(series.columns[3]);
    for (var i = 0; i < values.length; i++) {
      var value = values[i];
      if (value === null) {
        continue;
      }
      if (seen === undefined) {
        seen = value;
      } else if (Math.abs(value - seen) > 1e-9 * Math.max(1, Math.abs(seen))) {
        return undefined;
      }
    }
    return seen;
  }

  /* Move a chart's frame out of the grid into the facts list: "sensor · field  7.6 GiB". */
  function addFact(chart, range, value) {
    var unit = chart.unit;
    var item = element("div", "fact");
    item.dataset.sensor = chart.sensor;
    item.dataset.field = chart.field;
    item.dataset.state = value === null ? "empty" : "steady";
    item.appendChild(element("dt", "", chart.sensor + " · " + chart.field));
    var text = value === null ? "no readings in the last " + range.name
      : beamFormat.valueText(unit, value);
    var dd = element("dd", "", text);
    if (value !== null) {
      dd.title = "the same value in every " + range.bucketLabel + " of the last " + range.name;
      dd.appendChild(element("span", "fact-note", " steady over " + range.name));
    }
    item.appendChild(dd);
    // In the order of the charts (sensor, then field), whichever answer came first.
    var key = chart.sensor + "\u0000" + chart.field;
    var after = Array.prototype.filter.call(factsList.children, function (other) {
      return other.dataset.sensor + "\u0000" + other.dataset.field > key;
    })[0];
    factsList.insertBefore(item, after || null);
    facts.hidden = false;
    chart.element.remove();
    chart.fact = item;
  }

  function selectedRange() {
    var link = rangeLinks.filter(function (a) {
      return a.getAttribute("aria-current") === "true";
    })[0] || rangeLinks[0];
    return {
      name: link.dataset.range,
      seconds: Number(link.dataset.seconds),
      bucket: link.dataset.bucket,
      bucketLabel: link.dataset.bucketLabel || link.dataset.bucket
    };
  }

  function drawAll(sensors) {
    generation += 1;
    var myGeneration = generation;
    var range = selectedRange();
    destroyCharts();
    section.dataset.state = "loading";
    section.dataset.range = range.name;
    sensors.forEach(function (sensor) {
      sensor.fields.forEach(function (field) {
        var box = element("figure", "chart");
        box.dataset.sensor = sensor.sensor;
        box.dataset.field = field;
        box.appendChild(element("h3", "", sensor.sensor + " · " + field));
        box.appendChild(element("p", "chart-note",
          (sensor.sensorType ? sensor.sensorType + ", " : "") + "per " + range.bucketLabel +
          ": average, band from min to max"));
        var body = element("div", "chart-body");
        box.appendChild(body);
        grid.appendChild(box);
        charts.push({
          sensor: sensor.sensor,
          field: field,
          unit: beamFormat.unitOf(field, sensor.sensorType),
          element: box,
          body: body,
          plot: null
        });
      });
    });
    return Promise.all(charts.map(function (chart) {
      return drawOne(chart, range, myGeneration);
    })).then(function (counts) {
      if (myGeneration !== generation) {
        return;
      }
      var total = counts.reduce(function (sum, n) { return sum + n; }, 0);
      section.dataset.charts = String(charts.filter(function (c) { return c.plot; }).length);
      section.dataset.facts = String(charts.filter(function (c) { return c.fact; }).length);
      section.dataset.points = String(total);
      section.dataset.state = "ready";
      message.textContent = total ? "" : "No readings in the last " + range.name + ".";
      message.hidden = total > 0;
    });
  }

  function resizeCharts() {
    charts.forEach(function (chart) {
      if (chart.plot) {
        chart.plot.setSize({ width: chartWidth(chart.body), height: CHART_HEIGHT });
      }
    });
  }

  function start() {
    if (typeof uPlot === "undefined") {
      message.textContent = "The chart library (uPlot) did not load; the details above are current.";
      section.dataset.state = "error";
      return;
    }
    getJson(apiUrl("/api/readings/latest", { device_id: nodeId })).then(
      function (body) {
        var sensors = sensorsFromLatest(body);
        if (!sensors.length) {
          message.textContent = "This node has sent no readings with numeric fields yet.";
          section.dataset.state = "ready";
          section.dataset.charts = "0";
          section.dataset.points = "0";
          return;
        }
        message.textContent = "Loading charts…";
        rangeLinks.forEach(function (link) {
          link.addEventListener("click", function (event) {
            event.preventDefault();
            rangeLinks.forEach(function (other) { other.removeAttribute("aria-current"); });
            link.setAttribute("aria-current", "true");
            history.replaceState(null, "", link.href);
            message.hidden = false;
            message.textContent = "Loading charts…";
            drawAll(sensors);
          });
        });
        var pending = 0;
        window.addEventListener("resize", function () {
          cancelAnimationFrame(pending);
          pending = requestAnimationFrame(resizeCharts);
        });
        return drawAll(sensors);
      },
      function (error) {
        message.textContent = "Could not load this node's sensors: " + error.message;
        section.dataset.state = "error";
      }
    );
  }

  start();
})();
