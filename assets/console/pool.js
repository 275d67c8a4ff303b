// The pool page, live: the page's notifications stream (notices.js,
// started from the newest event the page was made with) hands over each
// event; on one of this pool's, the page is fetched again and its live
// part swapped in. Without scripts the page is the same, as of its last
// load.

const live = document.getElementById("pool-live");
if (live) {
  const pool = live.dataset.pool;
  let running = null;
  let again = false;
  let lastEvent = Date.now();
  const swap = async () => {
    // Not while someone types in the live part: a little later.
    if (live.contains(document.activeElement) && document.activeElement.matches("input, textarea, select")) {
      setTimeout(refresh, 2000);
      return;
    }
    // The same page of members as shown (the address bar may show the
    // form the page answered instead).
    const answer = await fetch(live.dataset.page, { headers: { accept: "text/html" } });
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("pool-live");
    if (!fresh) return;
    // The note tells the latest event, which the fresh page cannot know.
    const message = live.querySelector(".live-note")?.textContent ?? "";
    live.replaceChildren(...fresh.childNodes);
    const note = live.querySelector(".live-note");
    if (note) note.textContent = message;
  };
  // One refresh at a time; an event during one asks for one more after it,
  // so a change made while the page was being fetched is not missed.
  const refresh = () => {
    if (running) {
      again = true;
      return;
    }
    running = swap().finally(() => {
      running = null;
      if (again) {
        again = false;
        refresh();
      }
    });
  };
  document.addEventListener("cistern:pool-event", (event) => {
    const data = event.detail;
    if (data.pool !== pool) return;
    lastEvent = Date.now();
    const shown = live.querySelector(".live-note");
    if (shown) shown.textContent = `Just now: ${data.words}`;
    refresh();
  });
  // Fetching a result raises no event: while a member has not fetched the
  // latest one, look again every few seconds, for ten minutes after the
  // last event, and only while the page is in view.
  setInterval(() => {
    const recent = Date.now() - lastEvent < 10 * 60 * 1000;
    if (recent && document.visibilityState === "visible" && live.querySelector("td.waiting")) refresh();
  }, 3000);
}
