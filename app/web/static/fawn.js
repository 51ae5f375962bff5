"use strict";
// Shared page behaviour: confirm before destructive forms, and count down retry waits.
(function () {
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Counts `element` down to zero once a second; the submit buttons of its form stay disabled
  // until then, so a refused request is not sent again before the server asked.
  function startCountdown(element) {
    const form = element.closest("form");
    const buttons = form ? form.querySelectorAll("button[type=submit]") : [];
    let left = Math.max(0, parseInt(element.dataset.countdown, 10) || 0);
    const tick = function () {
      element.textContent = String(left);
      buttons.forEach(function (button) { button.disabled = left > 0; });
      if (left <= 0) return;
      left -= 1;
      window.setTimeout(tick, 1000);
    };
    tick();
  }

  window.Fawn = { startCountdown: startCountdown };
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-countdown]").forEach(startCountdown);
  });
})();
