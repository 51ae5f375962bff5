"use strict";
// The live job page. Events come from the job's SSE stream and are drawn once each, keyed by
// their id (the job's event sequence number): after a network drop EventSource resumes with
// Last-Event-ID, after a reload the stream replays from the start, and either way every event
// shows exactly once, in order.
(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const EVENT_TYPES = [
    "status", "attempt", "plan", "plan_review", "step_started", "source_added", "tool_result",
    "tool_call", "step_done",
    "report_chunk", "error", "done", "podcast",
  ];
  const FINAL = new Set(["done", "failed", "cancelled"]);
  const PAST_REVIEW = new Set(["researching", "reporting", ...FINAL]);
  const RECONNECT_MS = 3000;
  const labels = JSON.parse(root.dataset.labels);
  const timeline = document.getElementById("timeline");
  const seen = new Set();
  let stream = null;
  let iteration = 0; // the plan round the latest steps belong to
  let activeStep = null; // where a source found by the running step is listed
  let draft = "";
  let eventsSinceDrop = 0;
  let finished = false;

  function node(tag, className, ...children) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    element.append(...children); // strings become text nodes: nothing here is parsed as HTML
    return element;
  }

  function isWebUrl(url) {
    return /^https?:\/\//i.test(url);
  }

  function sourceLink(source) {
    const title = source.title || source.url;
    if (!isWebUrl(source.url)) return node("span", "", title);
    const link = node("a", "", title);
    link.href = source.url;
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
    return link;
  }

  function entry(seq, className, ...children) {
    const item = node("li", "event " + className, ...children);
    item.dataset.seq = String(seq);
    return item;
  }

  function stepBox(index) {
    const id = index < 0 ? "step-background" : "step-" + iteration + "-" + index;
    let box = document.getElementById(id);
    if (!box) {
      const heading = index < 0 ? "Background search" : "Step " + (index + 1);
      box = node("li", "step", node("p", "step-title", heading), node("ul", "step-events"));
      box.id = id;
      timeline.append(box);
    }
    return box;
  }

  function setStatus(status, error) {
    root.dataset.status = status;
    const badge = document.getElementById("job-status");
    badge.textContent = labels[status] || status;
    badge.className = "status status-" + status;
    const errorBox = document.getElementById("job-error");
    errorBox.textContent = error || "";
    errorBox.classList.toggle("hidden", !error); // a retried job's old error no longer applies
    document.getElementById("report-link").classList.toggle("hidden", status !== "done");
    document.getElementById("cancel-form").classList.toggle("hidden", FINAL.has(status));
    document.getElementById("retry-form").classList.toggle(
      "hidden", status !== "failed" && status !== "cancelled");
    document.getElementById("podcast").classList.toggle("hidden", status !== "done");
    if (FINAL.has(status) && status !== "done") podcast.following = false; // no report, no podcast
    if (status === "awaiting_plan_review") loadPlanReview();
    else if (PAST_REVIEW.has(status)) document.getElementById("plan-review").replaceChildren();
  }

  async function loadPlanReview() {
    const holder = document.getElementById("plan-review");
    if (holder.querySelector("form")) return;
    const response = await fetch(root.dataset.planReviewUrl);
    // The fragment is our own server-rendered template, escaped there like every page.
    if (response.status === 200 && root.dataset.status === "awaiting_plan_review") {
      holder.innerHTML = await response.text();
    }
  }

  async function loadReport() {
    const report = document.getElementById("report");
    if (!document.getElementById("report-draft")) return; // rendered by the server already
    const response = await fetch(root.dataset.reportBodyUrl);
    // Sanitized on the server (app/web/render.py): an allow-list of tags, no script.
    if (response.ok) report.innerHTML = await response.text();
  }

  function drawPlan(plan) {
    const steps = node("ol", "plan-steps");
    (plan.steps || []).forEach(function (step) {
      const item = node("li", "", node("strong", "", step.title), " ",
        node("span", "tag", step.step_type));
      if (step.description) item.append(node("p", "", step.description));
      steps.append(item);
    });
    const parts = [node("h3", "", plan.title || "Plan")];
    if (plan.thought) parts.push(node("p", "muted", plan.thought));
    document.getElementById("plan").replaceChildren(...parts, steps);
  }

  function addSource(source) {
    const list = document.getElementById("sources");
    if (list.querySelector('[data-source-id="' + Number(source.id) + '"]')) return;
    const item = node("li", "", sourceLink(source), " ",
      node("span", "muted", "(" + source.provider + ")"));
    item.dataset.sourceId = String(source.id);
    item.value = source.id;
    list.append(item);
  }

  function labelled(label, element) {
    return [node("p", "tool-label", label), element];
  }

  // A sandbox run shows its program, what it printed and its figures; a search its summary.
  function toolOutput(data) {
    const parts = [node("span", "tag", data.tool === "python" ? "Python" : "Search"), " ",
      node("span", "", data.summary)];
    if (data.code) parts.push(...labelled("Code", node("pre", "code", node("code", "", data.code))));
    if (data.stdout) parts.push(...labelled("Output", node("pre", "stdout", data.stdout)));
    if (data.stderr) parts.push(...labelled("Errors", node("pre", "stderr", data.stderr)));
    (data.figures || []).forEach(function (figure) {
      // Only base64 PNG data becomes an image: nothing else can reach the src attribute.
      if (!/^[A-Za-z0-9+/=]+$/.test(figure.png_base64 || "")) return;
      const image = node("img", "figure");
      image.alt = figure.name || "Figure";
      image.src = "data:image/png;base64," + figure.png_base64;
      parts.push(image);
    });
    return parts;
  }

  const handlers = {
    status: function (seq, data) {
      if (data.status) {
        setStatus(data.status, data.error);
        const text = labels[data.status] || data.status;
        timeline.append(entry(seq, "ev-status", data.error ? text + ": " + data.error : text));
      } else if (data.message) {
        timeline.append(entry(seq, "ev-message", data.message));
      }
    },
    attempt: function (seq, data) {
      // The first attempt is the job starting; a later one picks it up after a stop or a crash.
      if (data.attempt > 1) {
        timeline.append(entry(seq, "ev-message",
          "Resumed from the last finished step (attempt " + data.attempt + ")."));
      }
    },
    plan: function (seq, data) {
      iteration = data.iteration;
      drawPlan(data.plan);
      const count = (data.plan.steps || []).length;
      const text = "Plan ready: " + count + " step" + (count === 1 ? "" : "s") +
        (data.fallback_reason ? ". " + data.fallback_reason : "");
      timeline.append(entry(seq, "ev-plan", text));
    },
    plan_review: function (seq, data) {
      const count = (data.steps || []).length;
      timeline.append(entry(seq, "ev-review", data.action === "edit"
        ? "Plan edited: " + count + " step" + (count === 1 ? "" : "s")
        : "Plan accepted"));
    },
    step_started: function (seq, data) {
      iteration = data.iteration;
      const box = stepBox(data.index);
      box.querySelector(".step-title").replaceChildren(
        "Step " + (data.index + 1) + ": " + data.title + " ", node("span", "tag", data.step_type));
      box.classList.add("running");
      box.dataset.seq = String(seq);
      activeStep = box;
    },
    tool_result: function (seq, data) {
      activeStep = stepBox(data.index);
      activeStep.querySelector(".step-events").append(entry(seq, "ev-tool", ...toolOutput(data)));
    },
    tool_call: function (seq, data) {
      // An MCP tool call carries no step index: it belongs to the step that is running.
      const list = activeStep ? activeStep.querySelector(".step-events") : timeline;
      const call = data.server + "/" + data.tool + " " + JSON.stringify(data.arguments || {});
      list.append(entry(seq, data.error ? "ev-error" : "ev-tool", node("span", "tag", "MCP"), " ",
        node("code", "", call), " → ", node("span", "", data.error || data.summary)));
    },
    source_added: function (seq, data) {
      addSource(data.source);
      if (activeStep) {
        activeStep.querySelector(".step-events").append(entry(seq, "ev-source",
          "Source [" + data.source.id + "] ", sourceLink(data.source)));
      }
    },
    step_done: function (seq, data) {
      const box = stepBox(data.index);
      box.classList.remove("running");
      box.classList.add(data.error ? "failed" : "done");
      const events = box.querySelector(".step-events");
      if (data.notes) events.append(entry(seq, "ev-notes", data.notes));
      if (data.error) events.append(entry(seq, "ev-error", data.error));
    },
    report_chunk: function (seq, data) {
      draft += data.text;
      const pre = document.getElementById("report-draft");
      if (pre) pre.textContent = draft;
    },
    error: function (seq, data) {
      timeline.append(entry(seq, "ev-error", (data.fatal ? "Stopped: " : "Problem: ") + data.message));
    },
    done: function (seq, data) {
      const seconds = Math.round(data.wall_s);
      timeline.append(entry(seq, "ev-done",
        "Finished in " + seconds + " s with " + data.llm_calls + " model calls."));
      if (!podcast.following) finish();
      loadReport();
    },
    podcast: function (seq, data) {
      timeline.append(entry(seq, "ev-podcast", "Podcast: " + (data.message || data.stage)));
      if (seq > podcast.since) podcast.progress(seq, data);
    },
  };

  function onEvent(event) {
    const seq = parseInt(event.lastEventId, 10);
    if (!Number.isFinite(seq) || seen.has(seq)) return;
    seen.add(seq);
    eventsSinceDrop += 1;
    root.dataset.eventsSeen = String(seen.size); // for the page's tests, and a glance in devtools
    root.dataset.lastEvent = String(seq);
    const handle = handlers[event.type];
    if (handle) handle(seq, JSON.parse(event.data));
  }

  function finish() {
    finished = true;
    if (stream) stream.close();
  }

  // The stream also ends (and EventSource reconnects) when a failed or cancelled job has no
  // more to say; a reconnect that brings nothing new for a final job means the end.
  async function onDrop() {
    if (finished) return;
    if (podcast.following) {
      // A done job's stream ends whenever it has no news; keep coming back for the podcast's.
      if (stream.readyState === EventSource.CLOSED) window.setTimeout(connect, RECONNECT_MS);
      return;
    }
    if (stream.readyState === EventSource.CLOSED) {
      window.setTimeout(connect, RECONNECT_MS); // refused outright: start over, replay dedupes
      return;
    }
    const quiet = eventsSinceDrop === 0;
    eventsSinceDrop = 0;
    try {
      const response = await fetch(root.dataset.jobUrl, { headers: { Accept: "application/json" } });
      const job = response.ok ? await response.json() : null;
      if (job && FINAL.has(job.status) && quiet) finish();
    } catch (error) {
      // Offline: EventSource keeps retrying on its own.
    }
  }

  function connect() {
    if (finished) return;
    stream = new EventSource(root.dataset.eventsUrl);
    EVENT_TYPES.forEach(function (type) {
      stream.addEventListener(type, function (event) {
        if (event instanceof MessageEvent) onEvent(event);
        else onDrop(); // "error" without data is the connection's, not the job's
      });
    });
  }

  // The podcast of a done job: the button starts it through the REST API, its `podcast` events
  // (those after `since`, the end of the last attempt) drive the status line, and the player
  // appears once the audio exists.
  const AUDIO_FORMATS = [["mp3", "audio/mpeg"], ["ogg", "audio/ogg"], ["wav", "audio/wav"]];
  const podcast = (function () {
    const section = document.getElementById("podcast");
    const status = document.getElementById("podcast-status");
    const form = document.getElementById("podcast-form");
    const state = {
      since: parseInt(section.dataset.since, 10) || 0,
      following: section.dataset.running === "true",
    };

    function say(text, isError) {
      status.textContent = text;
      status.className = isError ? "alert" : "";
    }

    function showPlayer() {
      const audio = node("audio", "");
      audio.id = "podcast-audio";
      audio.controls = true;
      audio.preload = "none";
      // Compressed first: a format that was not made answers 404 and the browser tries the next.
      for (const [format, type] of AUDIO_FORMATS) {
        const source = document.createElement("source");
        source.src = section.dataset.audioUrl + "?format=" + format;
        source.type = type;
        audio.append(source);
      }
      const transcript = node("a", "", "Read the transcript");
      transcript.id = "podcast-transcript";
      transcript.href = section.dataset.transcriptUrl;
      const download = node("a", "", "Download");
      download.id = "podcast-download";
      download.setAttribute("download", "");
      // The link follows the file the player actually loaded.
      audio.addEventListener("loadedmetadata", function () { download.href = audio.currentSrc; });
      download.href = section.dataset.audioUrl + "?format=wav";
      const player = document.getElementById("podcast-player");
      player.replaceChildren(audio, node("p", "", transcript, " · ", download));
      player.classList.remove("hidden");
    }

    function ended(seq) {
      state.since = seq;
      state.following = false;
      form.classList.remove("hidden");
      form.querySelector("button").disabled = false;
      if (FINAL.has(root.dataset.status)) finish();
    }

    state.progress = function (seq, data) {
      const counted = data.total ? " (" + data.done + " of " + data.total + ")" : "";
      if (data.stage === "done") {
        say(data.message || "The podcast is ready.", false);
        form.querySelector("button").textContent = "Make it again";
        showPlayer();
        ended(seq);
      } else if (data.stage === "error") {
        say("The podcast failed: " + (data.message || "unknown error"), true);
        ended(seq);
      } else {
        say((data.message || data.stage) + counted, false);
      }
    };

    async function start(event) {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      say("Starting the podcast…", false);
      let response;
      try {
        response = await fetch(section.dataset.startUrl, {
          method: "POST", headers: { Accept: "application/json" },
        });
      } catch (error) {
        say("Could not reach the server; try again.", true);
        button.disabled = false;
        return;
      }
      if (response.status !== 202) {
        const body = await response.json().catch(function () { return {}; });
        say("No podcast: " + (body.detail || "the server said " + response.status + "."), true);
        button.disabled = false;
        return;
      }
      form.classList.add("hidden");
      say("The podcast is being made; progress shows here.", false);
      state.following = true;
      if (finished) {
        finished = false; // the stream closed at the job's end: open it again for the podcast
        connect();
      }
    }

    form.addEventListener("submit", start);
    return state;
  })();

  connect();
})();
