// The web UI's own script, served at /ui/assets/ui.js (the Content-Security-Policy runs nothing inline but the
// base template's own nonce'd parts, so everything a page does in the browser lives here or in htmx).
// - Countdowns: an element with data-seconds-left (the seconds left when the server made the page or fragment)
//   counts down once a second from the moment it appeared. Without JavaScript it shows the server's number.
// - After an action of the act panel (an htmx POST) the first field with an error gets the focus, else the outcome:
//   it is read out and scrolled to.
// - A button with data-copy="<input id>" copies that input's value (the session's endpoints, an access key).
(() => {
  "use strict";
  const tick = () => {
    const now = Date.now();
    document.querySelectorAll("[data-seconds-left]").forEach((element) => {
      if (!element.dataset.shownAt) element.dataset.shownAt = String(now);
      const gone = Math.floor((now - Number(element.dataset.shownAt)) / 1000);
      const left = Math.max(0, Number(element.dataset.secondsLeft) - gone);
      element.textContent = left === 1 ? "1 second left" : `${left} seconds left`;
    });
  };
  document.addEventListener("DOMContentLoaded", () => {
    tick();
    setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSettle", (event) => {
    tick();
    const config = event.detail && event.detail.requestConfig;
    if (!config || config.verb !== "post") return;
    const target = document.querySelector("#act [aria-invalid=true]") || document.querySelector("#act-result.filled");
    if (target) target.focus();
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const input = document.getElementById(button.dataset.copy);
    input.select();
    const done = () => { button.classList.add("copied"); setTimeout(() => button.classList.remove("copied"), 1500); };
    if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, () => {});
  });
})();
