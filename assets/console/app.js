// Cistern console: small improvements over plain forms. Every page works
// without this file; it only adds confirmations, "select all" and copy
// buttons.

// Delegated, as parts of a page may be replaced after it loaded.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Delegated, as the listing may be replaced after an upload.
document.addEventListener("change", (event) => {
  if (event.target.id !== "pick-all") return;
  for (const box of document.querySelectorAll('#selection input[name="key"]')) {
    box.checked = event.target.checked;
  }
});

for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    try {
      await navigator.clipboard.writeText(field.value);
    } catch {
      field.select();
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
}

// The large image view: arrow keys go to the previous and next image,
// Escape back to the gallery (the same links work without this).
if (document.querySelector(".lightbox")) {
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, textarea, select")) return;
    const wanted = { ArrowLeft: 'a[rel="prev"]', ArrowRight: 'a[rel="next"]', Escape: 'a[data-key="Escape"]' }[event.key];
    const link = wanted && document.querySelector(`.lightbox ${wanted}`);
    if (link) window.location.assign(link.href);
  });
}

// The gallery grows as the person scrolls: when the "More images" link
// comes near the viewport, the next page's tiles are fetched and appended
// (the link itself still works without this, and on any failure).
const galleryMore = document.querySelector('.gallery ~ nav.pages a[rel="next"]');
if (galleryMore && "IntersectionObserver" in window) {
  const grid = document.querySelector("ul.gallery");
  const nav = galleryMore.closest("nav");
  let loading = false;
  const observer = new IntersectionObserver(async (entries) => {
    if (loading || !entries.some((entry) => entry.isIntersecting)) return;
    const link = nav.querySelector('a[rel="next"]');
    if (!link) return observer.disconnect();
    loading = true;
    try {
      const response = await fetch(link.href, { credentials: "same-origin" });
      // A lapsed session answers with the sign-in page: keep the link.
      if (!response.ok || response.redirected) throw new Error(`HTTP ${response.status}`);
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      const tiles = next.querySelectorAll("ul.gallery > li");
      if (tiles.length === 0) throw new Error("no tiles");
      // Newest first pages by position: a file added meanwhile moves the
      // list by one, so a tile already shown may come again.
      const shown = new Set([...grid.querySelectorAll("a")].map((a) => a.getAttribute("href")));
      grid.append(...[...tiles].filter((tile) => !shown.has(tile.querySelector("a")?.getAttribute("href"))));
      const further = next.querySelector('.gallery ~ nav.pages a[rel="next"]');
      if (further) {
        link.href = further.href;
        // Still within reach after the append: look again, as no new
        // crossing would be reported.
        observer.unobserve(nav);
        observer.observe(nav);
      } else {
        nav.remove();
        observer.disconnect();
      }
    } catch {
      observer.disconnect(); // the link is still there to click
    } finally {
      loading = false;
    }
  }, { rootMargin: "600px 0px" });
  observer.observe(nav);
}
