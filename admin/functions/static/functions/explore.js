/* Function Dashboard: the interactive chart of a function's detail page (Highstock, served locally).
 *
 * The first request asks the admin for the whole processing window, M4-decimated to
 * the plot's width in pixels; every zoom or pan asks again for just the shown window,
 * so the points are always at most four per pixel column and, zoomed in far enough,
 * every sample with its exact value. The admin asks datagen; the browser never does.
 */
(function () {
  "use strict";
  const box = document.getElementById("fd-explore-chart");
  if (!box || typeof Highcharts === "undefined") return;
  const ru = (box.dataset.language || "en").startsWith("ru");
  const decimalPoint = ru ? "," : ".";
  const SUPER = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
  const superscript = (n) => String(n).split("").map((c) => SUPER[c]).join("");
  const state = document.getElementById("fd-explore-state");
  const csvWindow = document.getElementById("fd-csv-window");
  const csvM4 = document.getElementById("fd-csv-m4");

  /** A value as text: shortest exact digits; ×10ⁿ when huge or tiny; decimal comma in Russian. */
  function exact(value) {
    const magnitude = Math.abs(value);
    let text;
    if (value !== 0 && (magnitude >= 1e6 || magnitude < 1e-4)) {
      const [mantissa, exponent] = value.toExponential().split("e");
      text = mantissa + "×10" + superscript(Number(exponent));
    } else {
      text = String(value);
    }
    return text.replace(".", decimalPoint);
  }

  /** Decimals that show a tick interval exactly (0.025 -> 3, 20 -> 0), relative to 10^exponent. */
  function decimalsOf(interval, exponent) {
    const power = Math.floor(Math.log10(interval));
    const mantissa = String(Number((interval / 10 ** power).toPrecision(6)));
    const fraction = mantissa.includes(".") ? mantissa.split(".")[1].length : 0;
    return Math.max(0, Math.min(15, exponent - power + fraction));
  }

  /** An axis label: exactly as many digits as the tick interval needs (0.725, not 0.73). */
  function tick(value, interval) {
    const magnitude = Math.max(Math.abs(value), interval);
    if (value !== 0 && (magnitude >= 1e6 || magnitude < 1e-3)) {
      const exponent = Math.floor(Math.log10(magnitude));
      const digits = decimalsOf(interval, exponent);
      return (value / 10 ** exponent).toFixed(digits).replace(".", decimalPoint) + "×10" + superscript(exponent);
    }
    return Highcharts.numberFormat(value, decimalsOf(interval, 0), decimalPoint, " ");
  }

  const dateLabels = {
    millisecond: "%H:%M:%S.%L", second: "%H:%M:%S", minute: "%H:%M", hour: "%H:%M",
    day: "%Y-%m-%d", week: "%Y-%m-%d", month: "%Y-%m", year: "%Y",
  };
  Highcharts.setOptions({
    lang: { decimalPoint: decimalPoint, thousandsSep: " ", loading: box.dataset.loading, resetZoom: box.dataset.reset },
    time: { timezone: "UTC" },
  });

  let chart = null;
  let full = null; // the answer for the whole window
  let sequence = 0;

  function url(params) {
    const query = new URLSearchParams(params);
    return box.dataset.pointsUrl + "?" + query.toString();
  }

  function describe(body) {
    const samples = Highcharts.numberFormat(body.samples, 0, decimalPoint, " ");
    const how = body.decimated ? box.dataset.m4 : box.dataset.raw;
    if (state) state.textContent = box.dataset.samplesLabel.replace("{n}", samples) + " · " + how;
    box.dataset.samples = body.samples;
    box.dataset.decimated = body.decimated ? "1" : "0";
  }

  function updateDownloads(body, whole) {
    const window = whole ? "" : "start=" + body.start + "&end=" + body.end;
    if (csvWindow) csvWindow.href = csvWindow.dataset.base + (window ? "?" + window : "");
    if (csvM4) csvM4.href = csvM4.dataset.base + "?" + (window ? window + "&" : "") + "m4=2000";
  }

  async function load(min, max) {
    const mine = ++sequence;
    const whole = min === undefined || (full && min <= full.start * 1000 && max >= full.end * 1000);
    const params = { width: Math.max(1, Math.round(chart ? chart.plotWidth : box.clientWidth - 100)) };
    if (!whole) {
      params.start = min / 1000;
      params.end = max / 1000;
    }
    box.dataset.state = "loading";
    if (chart) chart.showLoading();
    let body;
    try {
      const response = await fetch(url(params), { headers: { Accept: "application/json" }, credentials: "same-origin" });
      body = await response.json();
      if (!response.ok) throw new Error((body.errors || []).map((e) => e.message).join("; ") || response.statusText);
    } catch (error) {
      if (mine === sequence) {
        box.dataset.state = "error";
        if (state) state.textContent = String(error.message || error);
        if (chart) chart.hideLoading();
      }
      return null;
    }
    if (mine !== sequence) return null; // a newer zoom is on its way
    const data = body.points.map((p) => [p[0] * 1000, p[1]]);
    if (chart) {
      chart.series[0].setData(data, true, false, false);
      chart.hideLoading();
    }
    describe(body);
    updateDownloads(body, whole);
    box.dataset.state = "ready";
    box.dataset.window = body.start + "," + body.end;
    return { body, data };
  }

  async function start() {
    const first = await load();
    if (!first) return;
    full = first.body;
    chart = Highcharts.stockChart(box, {
      chart: { zooming: { type: "x" }, panning: { enabled: true, type: "x" }, panKey: "shift", animation: false },
      // No <style> element (the Content-Security-Policy allows none): highcharts-palette.css holds the palette.
      palette: { injectCSS: false },
      title: { text: box.dataset.title },
      subtitle: { text: box.dataset.subtitle },
      credits: { enabled: false },
      rangeSelector: { enabled: false },
      // The navigator shows the whole window's M4 envelope, the very points of the first answer: no
      // data grouping (Highstock's default averages pairs of points: a wave that is not in the data)
      // and straight lines (its default areaspline overshoots between points). Zooms leave it as is.
      navigator: {
        adaptToUpdatedData: false,
        series: { type: "line", data: first.data, dataGrouping: { enabled: false }, lineWidth: 1 },
        xAxis: { dateTimeLabelFormats: dateLabels },
      },
      scrollbar: { liveRedraw: false },
      xAxis: {
        type: "datetime",
        ordinal: false,
        minRange: 1000,
        dateTimeLabelFormats: dateLabels,
        title: { text: "t (UTC)" },
        events: {
          afterSetExtremes: (event) => {
            if (event.trigger !== undefined) load(event.min, event.max);
          },
        },
      },
      yAxis: {
        opposite: false,
        title: { text: "y" },
        labels: {
          align: "right",
          x: -6,
          formatter: function () {
            return tick(this.value, this.axis.tickInterval || 1);
          },
        },
      },
      tooltip: {
        split: false,
        shared: false,
        formatter: function () {
          return (
            Highcharts.dateFormat("%Y-%m-%d %H:%M:%S", this.x) + " UTC<br><b>y = " + exact(this.y) + "</b>"
          );
        },
      },
      // Markers appear by themselves once the samples are 6 px apart or more (zoomed in: every sample).
      plotOptions: {
        series: { animation: false, dataGrouping: { enabled: false }, marker: { enabled: null, enabledThreshold: 6, radius: 3 } },
      },
      series: [{ type: "line", name: box.dataset.title, data: first.data, lineWidth: 1.5 }],
    });
    box.fdChart = chart; // for people poking at it in the console, and for the browser tests
    box.fdNavigator = chart.navigator && chart.navigator.series ? chart.navigator.series[0] : null;
    describe(full);
  }

  start();
})();
