// Uploads with progress, drag and drop of files and folders, and resumable
// uploads of large files. Small files go up with one PUT to the JSON API;
// files over PART_SIZE go up as a multipart upload, several parts at once.
// The upload id of a large file is remembered in localStorage, so dropping
// the same file again after a reload sends only the parts not yet stored.

const PART_SIZE = 16 * 1024 * 1024;
const PARALLEL_PARTS = 4;
const PARALLEL_FILES = 3;

const section = document.getElementById("upload");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

if (section) {
  const bucket = section.dataset.bucket;
  const prefix = section.dataset.prefix ?? "";
  const list = section.querySelector(".uploads");
  const form = document.getElementById("upload-form");
  section.querySelector(".drop-hint").hidden = false;

  const encodeKey = (key) => key.split("/").map(encodeURIComponent).join("/");
  const api = (path) => `/api/v1/buckets/${encodeURIComponent(bucket)}${path}`;

  const human = (bytes) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  };
  const duration = (seconds) => {
    if (!isFinite(seconds)) return "";
    if (seconds < 60) return `${Math.ceil(seconds)} s left`;
    return `${Math.ceil(seconds / 60)} min left`;
  };

  // One bar for everything sent from this page, one row per file.
  let total = null;
  const newTotal = () => {
    const row = document.createElement("div");
    row.className = "upload-row upload-total";
    row.innerHTML = '<span class="name">All files</span><span class="state"></span><progress max="1" value="0"></progress>';
    list.prepend(row);
    return { row, files: [], started: performance.now(), sentBefore: 0 };
  };
  const refreshTotal = () => {
    // Files cancelled or failed leave the bar; the text still counts them.
    const going = total.files.filter((f) => !f.failed);
    const size = going.reduce((sum, f) => sum + f.size, 0);
    const sent = going.reduce((sum, f) => sum + f.sent, 0);
    const finished = total.files.filter((f) => f.finished).length;
    const failed = total.files.length - going.length;
    const seconds = (performance.now() - total.started) / 1000;
    const speed = (sent - total.sentBefore) / Math.max(seconds, 0.001);
    const bar = total.row.querySelector("progress");
    bar.max = Math.max(size, 1);
    bar.value = sent;
    const unfinished = failed > 0 ? ` (${failed} cancelled or failed)` : "";
    const text = finished === total.files.length
      ? `${finished} of ${total.files.length} finished${unfinished}`
      : `${finished} of ${total.files.length} · ${human(speed)}/s · ${duration((size - sent) / speed)}`;
    total.row.querySelector(".state").textContent = text;
    if (finished === total.files.length) {
      showNewFiles();
    }
  };

  // The folder's listing, fetched again so the new files show without a
  // reload (which would clear the progress rows).
  const showNewFiles = async () => {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("listing");
      const current = document.getElementById("listing");
      if (fresh && current) current.replaceWith(fresh);
    } catch {
      // The listing stays as it was; a reload shows the files.
    }
  };

  class FileUpload {
    constructor(file, key) {
      this.file = file;
      this.key = key;
      this.size = file.size;
      this.sent = 0;
      this.finished = false;
      this.requests = new Set();
      this.cancelled = false;
      this.row = document.createElement("div");
      this.row.className = "upload-row";
      this.row.dataset.key = key;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = key;
      this.state = document.createElement("span");
      this.state.className = "state";
      this.state.textContent = "waiting";
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "quiet";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", `Cancel ${key}`);
      cancel.addEventListener("click", () => this.cancel());
      this.bar = document.createElement("progress");
      this.bar.max = Math.max(file.size, 1);
      this.bar.value = 0;
      this.row.append(name, this.state, this.bar, cancel);
      this.cancelButton = cancel;
      list.append(this.row);
    }

    show(sent) {
      if (this.finished) return;
      this.sent = sent;
      this.bar.value = sent;
      const seconds = (performance.now() - this.began) / 1000;
      const speed = (sent - this.resumedFrom) / Math.max(seconds, 0.001);
      this.state.textContent = `${Math.floor((100 * sent) / Math.max(this.size, 1))}% · ${human(speed)}/s · ${duration((this.size - sent) / speed)}`;
      refreshTotal();
    }

    end(ok, text) {
      this.finished = true;
      this.failed = !ok;
      this.row.classList.add(ok ? "done" : "failed");
      this.state.textContent = text;
      if (ok) { this.sent = this.size; this.bar.value = this.bar.max; }
      this.cancelButton.remove();
      refreshTotal();
    }

    cancel() {
      this.cancelled = true;
      for (const request of this.requests) request.abort();
      this.end(false, "cancelled");
      // The parts already stored go at once rather than at expiry.
      if (this.uploadId) {
        localStorage.removeItem(this.memoryKey());
        const q = `key=${encodeURIComponent(this.key)}`;
        fetch(api(`/uploads/${this.uploadId}?${q}`), { method: "DELETE", headers: { "x-csrf-token": csrf } }).catch(() => {});
      }
    }

    // One request with upload progress; resolves with the parsed answer.
    send(method, url, body, onProgress, contentType) {
      return new Promise((resolve, reject) => {
        const request = new XMLHttpRequest();
        this.requests.add(request);
        request.open(method, url);
        request.setRequestHeader("x-csrf-token", csrf);
        if (contentType) request.setRequestHeader("content-type", contentType);
        if (onProgress) request.upload.onprogress = (e) => onProgress(e.loaded);
        request.onload = () => {
          this.requests.delete(request);
          let answer = null;
          try { answer = JSON.parse(request.responseText || "null"); } catch { answer = null; }
          if (request.status >= 200 && request.status < 300) resolve(answer);
          else reject(new Error(answer?.error?.message ?? `the server answered ${request.status}`));
        };
        request.onerror = () => { this.requests.delete(request); reject(new Error("the connection failed")); };
        request.onabort = () => { this.requests.delete(request); reject(new Error("cancelled")); };
        request.send(body);
      });
    }

    async run() {
      this.began = performance.now();
      this.resumedFrom = 0;
      try {
        if (this.size > PART_SIZE) await this.inParts();
        else await this.send("PUT", api(`/objects/${encodeKey(this.key)}`), this.file, (n) => this.show(n), this.file.type || "application/octet-stream");
        if (!this.cancelled) this.end(true, this.resumedFrom > 0 ? `done (resumed: ${human(this.resumedFrom)} were already stored)` : "done");
      } catch (error) {
        const resume = this.size > PART_SIZE ? "; add the same file again to resume" : "";
        if (!this.cancelled) this.end(false, `failed: ${error.message}${resume}`);
      }
    }

    memoryKey() {
      return `cistern-upload:${bucket}:${this.key}:${this.size}:${this.file.lastModified}`;
    }

    async inParts() {
      // At most 10,000 parts: very large files get larger parts.
      const size = Math.max(PART_SIZE, Math.ceil(this.size / 10000));
      const count = Math.ceil(this.size / size);
      const q = `key=${encodeURIComponent(this.key)}`;
      let uploadId = localStorage.getItem(this.memoryKey());
      const stored = new Map();
      if (uploadId) {
        try {
          const answer = await this.send("GET", api(`/uploads/${uploadId}/parts?${q}`));
          for (const part of answer.parts) stored.set(part.number, part);
        } catch {
          uploadId = null; // expired or completed meanwhile: start again
        }
      }
      if (!uploadId) {
        const answer = await this.send("POST", api("/uploads"), JSON.stringify({ key: this.key, content_type: this.file.type || null }), null, "application/json");
        uploadId = answer.upload_id;
        localStorage.setItem(this.memoryKey(), uploadId);
      }
      this.uploadId = uploadId;
      const partSize = (n) => Math.min(size, this.size - (n - 1) * size);
      const done = new Map();
      const inFlight = new Map();
      for (let n = 1; n <= count; n += 1) {
        const part = stored.get(n);
        if (part && part.size === partSize(n)) done.set(n, part.etag);
      }
      const counted = () => {
        let sum = 0;
        for (const n of done.keys()) sum += partSize(n);
        for (const loaded of inFlight.values()) sum += loaded;
        return sum;
      };
      this.resumedFrom = counted();
      if (this.resumedFrom > 0) this.row.dataset.resumedFrom = String(this.resumedFrom);
      this.show(this.resumedFrom);
      const waiting = [];
      for (let n = 1; n <= count; n += 1) if (!done.has(n)) waiting.push(n);
      // A part that fails is tried again after a pause (three tries); if
      // it still fails, the other workers stop and the upload can be
      // resumed by dropping the file again.
      let failure = null;
      const sendPart = async (n) => {
        const start = (n - 1) * size;
        for (let attempt = 1; ; attempt += 1) {
          inFlight.set(n, 0);
          try {
            return await this.send("PUT", api(`/uploads/${uploadId}/parts/${n}?${q}`), this.file.slice(start, start + partSize(n)), (loaded) => {
              inFlight.set(n, loaded);
              this.show(counted());
            }, "application/octet-stream");
          } catch (error) {
            inFlight.delete(n);
            if (this.cancelled || failure || attempt === 3) throw error;
            await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
          }
        }
      };
      const worker = async () => {
        while (waiting.length > 0 && !this.cancelled && !failure) {
          const n = waiting.shift();
          try {
            const answer = await sendPart(n);
            inFlight.delete(n);
            done.set(n, answer.etag);
            this.show(counted());
          } catch (error) {
            failure = failure ?? error;
            for (const request of this.requests) request.abort();
          }
        }
      };
      await Promise.all(Array.from({ length: PARALLEL_PARTS }, worker));
      if (failure) throw failure;
      if (this.cancelled) return;
      const parts = [...done.entries()].sort((a, b) => a[0] - b[0]).map(([number, etag]) => ({ number, etag }));
      await this.send("POST", api(`/uploads/${uploadId}/complete`), JSON.stringify({ key: this.key, parts }), null, "application/json");
      localStorage.removeItem(this.memoryKey());
    }
  }

  const start = (entries) => {
    if (entries.length === 0) return;
    if (!total) total = newTotal();
    if (total.files.every((f) => f.finished)) {
      // A new batch after a finished one: speed counts from now.
      total.started = performance.now();
      total.sentBefore = total.files.reduce((sum, f) => sum + f.sent, 0);
    }
    const uploads = entries.map(({ file, path }) => new FileUpload(file, prefix + path));
    total.files.push(...uploads);
    refreshTotal();
    const queue = [...uploads];
    const worker = async () => {
      while (queue.length > 0) {
        const upload = queue.shift();
        if (!upload.cancelled) await upload.run();
      }
    };
    for (let i = 0; i < PARALLEL_FILES; i += 1) worker();
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const entries = [];
    for (const input of form.querySelectorAll('input[type="file"]')) {
      for (const file of input.files) entries.push({ file, path: file.webkitRelativePath || file.name });
      input.value = "";
    }
    start(entries);
  });

  // Dropped folders are walked; each file keeps its path inside the folder.
  const walk = async (entry, path, out) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: path + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${path}${entry.name}/`, out);
      }
    }
  };

  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    section.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) section.classList.remove("dragging");
  });
  document.addEventListener("drop", async (event) => {
    event.preventDefault();
    section.classList.remove("dragging");
    const items = [...(event.dataTransfer?.items ?? [])];
    const entries = [];
    const roots = items.map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
    if (roots.length > 0) {
      for (const root of roots) await walk(root, "", entries);
    } else {
      for (const file of event.dataTransfer?.files ?? []) entries.push({ file, path: file.name });
    }
    start(entries);
  });
}
