"use strict";
// The ask form, sent through the REST API: on success go to the job's page; when the engine is
// busy (503) say so with a countdown from Retry-After, keeping everything that was typed.
(function () {
  const form = document.getElementById("ask-form");
  if (!form) return;
  const alertBox = document.getElementById("ask-error");
  const button = document.getElementById("ask-submit");

  function request() {
    const data = new FormData(form);
    return {
      question: String(data.get("question") || "").trim(),
      options: {
        report_style: data.get("report_style"),
        locale: data.get("locale"),
        provider: data.get("provider"),
        max_step_num: Number(data.get("max_step_num")),
        auto_accept_plan: data.has("auto_accept_plan"),
        enable_coder: data.has("enable_coder"),
        podcast: data.has("podcast"),
      },
    };
  }

  function showProblem(message, retryAfter) {
    alertBox.replaceChildren();
    const text = document.createElement("p");
    text.id = "ask-error-message";
    text.textContent = message;
    alertBox.append(text);
    if (retryAfter !== null) {
      const wait = document.createElement("p");
      const count = document.createElement("span");
      count.dataset.countdown = String(retryAfter);
      wait.append("Your question is kept below. You can send it again in ", count, " s.");
      alertBox.append(wait);
      window.Fawn.startCountdown(count);
    } else {
      button.disabled = false;
    }
    alertBox.classList.remove("hidden");
    alertBox.focus();
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    let response;
    try {
      response = await fetch(form.dataset.api, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(request()),
      });
    } catch (error) {
      form.submit(); // the API could not be reached from script: let the plain form try
      return;
    }
    if (response.status === 202) {
      const job = await response.json();
      window.location.assign(form.dataset.jobUrl.replace("JOB_ID", encodeURIComponent(job.id)));
      return;
    }
    const problem = await response.json().catch(function () { return {}; });
    const detail = problem.detail || "The request failed (HTTP " + response.status + ").";
    const retryAfter = response.status === 503
      ? parseInt(response.headers.get("Retry-After") || "30", 10) : null;
    showProblem(String(detail), retryAfter);
  });
})();
