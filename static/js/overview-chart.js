// The overview's chart: requests (bars) and tokens (line) per hour over the last 24 hours, all
// tenants. Data comes from the page (json_script); the table under the chart has the same
// numbers. A static file, not an inline script: the console's CSP runs no inline script.
(function () {
  "use strict";
  var canvas = document.getElementById("usage-chart");
  var source = document.getElementById("usage-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  new Chart(canvas, {
    data: {
      labels: data.labels,
      datasets: [
        {
          type: "bar",
          label: "Requests",
          data: data.requests,
          backgroundColor: "#2455c3",
          yAxisID: "requests",
        },
        {
          type: "line",
          label: "Tokens",
          data: data.tokens,
          borderColor: "#b3261e",
          backgroundColor: "#b3261e",
          yAxisID: "tokens",
          tension: 0.2,
        },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        requests: {
          type: "linear",
          position: "left",
          beginAtZero: true,
          title: { display: true, text: "Requests" },
          ticks: { precision: 0 },
        },
        tokens: {
          type: "linear",
          position: "right",
          beginAtZero: true,
          title: { display: true, text: "Tokens" },
          grid: { drawOnChartArea: false },
          ticks: { precision: 0 },
        },
      },
    },
  });
})();
