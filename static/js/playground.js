// The playground: POST the question, read the Server-Sent Events as they arrive (`delta`
// events append text, `done` brings citations, usage, timings and the support check, `error`
// a problem), and show refusals (problem+json) next to the fields they concern. Sentences the
// sources do not support are highlighted (annotate) or listed as removed (strict).
(function () {
  "use strict";
  var form = document.getElementById("ask-form");
  if (!form) return;
  var button = document.getElementById("ask-button");
  var stop = document.getElementById("ask-stop");
  var alertBox = document.getElementById("ask-error");
  var statusLine = document.getElementById("ask-status");
  var answer = document.getElementById("answer");
  var result = document.getElementById("result");
  var citations = document.getElementById("citations");
  var timings = document.getElementById("timings");
  var usage = document.getElementById("usage");
  var chunkView = document.getElementById("chunk-view");
  var grounding = document.getElementById("grounding");
  var droppedBox = document.getElementById("dropped-box");
  var dropped = document.getElementById("dropped");
  var STAGES = [
    ["embed_ms", "Embed"],
    ["retrieve_ms", "Retrieve"],
    ["queue_ms", "Queue"],
    ["ttft_ms", "Time to first token"],
    ["generate_ms", "Generate"],
    ["check_ms", "Support check"],
    ["total_ms", "Total"],
  ];
  var controller = null;

  function chunkUrl(slug, chunkId) {
    return form.dataset.chunkUrl
      .replace("__slug__", encodeURIComponent(slug))
      .replace("987654321", String(chunkId));
  }

  function setBusy(busy) {
    button.disabled = busy;
    stop.hidden = !busy;
    answer.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function showError(message) {
    alertBox.textContent = message;
  }

  function clearErrors() {
    alertBox.textContent = "";
    form.querySelectorAll("[aria-invalid]").forEach(function (input) {
      input.removeAttribute("aria-invalid");
    });
    form.querySelectorAll("p.error").forEach(function (p) {
      p.textContent = "";
      p.hidden = true;
    });
  }

  function fieldError(name, messages) {
    var input = form.elements[name];
    var box = document.getElementById("id_" + name + "_error");
    if (!input || !box) return null;
    box.textContent = messages.join(" ");
    box.hidden = false;
    input.setAttribute("aria-invalid", "true");
    var described = (input.getAttribute("aria-describedby") || "").split(" ");
    if (described.indexOf(box.id) === -1) described.push(box.id);
    input.setAttribute("aria-describedby", described.join(" ").trim());
    return input;
  }

  function showProblem(problem) {
    var first = null;
    Object.keys(problem.errors || {}).forEach(function (name) {
      first = fieldError(name, problem.errors[name]) || first;
    });
    showError(problem.detail || problem.title || "The request was refused.");
    statusLine.textContent = "";
    if (first) first.focus();
  }

  function parseEvent(block) {
    var name = "message";
    var data = [];
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
    });
    return { name: name, data: JSON.parse(data.join("\n")) };
  }

  // Text only (textContent): answers and sources are untrusted and may hold markup.
  function renderGrounding(body) {
    var sentences = body.sentences || [];
    var squash = function (text) { return text.replace(/\s+/g, ""); };
    var same = squash(sentences.map(function (s) { return s.text; }).join("")) === squash(body.answer || "");
    if (body.policy === "annotate" && sentences.length && same) {
      answer.textContent = "";
      sentences.forEach(function (s, i) {
        var span = document.createElement("span");
        span.textContent = (i ? " " : "") + s.text;
        if (s.claim && !s.supported) {
          span.className = "unsupported";
          span.title = "Not supported by the sources (support " + s.support.toFixed(2) + ")";
          var label = document.createElement("span");
          label.className = "visually-hidden";
          label.textContent = " (not supported by the sources)";
          span.appendChild(label);
        }
        answer.appendChild(span);
      });
    }
    dropped.textContent = "";
    sentences.forEach(function (s) {
      if (s.kept) return;
      var item = document.createElement("li");
      item.textContent = s.text;
      dropped.appendChild(item);
    });
    droppedBox.hidden = !dropped.children.length;
    if (body.declined) {
      grounding.textContent = "Declined: the documents do not answer this question.";
    } else {
      grounding.textContent =
        "Grounded: " + Math.round((body.grounded || 0) * 100) + "% of the answer's claims are " +
        "supported by its sources · policy " + body.policy;
    }
  }

  function renderDone(body, slug) {
    renderGrounding(body);
    citations.textContent = "";
    (body.citations || []).forEach(function (c) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      var url = chunkUrl(slug, c.chunk_id);
      link.href = url;
      link.setAttribute("hx-get", url);
      link.setAttribute("hx-target", "#chunk-view");
      link.setAttribute("hx-swap", "innerHTML show:#chunk-view:top");
      link.textContent = "[" + c.n + "] " + (c.title || c.document_id) + " (chunk #" + c.chunk_id + ")";
      var snippet = document.createElement("div");
      snippet.className = "muted small";
      snippet.textContent = c.snippet;
      item.appendChild(link);
      item.appendChild(snippet);
      citations.appendChild(item);
    });
    if (!citations.children.length) {
      var none = document.createElement("li");
      none.className = "empty";
      none.textContent = body.declined
        ? "No sources: nothing relevant was found, so the model was not run."
        : "No source is cited.";
      citations.appendChild(none);
    }
    if (window.htmx) window.htmx.process(citations);
    timings.textContent = "";
    STAGES.forEach(function (stage) {
      if (body.timings[stage[0]] === undefined) return;
      var term = document.createElement("dt");
      var value = document.createElement("dd");
      term.textContent = stage[1];
      value.textContent = Math.round(body.timings[stage[0]]) + " ms";
      timings.appendChild(term);
      timings.appendChild(value);
    });
    var u = body.usage || {};
    usage.textContent =
      u.prompt_tokens + " prompt + " + u.completion_tokens + " completion = " + u.total_tokens +
      " tokens · " + body.model + " · finish: " + body.finish_reason + " · max tokens " + body.max_tokens;
    result.hidden = false;
  }

  function readStream(response, slug) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    var done = false;
    var text = document.createTextNode("");
    answer.appendChild(text);

    function handle(block) {
      if (!block.trim()) return;
      var event = parseEvent(block);
      if (event.name === "delta") {
        text.appendData(event.data.text);
      } else if (event.name === "done") {
        done = true;
        renderDone(event.data, slug);
      } else if (event.name === "error") {
        done = true;
        showError(event.data.detail || "Generation failed; try again.");
      }
    }

    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          buffer += decoder.decode();
          handle(buffer);
          statusLine.textContent = done ? "Done." : "";
          if (!done) showError("The answer was cut off; try again.");
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var blocks = buffer.split("\n\n");
        buffer = blocks.pop();
        blocks.forEach(handle);
        return pump();
      });
    }
    return pump();
  }

  stop.addEventListener("click", function () {
    if (controller) controller.abort();
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (controller) return;
    clearErrors();
    answer.textContent = "";
    result.hidden = true;
    chunkView.textContent = "";
    var slug = form.elements.tenant.value;
    controller = new AbortController();
    setBusy(true);
    statusLine.textContent = "Retrieving and generating…";
    fetch(form.dataset.askUrl.replace("__slug__", encodeURIComponent(slug)), {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: {
        Accept: "text/event-stream",
        "X-CSRFToken": form.elements.csrfmiddlewaretoken.value,
      },
      signal: controller.signal,
    })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (response.ok && type.indexOf("text/event-stream") === 0) {
          return readStream(response, slug);
        }
        if (type.indexOf("json") !== -1) return response.json().then(showProblem);
        statusLine.textContent = "";
        if (response.status === 403) {
          showError("The form has expired (CSRF check failed): reload the page and try again.");
        } else if (response.redirected) {
          showError("You are no longer logged in: reload the page and log in again.");
        } else {
          showError("The server answered " + response.status + " " + response.statusText + ".");
        }
      })
      .catch(function (error) {
        if (error.name === "AbortError") {
          statusLine.textContent = "Stopped.";
          return;
        }
        statusLine.textContent = "";
        showError("The request failed: " + error.message);
      })
      .finally(function () {
        controller = null;
        setBusy(false);
      });
  });
})();
