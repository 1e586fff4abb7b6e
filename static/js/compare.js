// The comparison page, from the keyboard: 1/2/3/0 answer the highlighted criterion,
// arrows move between rows, Enter submits, S skips, ? shows the keys. The next card is
// fetched ahead while the reviewer works, so after a submit it appears at once.
(function () {
  "use strict";

  const SIDE_FOR_KEY = { "1": "left", "2": "right", "3": "tie", "0": "cannot_tell" };
  let prefetched = null; // the next card's HTML, leased ahead
  let prefetching = false;
  let rowIndex = 0;

  const card = () => document.getElementById("card");
  const form = () => document.getElementById("compare-form");
  const rows = () => Array.from(card().querySelectorAll("[data-row]"));

  function highlight(index) {
    const all = rows();
    if (!all.length) return;
    rowIndex = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("focused", i === rowIndex));
    all[rowIndex].scrollIntoView({ block: "nearest" });
  }

  function choose(key) {
    const row = rows()[rowIndex];
    if (!row) return;
    const value = row.dataset.kind === "confidence" ? key : SIDE_FOR_KEY[key];
    const radio = value && row.querySelector(`input[type=radio][value="${value}"]`);
    if (!radio) return;
    radio.checked = true;
    highlight(rowIndex + 1);
  }

  function prefetch() {
    const current = card();
    if (prefetching || prefetched !== null || !current.dataset.assignment) return;
    prefetching = true;
    const url = new URL(current.dataset.prefetchUrl, window.location.origin);
    url.searchParams.set("current", current.dataset.task);
    if (current.dataset.study) url.searchParams.set("study", "1");
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : null))
      .then((html) => { prefetched = html; })
      .catch(() => { prefetched = null; })
      .finally(() => { prefetching = false; });
  }

  function showCard() {
    const current = card();
    if (!current) return;
    current.dataset.shownAt = String(Date.now());
    highlight(0);
    prefetch();
  }

  function swapInPrefetched() {
    const holder = document.createElement("div");
    holder.innerHTML = prefetched;
    prefetched = null;
    const next = holder.querySelector("#card");
    card().replaceWith(next);
    htmx.process(next);
    showCard();
  }

  function toggleHelp() {
    const help = document.getElementById("help");
    if (help) help.hidden = !help.hidden;
  }

  function openSkip() {
    const skip = document.getElementById("skip-form");
    if (!skip) return;
    skip.hidden = false;
    skip.querySelector("input[name=reason]").focus();
  }

  document.addEventListener("keydown", (event) => {
    if (!card() || !form()) return;
    const typing = event.target.matches("textarea, input[type=text], input:not([type])");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      if (event.key === "Enter" && event.ctrlKey && event.target.closest("#compare-form")) {
        event.preventDefault();
        form().requestSubmit();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (/^[0-5]$/.test(key)) choose(key);
    else if (key === "ArrowDown" || (key === "Tab" && !event.shiftKey)) highlight(rowIndex + 1);
    else if (key === "ArrowUp" || (key === "Tab" && event.shiftKey)) highlight(rowIndex - 1);
    else if (key === "Enter") form().requestSubmit();
    else if (key === "s" || key === "S") openSkip();
    else if (key === "r" || key === "R") form().querySelector("textarea").focus();
    else if (key === "?") toggleHelp();
    else return;
    event.preventDefault();
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-action=skip]")) openSkip();
  });

  // Record the time spent on the card before htmx reads the form.
  document.addEventListener("submit", (event) => {
    if (event.target.id !== "compare-form") return;
    const shownAt = Number(card().dataset.shownAt || Date.now());
    event.target.elements["time_spent_ms"].value = String(Date.now() - shownAt);
  }, true);

  // With the next card in hand, the server only needs to store the label (it answers 204).
  document.body.addEventListener("htmx:configRequest", (event) => {
    const source = event.detail.elt;
    if (source.id !== "compare-form" && source.id !== "skip-form") return;
    if (prefetched !== null) event.detail.headers["X-Prefetched"] = "1";
  });

  document.body.addEventListener("labelSaved", () => {
    if (prefetched !== null) swapInPrefetched();
  });

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "card") showCard();
  });

  document.addEventListener("DOMContentLoaded", showCard);
})();
