// The usage page's chart: requests per kind (stacked bars) and tokens (line) per hour.
// Data comes from the page (json_script); the table under the chart has the same numbers.
(function () {
  "use strict";
  var canvas = document.getElementById("usage-chart");
  var source = document.getElementById("usage-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var colours = { answer: "#2455c3", search: "#1e7a3c", ingest: "#b36b00", embeddings: "#7a3cb3" };
  var names = { answer: "Answers", search: "Searches", ingest: "Uploads", embeddings: "Embeddings" };
  var datasets = Object.keys(data.requests).map(function (kind) {
    return {
      type: "bar",
      label: names[kind] || kind,
      data: data.requests[kind],
      backgroundColor: colours[kind] || "#5b6473",
      stack: "requests",
      yAxisID: "y",
    };
  });
  datasets.push({
    type: "line",
    label: "Tokens",
    data: data.tokens,
    borderColor: "#b3261e",
    backgroundColor: "#b3261e",
    pointRadius: 0,
    borderWidth: 1.5,
    yAxisID: "tokens",
  });
  new Chart(canvas, {
    data: { labels: data.labels, datasets: datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, ticks: { autoSkip: true, maxTicksLimit: 14, maxRotation: 0 } },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: "requests" } },
        tokens: {
          position: "right",
          beginAtZero: true,
          grid: { drawOnChartArea: false },
          title: { display: true, text: "tokens" },
        },
      },
    },
  });
})();
