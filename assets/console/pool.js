// The pool page, live: follows the pool's event stream (the browser
// resumes it with Last-Event-ID after a dropped connection) and, on each
// event, fetches the page again and swaps in its live part. Without this
// file the page is the same, as of its last load.

const live = document.getElementById("pool-live");
if (live && window.EventSource) {
  let refreshing = null;
  const refresh = async () => {
    const answer = await fetch(window.location.pathname, { headers: { accept: "text/html" } });
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("pool-live");
    if (!fresh) return;
    // The note tells the latest event, which the fresh page cannot know.
    const message = live.querySelector(".live-note")?.textContent ?? "";
    live.replaceChildren(...fresh.childNodes);
    const newNote = live.querySelector(".live-note");
    if (newNote) newNote.textContent = message;
  };
  const events = new EventSource(`/api/v1/events?pool=${encodeURIComponent(live.dataset.pool)}`);
  const onEvent = (event) => {
    let words = event.type;
    try {
      const data = JSON.parse(event.data);
      words = `${data.kind}${data.group ? ` (group ${data.group})` : ""}`;
    } catch { /* the kind alone */ }
    const shown = live.querySelector(".live-note");
    if (shown) shown.textContent = `Just now: ${words}`;
    // One refresh at a time; events that arrive meanwhile are in it.
    refreshing ??= refresh().finally(() => { refreshing = null; });
  };
  for (const kind of [
    "contribution.accepted", "contribution.refused", "group.sealed", "group.claimed",
    "group.published", "group.failed", "member.disabled", "member.enabled", "member.rekeyed",
    "member.removed", "message",
  ]) {
    events.addEventListener(kind, onEvent);
  }
  // Fetching a result raises no event: while a member has not fetched the
  // latest one, look again every few seconds.
  setInterval(() => {
    if (!refreshing && live.querySelector("td.waiting")) {
      refreshing = refresh().finally(() => { refreshing = null; });
    }
  }, 3000);
}
