// The notifications area of every console page: follows the events of
// the pools this person owns (one stream per page, which the browser
// resumes with Last-Event-ID after a dropped connection), lists the newest
// few in the header, and hands every event to the page as a
// "cistern:pool-event" DOM event with its words (the pool page refreshes
// on them). The
// area stays hidden without this file, or for someone who owns no pool.

const area = document.getElementById("notices");
const KEPT = 8;
const KINDS = [
  "contribution.accepted", "contribution.refused", "group.sealed", "group.claimed",
  "group.published", "group.failed", "member.disabled", "member.enabled", "member.rekeyed",
  "member.removed",
];

// Times as the pages write them: UTC, to the minute.
const utc = (text) => `${new Date(text).toISOString().slice(0, 16).replace("T", " ")} UTC`;

// Words for an event, as a person reads them.
const describe = (data) => {
  const about = data.data ?? {};
  const group = data.group ? ` (group of ${utc(data.group)})` : "";
  switch (data.kind) {
    case "contribution.accepted": return `new file${about.name ? ` ${about.name}` : ""}${group}`;
    case "contribution.refused": return `file ${about.name ?? ""} refused: ${about.message ?? about.reason ?? "no reason given"}`;
    case "group.sealed": return `group sealed${group}`;
    case "group.claimed": return `group claimed${about.processor ? ` by ${about.processor}` : ""}${group}`;
    case "group.published": return `result published${group}`;
    case "group.failed": return `group failed${about.reason ? `: ${about.reason}` : ""}${group}`;
    case "member.disabled": case "member.enabled": case "member.removed":
      return `member ${about.member ?? ""} ${data.kind.slice("member.".length)}`;
    case "member.rekeyed": return `member ${about.member ?? ""} given a new token`;
    default: return data.kind.replace(".", " ");
  }
};

if (area && window.EventSource) {
  const list = area.querySelector("ol");
  const count = area.querySelector(".count");
  let unseen = 0;
  area.addEventListener("toggle", () => {
    if (area.open) {
      unseen = 0;
      count.textContent = "";
    }
  });
  // Where to start: after the newest event the page was made with (a
  // pool page), and with the pool the page shows (an admin's look).
  const page = document.querySelector("[data-events-after]");
  let lastId = page?.dataset.eventsAfter ?? "";
  const pool = document.querySelector("[data-events-pool]")?.dataset.eventsPool;
  let events = null;
  const open = () => {
    const query = new URLSearchParams();
    if (lastId !== "") query.set("after", lastId);
    if (pool) query.set("pool", pool);
    events = new EventSource(`/ui/events?${query}`);
    events.addEventListener("open", () => { area.hidden = false; });
    events.addEventListener("ready", (event) => { lastId = event.lastEventId; });
    for (const kind of KINDS) events.addEventListener(kind, onEvent);
  };
  const onEvent = (event) => {
    lastId = event.lastEventId;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    const words = describe(data);
    document.dispatchEvent(new CustomEvent("cistern:pool-event", { detail: { ...data, words } }));
    // Each accepted file is news on its pool's page, not in the header.
    if (data.kind === "contribution.accepted") return;
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/ui/pools/${encodeURIComponent(data.pool)}`;
    link.textContent = data.pool;
    const when = document.createElement("time");
    when.dateTime = data.time;
    when.textContent = `at ${new Date(data.time).toISOString().slice(11, 19)}`;
    item.append(link, `: ${words} `, when);
    list.querySelector(".empty")?.remove();
    list.prepend(item);
    while (list.children.length > KEPT) list.lastElementChild.remove();
    if (!area.open) {
      unseen += 1;
      count.textContent = String(unseen);
    }
  };
  // A page opened in the background waits until it is shown.
  if (document.visibilityState === "visible") open();
  // A hidden page lets its connection go (browsers allow only a few per
  // site over HTTP/1.1, and every open console page would hold one), and
  // picks up from the last event it had when it is shown again.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      events?.close();
      events = null;
    } else if (!events) {
      open();
    }
  });
  window.addEventListener("pagehide", () => {
    events?.close();
    events = null;
  });
  // Back from the browser's page cache: follow again.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !events && document.visibilityState === "visible") open();
  });
}
