// The pool page, live: follows the pool's event stream from the newest
// event the page was made with (the browser resumes it with Last-Event-ID
// after a dropped connection) and, on each event, fetches the page again
// and swaps in its live part. Without this file the page is the same, as
// of its last load.

const live = document.getElementById("pool-live");
if (live && window.EventSource) {
  const pool = encodeURIComponent(live.dataset.pool);
  let running = null;
  let again = false;
  let lastEvent = Date.now();
  const swap = async () => {
    const answer = await fetch(`/ui/pools/${pool}`, { headers: { accept: "text/html" } });
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
  const events = new EventSource(`/api/v1/events?pool=${pool}&after=${live.dataset.after ?? 0}`);
  const onEvent = (event) => {
    lastEvent = Date.now();
    let words = event.type;
    try {
      const data = JSON.parse(event.data);
      words = `${data.kind}${data.group ? ` (group ${data.group})` : ""}`;
      const about = data.data ?? {};
      if (about.name) words += `: ${about.name}`;
      if (about.reason) words += ` (${about.message ?? about.reason})`;
    } catch { /* the kind alone */ }
    const shown = live.querySelector(".live-note");
    if (shown) shown.textContent = `Just now: ${words}`;
    refresh();
  };
  for (const kind of [
    "contribution.accepted", "contribution.refused", "group.sealed", "group.claimed",
    "group.published", "group.failed", "member.disabled", "member.enabled", "member.rekeyed",
    "member.removed",
  ]) {
    events.addEventListener(kind, onEvent);
  }
  // Fetching a result raises no event: while a member has not fetched the
  // latest one, look again every few seconds, for ten minutes after the
  // last event, and only while the page is in view.
  setInterval(() => {
    const recent = Date.now() - lastEvent < 10 * 60 * 1000;
    if (recent && document.visibilityState === "visible" && live.querySelector("td.waiting")) refresh();
  }, 3000);
}
