// The console as a person uses it, in a real Chromium: each scenario gets a
// fresh server, and every page it visits is saved as a screenshot under
// target/console-screenshots/<scenario>/.

import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, writeSync, closeSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { spawnSync } from "node:child_process";
import { deflateSync } from "node:zlib";
import { ROOT, api, binary, camera, launchBrowser, pollUntil, signIn, startServer, tempDir } from "./harness.js";

/** Runs aws-cli: AWS_CLI, else the CI's virtualenv, else `aws` on the PATH. */
function awsCli(args, env) {
  const local = join(import.meta.dirname, "..", "..", ".venv", "bin", "aws");
  const command = process.env.AWS_CLI ?? (existsSync(local) ? local : "aws");
  return spawnSync(command, args, { env, encoding: "utf8" });
}

/** Each scenario's limit; a stalled browser or server fails that scenario alone. */
const SCENARIO_TIMEOUT = 300_000;

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Waits for the "All files" row to report every file finished. */
async function allFinished(page, count, timeout = 120_000) {
  await page.locator(".upload-total .state").filter({ hasText: `${count} of ${count} finished` }).waitFor({ timeout });
}

test("sign up, sign in, create a bucket, drop 20 files and upload a folder tree", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer(["--allow-signup"]);
  const shot = camera("01-sign-up-and-upload");
  const page = await browser.newPage();
  try {
    await page.goto(server.web);
    await page.waitForURL(/\/ui\/sign-in/);
    assert.equal(await page.title(), "Sign in · Cistern");
    await shot(page, "sign-in");
    await page.getByRole("link", { name: "Sign up" }).click();
    await page.getByLabel("Name").fill("dana");
    await page.getByLabel("Password", { exact: true }).fill("dana-password-1");
    await page.getByLabel("Password again").fill("dana-password-1");
    await shot(page, "sign-up");
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByText("Your account dana is ready").waitFor();
    await shot(page, "signed-up");
    await signIn(page, server, { name: "dana", password: "dana-password-1" });
    await page.getByText("You have no buckets yet").waitFor();
    await shot(page, "no-buckets");

    await page.getByLabel("Bucket name").fill("holiday");
    await page.getByRole("button", { name: "Create" }).click();
    await page.waitForURL(/\/ui\/buckets\/holiday$/);
    await page.getByText("The bucket holiday is ready").waitFor();
    await shot(page, "new-bucket");

    // Twenty files dropped on the page.
    await page.evaluate(() => {
      const transfer = new DataTransfer();
      for (let i = 1; i <= 20; i += 1) {
        transfer.items.add(new File([`photo number ${i}\n`.repeat(i * 100)], `photo-${String(i).padStart(2, "0")}.txt`, { type: "text/plain" }));
      }
      document.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
      document.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    await allFinished(page, 20);
    assert.equal(await page.locator(".upload-row.done").count(), 20);
    await shot(page, "dropped-20-files");

    // A folder tree through the folder picker keeps its relative paths.
    const tree = tempDir("cistern-tree-");
    mkdirSync(join(tree, "trip", "day 1", "raw"), { recursive: true });
    writeFileSync(join(tree, "trip", "notes.md"), "# Trip\n");
    writeFileSync(join(tree, "trip", "day 1", "morning.txt"), "sunrise\n");
    writeFileSync(join(tree, "trip", "day 1", "raw", "frame.bin"), randomBytes(300_000));
    await page.locator("#folder").setInputFiles(join(tree, "trip"));
    await page.getByRole("button", { name: "Upload" }).click();
    await allFinished(page, 23);
    await shot(page, "uploaded-folder");

    const listed = await api(server, ROOT, "GET", "/buckets/holiday/objects?limit=1000");
    const keys = listed.body.objects.map((o) => o.key);
    assert.equal(keys.length, 23, keys.join(", "));
    assert.ok(keys.includes("trip/day 1/raw/frame.bin"), keys.join(", "));
    assert.ok(keys.includes("photo-20.txt"));

    // The listing shows the new files without a reload.
    await page.locator("#listing").getByRole("link", { name: "photo-20.txt" }).waitFor();
    await page.getByRole("link", { name: "trip/" }).click();
    await page.getByRole("link", { name: "day 1/" }).click();
    await page.getByRole("link", { name: "morning.txt" }).waitFor();
    await shot(page, "folder-day-1");
    await page.getByRole("navigation", { name: "Breadcrumbs" }).getByRole("link", { name: "holiday" }).click();
    await page.waitForURL(/\/ui\/buckets\/holiday$/);
  } finally {
    await page.close();
    await server.stop();
  }
});

/** The S3 ETag of a file uploaded in parts of `partSize`. */
function multipartEtag(path, partSize) {
  const data = readFileSync(path);
  const digests = [];
  for (let start = 0; start < data.length; start += partSize) {
    digests.push(createHash("md5").update(data.subarray(start, start + partSize)).digest());
  }
  return `${createHash("md5").update(Buffer.concat(digests)).digest("hex")}-${digests.length}`;
}

test("a 200 MiB upload interrupted by a reload resumes from the stored parts, and one cancelled is dropped", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("02-resume-large-upload");
  const page = await browser.newPage();
  try {
    const folder = tempDir("cistern-big-");
    const file = join(folder, "film.bin");
    const fd = openSync(file, "w");
    const chunk = randomBytes(8 * 1024 * 1024);
    for (let i = 0; i < 25; i += 1) { chunk[0] = i; writeSync(fd, chunk); }
    closeSync(fd);
    const size = 200 * 1024 * 1024;

    await api(server, ROOT, "POST", "/buckets", { name: "media" });
    await signIn(page, server, ROOT);
    await page.goto(`${server.web}/ui/buckets/media`);
    await page.locator("#files").setInputFiles(file);
    await page.getByRole("button", { name: "Upload" }).click();
    const bar = page.locator('.upload-row[data-key="film.bin"] progress');
    await page.waitForFunction(() => {
      const progress = document.querySelector('.upload-row[data-key="film.bin"] progress');
      return progress && progress.value > progress.max * 0.4;
    }, null, { timeout: 120_000 });
    await shot(page, "half-way");
    assert.ok(await bar.count() === 1);
    await page.reload();
    const reloadedAt = Date.now();
    await shot(page, "after-reload");

    await page.locator("#files").setInputFiles(file);
    await page.getByRole("button", { name: "Upload" }).click();
    await allFinished(page, 1, 180_000);
    await shot(page, "resumed-and-finished");
    const resumedFrom = Number(await page.locator('.upload-row[data-key="film.bin"]').getAttribute("data-resumed-from"));
    assert.ok(resumedFrom > 0, "the second upload skipped the stored parts");
    assert.ok(size - resumedFrom < size, "fewer bytes sent than the file holds");

    const head = await api(server, ROOT, "GET", "/buckets/media/objects?limit=10");
    const object = head.body.objects.find((o) => o.key === "film.bin");
    assert.equal(object.size, size);
    assert.equal(object.etag, multipartEtag(file, 16 * 1024 * 1024));
    // What the second attempt sent, as the server counted it: less than the file.
    const records = await pollUntil("the completed upload in the audit log", async () => {
      const done = await api(server, ROOT, "GET", "/audit?action=upload.complete");
      if (done.body.records.length === 0) return null;
      const parts = await api(server, ROOT, "GET", "/audit?action=upload.put_part&limit=1000");
      return parts.body.records;
    });
    const sentAfterReload = records
      .filter((r) => r.time_ms >= reloadedAt && r.status === 200)
      .reduce((sum, r) => sum + r.bytes_in, 0);
    assert.ok(sentAfterReload > 0 && sentAfterReload < size,
      `sent after the reload: ${sentAfterReload} of ${size} bytes`);

    // Cancel half way: the row says so and the server drops the stored parts.
    const copy = join(folder, "film-copy.bin");
    writeFileSync(copy, readFileSync(file));
    await page.locator("#files").setInputFiles(copy);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.waitForFunction(() => {
      const progress = document.querySelector('.upload-row[data-key="film-copy.bin"] progress');
      return progress && progress.value > progress.max * 0.2;
    }, null, { timeout: 120_000 });
    await page.getByRole("button", { name: "Cancel film-copy.bin" }).click();
    await page.locator('.upload-row[data-key="film-copy.bin"] .state').filter({ hasText: "cancelled" }).waitFor();
    await shot(page, "cancelled");
    await pollUntil("the cancelled upload aborted on the server", async () => {
      const aborted = await api(server, ROOT, "GET", "/audit?action=upload.abort");
      return aborted.body.records.some((r) => r.status === 204);
    });
    const listed = await api(server, ROOT, "GET", "/buckets/media/objects");
    assert.deepEqual(listed.body.objects.map((o) => o.key), ["film.bin"]);
  } finally {
    await page.close();
    await server.stop();
  }
});

/** A WAV file of a 440 Hz tone lasting `seconds` (8 kHz, 16-bit mono). */
function wavTone(seconds) {
  const rate = 8000;
  const samples = rate * seconds;
  const data = Buffer.alloc(44 + samples * 2);
  data.write("RIFF", 0); data.writeUInt32LE(36 + samples * 2, 4); data.write("WAVE", 8);
  data.write("fmt ", 12); data.writeUInt32LE(16, 16); data.writeUInt16LE(1, 20); data.writeUInt16LE(1, 22);
  data.writeUInt32LE(rate, 24); data.writeUInt32LE(rate * 2, 28); data.writeUInt16LE(2, 32); data.writeUInt16LE(16, 34);
  data.write("data", 36); data.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i += 1) data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return new Uint8Array(data);
}

/** Stores a PNG drawn by the page itself, through the console's own API path. */
async function putDrawnImage(page, bucket, key) {
  return page.evaluate(async ({ bucket, key }) => {
    const canvas = document.createElement("canvas");
    canvas.width = 320; canvas.height = 200;
    const g = canvas.getContext("2d");
    g.fillStyle = "#2563eb"; g.fillRect(0, 0, 320, 200);
    g.fillStyle = "#fbbf24"; g.beginPath(); g.arc(240, 60, 40, 0, Math.PI * 2); g.fill();
    g.fillStyle = "#15803d"; g.fillRect(0, 150, 320, 50);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const path = key.split("/").map(encodeURIComponent).join("/");
    const response = await fetch(`/api/v1/buckets/${bucket}/objects/${path}`, {
      method: "PUT", body: blob, headers: { "content-type": "image/png", "x-csrf-token": csrf },
    });
    return response.status;
  }, { bucket, key });
}

test("browse folders, preview an image, share it, and delete several files", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("03-browse-preview-share-delete");
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await api(server, ROOT, "POST", "/buckets", { name: "album" });
    for (const name of ["a.txt", "b.txt", "c.txt"]) {
      await api(server, ROOT, "PUT", `/buckets/album/objects/loose/${name}`, `text ${name}`);
    }
    await signIn(page, server, ROOT);
    await shot(page, "buckets");
    assert.equal(await putDrawnImage(page, "album", "2026/summer/beach.png"), 201);

    await page.getByRole("link", { name: "album" }).click();
    await page.getByRole("link", { name: "2026/" }).click();
    await page.getByRole("link", { name: "summer/" }).click();
    await shot(page, "folder");
    await page.getByRole("link", { name: "beach.png" }).click();
    await page.getByRole("heading", { name: "beach.png" }).waitFor();
    const width = await page.locator("figure.preview img").evaluate(async (img) => {
      await img.decode();
      return img.naturalWidth;
    });
    assert.equal(width, 320);
    await shot(page, "image-preview");

    // A video plays from the page, past its middle (the browser seeks with
    // Range requests). The fixture was made with
    // `ffmpeg -f lavfi -i testsrc=duration=6:size=192x144:rate=15 -c:v libvpx -b:v 120k -g 15 clock.webm`.
    const video = readFileSync(join(import.meta.dirname, "fixtures", "clock.webm"));
    const put = await api(server, ROOT, "PUT", "/buckets/album/objects/2026/summer/clock.webm", new Uint8Array(video), "video/webm");
    assert.equal(put.status, 201);
    const ranges = [];
    page.on("response", (response) => {
      if (response.url().includes("clock.webm") && response.status() === 206) ranges.push(response.url());
    });
    await page.goto(`${server.web}/ui/buckets/album/objects/2026/summer/clock.webm`);
    const played = await page.locator("figure.preview video").evaluate(async (element) => {
      element.muted = true;
      if (element.readyState < 1) await new Promise((resolve) => element.addEventListener("loadedmetadata", resolve, { once: true }));
      const middle = element.duration / 2;
      element.currentTime = middle + 0.5;
      await new Promise((resolve) => element.addEventListener("seeked", resolve, { once: true }));
      await element.play();
      await new Promise((resolve) => {
        const check = () => (element.currentTime > middle + 1 ? resolve() : setTimeout(check, 50));
        check();
      });
      element.pause();
      return { duration: element.duration, at: element.currentTime };
    });
    assert.ok(played.duration > 5 && played.at > played.duration / 2, JSON.stringify(played));
    assert.ok(ranges.length > 0, "the video was fetched by ranges");
    await shot(page, "video-past-middle");

    // Audio plays in the page; a PDF is framed without the sandbox that
    // other stored files get (the browser's viewer needs it).
    const wav = wavTone(2);
    assert.equal((await api(server, ROOT, "PUT", "/buckets/album/objects/2026/summer/tone.wav", wav, "audio/wav")).status, 201);
    await page.goto(`${server.web}/ui/buckets/album/objects/2026/summer/tone.wav`);
    const seconds = await page.locator("figure.preview audio").evaluate(async (element) => {
      if (element.readyState < 1) await new Promise((resolve) => element.addEventListener("loadedmetadata", resolve, { once: true }));
      return element.duration;
    });
    assert.ok(Math.abs(seconds - 2) < 0.1, `audio lasts ${seconds} s`);
    const pdf = Buffer.from("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n");
    assert.equal((await api(server, ROOT, "PUT", "/buckets/album/objects/2026/summer/note.pdf", new Uint8Array(pdf), "application/pdf")).status, 201);
    const framed = page.waitForResponse((response) => response.url().includes("/api/v1/") && response.url().endsWith("/note.pdf"));
    await page.goto(`${server.web}/ui/buckets/album/objects/2026/summer/note.pdf`);
    const pdfResponse = await framed;
    assert.equal(pdfResponse.status(), 200);
    assert.equal(pdfResponse.headers()["content-type"], "application/pdf");
    assert.equal(pdfResponse.headers()["content-security-policy"], undefined);
    await page.goto(`${server.web}/ui/buckets/album/objects/2026/summer/beach.png`);

    // A share link works in a fresh browser context with no account.
    await page.getByLabel("Link works for").selectOption("3600");
    await page.getByRole("button", { name: "Create share link" }).click();
    const link = await page.locator("#share-url").inputValue();
    assert.match(link, /\/share\/album\/2026\/summer\/beach\.png\?by=/);
    await shot(page, "share-link");
    const stranger = await browser.newContext();
    const strangerPage = await stranger.newPage();
    const opened = await strangerPage.goto(link);
    assert.equal(opened.status(), 200);
    assert.equal(opened.headers()["content-type"], "image/png");
    await shot(strangerPage, "shared-image-opened");
    // A link signed the same way but past its expiry gets the expired page.
    // (Any key of the owner can sign one; the format is in docs/CONSOLE.md.)
    const key = await api(server, ROOT, "POST", "/keys", { read_only: true, buckets: ["album"] });
    const expires = Math.floor(Date.now() / 1000) - 60;
    const signature = createHmac("sha256", key.body.secret_key)
      .update(`cistern share v1\nalbum\n2026/summer/beach.png\n${expires}`).digest("hex");
    const expired = await strangerPage.goto(`${server.web}/share/album/2026/summer/beach.png?by=${key.body.access_key}&expires=${expires}&sig=${signature}`);
    assert.equal(expired.status(), 410);
    await strangerPage.getByRole("heading", { name: "This link has expired" }).waitFor();
    await shot(strangerPage, "expired-link");
    const tampered = await strangerPage.goto(link.replace("beach.png", "other.png"));
    assert.equal(tampered.status(), 403);
    await strangerPage.getByRole("heading", { name: "This link is not valid" }).waitFor();
    await shot(strangerPage, "tampered-link");
    await stranger.close();

    // Select two of three files and delete them, confirming on the way.
    await page.getByRole("navigation", { name: "Breadcrumbs" }).getByRole("link", { name: "album" }).click();
    await page.getByRole("link", { name: "loose/" }).click();
    await page.getByLabel("Select a.txt").check();
    await page.getByLabel("Select c.txt").check();
    await shot(page, "selected");
    await page.getByRole("button", { name: "Delete selected" }).click();
    await page.getByRole("heading", { name: "Delete 2 files from album?" }).waitFor();
    await shot(page, "confirm-delete");
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    await page.getByText("Deleted 2 files.").waitFor();
    await shot(page, "deleted");

    // A phone's width: nothing wider than the screen.
    await page.setViewportSize({ width: 360, height: 740 });
    for (const path of [
      "/ui/buckets", "/ui/buckets/album/objects/2026/summer/beach.png", "/ui/buckets/album?prefix=loose%2F",
      "/ui/buckets/album/settings", "/ui/keys", "/ui/history", "/ui/account", "/ui/admin/users", "/ui/admin/audit",
    ]) {
      await page.goto(`${server.web}${path}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} is ${overflow} px too wide at 360 px`);
      assert.deepEqual(await unnamedControls(page), [], `${path} has controls without a label`);
      await shot(page, `narrow-${path.split("/").slice(2).join("-").split("?")[0].replace(/\.\w+$/, "")}`);
    }
    const left = await api(server, ROOT, "GET", "/buckets/album/objects?prefix=loose/");
    assert.deepEqual(left.body.objects.map((o) => o.key), ["loose/b.txt"]);
  } finally {
    await context.close();
    await server.stop();
  }
});

/** Form fields, buttons and links on the page that a screen reader could
 * not name (no label, no text, no aria-label). */
function unnamedControls(page) {
  return page.evaluate(() => [...document.querySelectorAll("input, select, textarea, button, a[href]")]
    .filter((el) => el.type !== "hidden" && el.getClientRects().length > 0)
    .filter((el) => {
      if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) return false;
      if (el.labels && el.labels.length > 0) return false;
      if (el.tagName === "A" || el.tagName === "BUTTON") return !el.textContent.trim() && !el.querySelector("img[alt]");
      return !(el.type === "submit" && el.value);
    })
    .map((el) => el.outerHTML.slice(0, 120)));
}

test("the keyboard alone signs in, finds a file, opens it and reaches the upload", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const page = await browser.newPage();
  try {
    assert.equal((await api(server, ROOT, "POST", "/buckets", { name: "notebook" })).status, 201);
    await api(server, ROOT, "PUT", "/buckets/notebook/objects/notes.txt", "by keyboard", "text/plain");
    await page.goto(`${server.web}/ui/sign-in`);
    // Tab until the focus is on a named field: nothing but keys from here.
    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      return el ? `${el.tagName.toLowerCase()}:${el.labels?.[0]?.textContent.trim() ?? el.textContent.trim()}` : "";
    });
    const tabTo = async (wanted, most = 40) => {
      for (let i = 0; i < most; i += 1) {
        await page.keyboard.press("Tab");
        if ((await focused()) === wanted) return;
      }
      throw new Error(`Tab never reached ${wanted} (last: ${await focused()})`);
    };
    await tabTo("input:Name");
    await page.keyboard.type(ROOT.name);
    await tabTo("input:Password");
    await page.keyboard.type(ROOT.password);
    await Promise.all([page.waitForURL(/\/ui\/buckets/), page.keyboard.press("Enter")]);
    await tabTo("a:notebook");
    // The focused control is visibly marked.
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, "none", "the focused link shows no outline");
    await Promise.all([page.waitForURL(/\/ui\/buckets\/notebook/), page.keyboard.press("Enter")]);
    await tabTo("input:Files");
    await tabTo("a:notes.txt");
    await Promise.all([page.waitForURL(/notes\.txt/), page.keyboard.press("Enter")]);
    await page.getByRole("heading", { name: "notes.txt" }).waitFor();
    assert.deepEqual(await unnamedControls(page), []);
  } finally {
    await page.close();
    await server.stop();
  }
});

test("another user cannot see the bucket, and after sign-out the back button shows nothing", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("04-privacy-and-sign-out");
  await api(server, ROOT, "POST", "/users", { name: "erin", password: "erin-password-1" });
  await api(server, ROOT, "POST", "/users", { name: "frank", password: "frank-password-1" });
  const erin = await browser.newContext();
  const frank = await browser.newContext();
  try {
    const erinPage = await erin.newPage();
    await signIn(erinPage, server, { name: "erin", password: "erin-password-1" });
    await erinPage.getByLabel("Bucket name").fill("erins-private");
    await erinPage.getByRole("button", { name: "Create" }).click();
    await erinPage.waitForURL(/erins-private$/);

    const frankPage = await frank.newPage();
    await signIn(frankPage, server, { name: "frank", password: "frank-password-1" });
    assert.equal(await frankPage.getByText("erins-private").count(), 0);
    await shot(frankPage, "frank-buckets");
    const refused = await frankPage.goto(`${server.web}/ui/buckets/erins-private`);
    assert.equal(refused.status(), 403);
    await shot(frankPage, "frank-refused");

    await erinPage.goto(`${server.web}/ui/buckets`);
    await erinPage.getByRole("link", { name: "erins-private" }).waitFor();
    await erinPage.getByRole("button", { name: "Sign out" }).click();
    await erinPage.getByText("You are signed out.").waitFor();
    await shot(erinPage, "signed-out");
    await erinPage.goBack();
    await erinPage.waitForURL(/\/ui\/sign-in/);
    assert.equal(await erinPage.getByText("erins-private").count(), 0);
    await shot(erinPage, "back-after-sign-out");
  } finally {
    await erin.close();
    await frank.close();
    await server.stop();
  }
});

test("a read-only key made in the console reads with aws-cli and cannot write", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("05-access-keys");
  const page = await browser.newPage();
  try {
    await api(server, ROOT, "POST", "/buckets", { name: "reports" });
    await api(server, ROOT, "PUT", "/buckets/reports/objects/q3.txt", "quarter three");
    await signIn(page, server, ROOT);
    await page.getByRole("link", { name: "Access keys" }).click();
    await shot(page, "keys");
    await page.getByLabel("Read only").check();
    await page.getByLabel("reports").check();
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByRole("heading", { name: "Your new key" }).waitFor();
    await shot(page, "key-created");
    const accessKey = await page.locator("#new-access-key").inputValue();
    const secret = await page.locator("#new-secret").inputValue();
    const snippet = await page.locator("#aws-snippet").inputValue();
    assert.ok(snippet.includes(`AWS_SECRET_ACCESS_KEY=${secret}`));

    const env = {
      ...process.env, AWS_ACCESS_KEY_ID: accessKey, AWS_SECRET_ACCESS_KEY: secret,
      AWS_DEFAULT_REGION: "us-east-1", AWS_EC2_METADATA_DISABLED: "true",
    };
    const folder = tempDir("cistern-aws-");
    const read = awsCli(["--endpoint-url", server.s3, "s3", "cp", "s3://reports/q3.txt", join(folder, "q3.txt")], env);
    assert.equal(read.status, 0, read.stderr);
    assert.equal(readFileSync(join(folder, "q3.txt"), "utf8"), "quarter three");
    writeFileSync(join(folder, "new.txt"), "nope");
    const write = awsCli(["--endpoint-url", server.s3, "s3", "cp", join(folder, "new.txt"), "s3://reports/new.txt"], env);
    assert.notEqual(write.status, 0, "a read-only key cannot upload");
    assert.match(write.stderr, /AccessDenied/);

    // Revoked, it stops working.
    await page.goto(`${server.web}/ui/keys`);
    page.once("dialog", (dialog) => dialog.accept());
    await page.getByRole("button", { name: `Revoke ${accessKey}` }).click();
    await page.getByText(`The key ${accessKey} is revoked.`).waitFor();
    await shot(page, "key-revoked");
    const after = awsCli(["--endpoint-url", server.s3, "s3", "ls", "s3://reports/"], env);
    assert.notEqual(after.status, 0);
  } finally {
    await page.close();
    await server.stop();
  }
});

test("admins manage users and read the whole audit log", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("06-admin");
  const page = await browser.newPage();
  try {
    await signIn(page, server, ROOT);
    await page.getByRole("link", { name: "Admin", exact: true }).click();
    await page.getByRole("heading", { name: "Users" }).waitFor();
    await page.getByLabel("Name").fill("gina");
    await page.getByLabel("Password").fill("gina-password-1");
    await page.getByRole("button", { name: "Create user" }).click();
    await page.getByText("The user gina is created.").waitFor();
    await page.getByLabel("Quota in GiB").fill("0.5");
    await page.getByRole("button", { name: "Set quota" }).click();
    await page.getByText("The quota of gina is 512 MiB.").waitFor();
    await page.getByRole("button", { name: "Disable gina" }).click();
    await page.getByText("gina is disabled.").waitFor();
    await shot(page, "user-page");
    const refused = await fetch(`${server.web}/api/v1/buckets`, {
      headers: { authorization: `Basic ${Buffer.from("gina:gina-password-1").toString("base64")}` },
    });
    assert.equal(refused.status, 403, "a disabled user is refused");
    await page.getByRole("link", { name: "Users" }).first().click();
    await shot(page, "users");

    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByLabel("Action").selectOption("user.disable");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("table.list tbody tr").first().waitFor();
    assert.ok((await page.locator("table.list tbody").innerText()).includes("user:gina"));
    await shot(page, "audit-log");
    const exported = await page.evaluate(async () => (await fetch(document.querySelector('a[download="audit.ndjson"]').href)).text());
    const lines = exported.trim().split("\n").map((line) => JSON.parse(line));
    assert.ok(lines.length >= 1 && lines.every((r) => r.action === "user.disable"));
  } finally {
    await page.close();
    await server.stop();
  }
});

test("the usage page plots what was uploaded and downloaded and states the numbers", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("07-usage");
  const page = await browser.newPage();
  try {
    assert.equal((await api(server, ROOT, "POST", "/buckets", { name: "photos" })).status, 201);
    for (const [name, size] of [["a.bin", 3000], ["b.bin", 5000]]) {
      const put = await api(server, ROOT, "PUT", `/buckets/photos/objects/${name}`, new Uint8Array(size).fill(7));
      assert.ok(put.status < 300, `upload ${name}: ${put.status}`);
    }
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await api(server, ROOT, "GET", "/buckets/photos/objects/b.bin")).status, 200);
    }
    await signIn(page, server, ROOT);
    await page.getByRole("link", { name: "Usage", exact: true }).click();
    await page.getByRole("heading", { name: "Your usage" }).waitFor();
    await page.getByLabel("Bucket").selectOption("photos");
    // The form's answer must have loaded before the reloads below: a reload
    // that races it fails, and Chromium then never closes the page.
    await Promise.all([page.waitForURL(/bucket=photos/), page.getByRole("button", { name: "Show" }).click()]);
    // The audit pipeline writes traffic within a fraction of a second.
    await pollUntil("the downloads are counted", async () => {
      await page.reload();
      return (await page.locator("#downloaded").getAttribute("value")) === "15000";
    });
    assert.equal(await page.locator("#stored").getAttribute("value"), "8000");
    // The bucket's creation (its JSON body) counts as uploaded to it too.
    const created = JSON.stringify({ name: "photos" }).length;
    assert.equal(await page.locator("#uploaded").getAttribute("value"), String(8000 + created));
    assert.equal(await page.locator("svg.plot").count(), 4);
    const today = new Date().toISOString().slice(0, 10);
    assert.ok((await page.locator("svg.plot").first().innerHTML()).includes(`${today}: 7.8 KiB`));
    await shot(page, "own-desktop");
    await page.setViewportSize({ width: 360, height: 800 });
    await shot(page, "own-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByRole("link", { name: "Admin", exact: true }).click();
    await page.getByRole("link", { name: "Usage" }).nth(1).click();
    await page.getByRole("heading", { name: "Usage of the whole server" }).waitFor();
    assert.ok((await page.locator("#users").innerText()).includes(ROOT.name));
    await shot(page, "admin");
  } finally {
    await page.close();
    await server.stop();
  }
});

/** A PNG of `width` x `height` in a gradient of one hue, made here. */
function gradientPng(width, height, hue) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (kind, data) => {
    const body = Buffer.concat([Buffer.from(kind, "ascii"), data]);
    const length = Buffer.alloc(4); length.writeUInt32BE(data.length);
    const check = Buffer.alloc(4); check.writeUInt32BE(crc(body));
    return Buffer.concat([length, body, check]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0); header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const at = y * (width * 3 + 1) + 1 + x * 3;
      const light = 80 + Math.round((150 * (x + y)) / (width + height));
      rows[at] = Math.min(255, light * hue[0]);
      rows[at + 1] = Math.min(255, light * hue[1]);
      rows[at + 2] = Math.min(255, light * hue[2]);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0)),
  ]);
}

test("a folder of photos shows as a gallery and the large view steps through them by keyboard", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("08-gallery");
  const page = await browser.newPage();
  try {
    assert.equal((await api(server, ROOT, "POST", "/buckets", { name: "photos" })).status, 201);
    const hues = [[1.2, .5, .3], [.3, .9, .5], [.4, .5, 1.3], [1.1, 1, .3], [.9, .4, 1], [.3, 1, 1.1]];
    for (const [i, hue] of hues.entries()) {
      const put = await api(server, ROOT, "PUT", `/buckets/photos/objects/summer/img-${i + 1}.png`, gradientPng(640, 400, hue), "image/png");
      assert.ok(put.status < 300, `upload ${i}: ${put.status}`);
    }
    await api(server, ROOT, "PUT", "/buckets/photos/objects/summer/notes.txt", "not a picture", "text/plain");
    await signIn(page, server, ROOT);
    await page.goto(`${server.web}/ui/buckets/photos?prefix=summer%2F`);
    await page.getByRole("link", { name: "Gallery" }).click();
    await page.getByRole("heading", { name: "Gallery of summer" }).waitFor();
    const tiles = page.locator(".gallery img");
    assert.equal(await tiles.count(), 6, "the text file is not in the gallery");
    await pollUntil("every thumbnail is loaded", async () =>
      (await tiles.evaluateAll((images) => images.every((img) => img.complete && img.naturalWidth === 256))));
    await shot(page, "grid");
    await page.getByRole("link", { name: "By name" }).click();
    await page.locator(".gallery a").first().click();
    await page.getByText("1 of 6").waitFor();
    // The large view shows a preview made on the server; the original is
    // a link away.
    const large = page.locator(".lightbox img");
    assert.match(await large.getAttribute("src"), /\/preview\?key=summer%2Fimg-1\.png/);
    await pollUntil("the preview is shown", async () =>
      large.evaluate((img) => img.complete && img.naturalWidth === 640));
    // Made on the server: a JPEG, where the original is a PNG.
    assert.equal(await large.evaluate(async (img) => (await fetch(img.src)).headers.get("content-type")), "image/jpeg");
    assert.match(await page.getByRole("link", { name: "Original" }).getAttribute("href"), /img-1\.png$/);
    await shot(page, "photo");
    await page.keyboard.press("ArrowRight");
    await page.getByText("2 of 6").waitFor();
    assert.ok(page.url().includes("img-2.png"));
    await page.setViewportSize({ width: 360, height: 800 });
    await shot(page, "photo-phone");
    await page.keyboard.press("Escape");
    await page.getByRole("heading", { name: "Gallery of summer" }).waitFor();
    await shot(page, "grid-phone");

    // A folder of more than a page: scrolling down appends the next page's
    // tiles in place, with no click and no new page.
    await page.setViewportSize({ width: 1280, height: 800 });
    const tiny = gradientPng(32, 24, [1, 1, 1]);
    for (let i = 0; i < 230; i += 23) {
      await Promise.all(Array.from({ length: 23 }, (_, j) =>
        api(server, ROOT, "PUT", `/buckets/photos/objects/many/p-${String(i + j).padStart(3, "0")}.png`, tiny, "image/png")));
    }
    await page.goto(`${server.web}/ui/buckets/photos/gallery?prefix=many%2F&sort=name`);
    const grid = page.locator(".gallery li");
    assert.equal(await grid.count(), 200, "one page of tiles at first");
    const address = page.url();
    await pollUntil("the next page's tiles to be appended", async () => {
      await page.mouse.wheel(0, 4000);
      return (await grid.count()) === 230;
    }, 30_000);
    assert.equal(page.url(), address, "the tiles came without leaving the page");
    assert.equal(await page.locator('nav.pages a[rel="next"]').count(), 0, "no link to more once all are shown");
    assert.equal(await grid.last().locator("span").textContent(), "p-229.png");
  } finally {
    await page.close();
    await server.stop();
  }
});

test("the pool dashboard shows contributions, the seal, the claim and the result as they happen", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("09-pool");
  const page = await browser.newPage();
  try {
    const created = await api(server, ROOT, "POST", "/pools", { name: "sky", window_secs: 86400 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const token = {};
    for (const [name, role] of [["cam-1", "contributor"], ["cam-2", "contributor"], ["cam-3", "contributor"], ["screen", "listener"], ["proc", "processor"]]) {
      const added = await api(server, ROOT, "POST", "/pools/sky/members", { name, role });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      token[name] = added.body[0].token;
    }
    const cli = (member, args) => {
      const run = spawnSync(binary, ["pool", args[0], "--server", server.web, "--pool", "sky", "--token", token[member], ...args.slice(1)], { encoding: "utf8" });
      assert.equal(run.status, 0, `${member} ${args[0]}: ${run.stderr}`);
      return run;
    };
    await signIn(page, server, ROOT);
    await page.getByRole("link", { name: "Pools", exact: true }).click();
    await page.getByRole("link", { name: "sky" }).click();
    await page.getByRole("heading", { name: "Pool sky" }).waitFor();
    // The notifications area shows once its stream is open.
    await page.locator("#notices").waitFor({ state: "visible" });
    const work = tempDir("cistern-pool-");
    const now = new Date().toISOString();
    for (const member of ["cam-1", "cam-2", "cam-3"]) {
      const file = join(work, `${member}.png`);
      writeFileSync(file, gradientPng(64, 40, [1, .6, .3]));
      cli(member, ["push", "--timestamp", now, file]);
    }
    const groupRow = page.locator("#groups tbody tr").first();
    await pollUntil("the page shows three files", async () => (await groupRow.innerText()).includes("\t3\t"), 15_000);
    await shot(page, "contributions");
    const group = (await api(server, ROOT, "GET", "/pools/sky/groups")).body[0].group;
    const sealed = await api(server, ROOT, "POST", `/pools/sky/groups/${encodeURIComponent(group)}/seal`);
    assert.ok(sealed.status < 300, `seal: ${sealed.status} ${JSON.stringify(sealed.body)}`);
    await page.locator("#groups .tag", { hasText: "sealed" }).waitFor({ timeout: 15_000 });
    cli("proc", ["process", "--count", "1", "--exec", "cp {input}/manifest.json {output}"]);
    await page.locator("#groups .tag", { hasText: "published" }).waitFor({ timeout: 15_000 });
    await pollUntil("the page tells of the publication", async () =>
      (await page.locator(".live-note").innerText()).includes("result published"));
    // The header's notifications list the seal, the claim and the result;
    // accepted files are only news on the pool page.
    const notices = page.locator("#notices");
    assert.ok(Number(await notices.locator(".count").innerText()) >= 3, "new events are counted");
    await notices.locator("summary").click();
    const items = notices.locator("li");
    assert.match(await items.first().innerText(), /^sky: result published/);
    assert.ok((await notices.innerText()).includes("group claimed by proc"));
    // The details element tells of its opening in a task of its own.
    await pollUntil("opened, nothing is unseen", async () => (await notices.locator(".count").innerText()) === "");
    await shot(page, "notifications");
    await notices.locator("summary").click();
    cli("screen", ["watch", "--count", "1", "--out", join(work, "results")]);
    const screenRow = page.locator("#members tr", { hasText: "screen" });
    await pollUntil("the screen has fetched the result", async () => (await screenRow.innerText()).includes("fetched"), 15_000);
    await shot(page, "published");

    // The group: its files, its processor, and who has the result.
    await groupRow.locator("a").first().click();
    await page.getByRole("heading", { name: /^Group of / }).waitFor();
    assert.equal(await page.locator("#files tbody tr").count(), 3);
    assert.equal(await page.locator("#processor").innerText(), "proc (published)");
    assert.equal(await page.locator("#fetched tr", { hasText: "screen" }).locator("td.waiting").count(), 0);
    assert.equal(await page.locator("#fetched td.waiting").count(), 3, "the cameras have not fetched it");
    await shot(page, "group");
    await page.setViewportSize({ width: 360, height: 800 });
    await shot(page, "group-phone");
    await page.setViewportSize({ width: 1280, height: 720 });

    // A member signs in with its token, sees its receipt and downloads
    // the result, which the owner then sees as fetched.
    const memberPage = await browser.newPage();
    try {
      await memberPage.goto(`${server.web}/ui/sign-in`);
      await memberPage.getByRole("link", { name: "Sign in with your member token" }).click();
      await shot(memberPage, "member-sign-in");
      await memberPage.setViewportSize({ width: 360, height: 800 });
      await shot(memberPage, "member-sign-in-phone");
      await memberPage.setViewportSize({ width: 1280, height: 720 });
      await memberPage.getByLabel("Member token").fill(token["cam-1"]);
      await memberPage.getByRole("button", { name: "Sign in" }).click();
      await memberPage.getByRole("heading", { name: "cam-1 in pool sky" }).waitFor();
      assert.equal(await memberPage.locator("#receipts tbody tr").count(), 1);
      assert.ok((await memberPage.locator("#receipts").innerText()).includes("cam-1.png"));
      await shot(memberPage, "member");
      const [download] = await Promise.all([
        memberPage.waitForEvent("download"),
        memberPage.getByRole("link", { name: "Download the latest result" }).click(),
      ]);
      const manifest = JSON.parse(readFileSync(await download.path(), "utf8"));
      assert.equal(manifest.files.length, 3, "the result is the processor's output");
      await memberPage.reload();
      await memberPage.locator("#latest .tag", { hasText: /^fetched$/ }).waitFor();
      await memberPage.setViewportSize({ width: 360, height: 800 });
      await shot(memberPage, "member-phone");
    } finally {
      await memberPage.close();
    }
    await page.reload();
    assert.equal(await page.locator("#fetched td.waiting").count(), 2, "cam-1 has it now");

    await page.goBack();
    await page.getByRole("heading", { name: "Pool sky" }).waitFor();
    await page.setViewportSize({ width: 360, height: 800 });
    await shot(page, "phone");
    await page.locator("#members").evaluate((table) => { table.parentElement.scrollLeft = 10_000; });
    await shot(page, "phone-members-scrolled");

    // Adding a member answers with the pool page at the form's address;
    // the page stays live there: a refused file and a member disabled
    // elsewhere show up without a reload.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByLabel("Names, one per line").fill("cam-4");
    await page.getByRole("button", { name: "Add and show tokens" }).click();
    await page.getByRole("heading", { name: "New tokens, shown this once" }).waitFor();
    assert.ok(page.url().endsWith("/ui/pools/sky/members"), page.url());
    const late = join(work, "late.png");
    writeFileSync(late, gradientPng(64, 40, [.3, .6, 1]));
    spawnSync(binary, ["pool", "push", "--server", server.web, "--pool", "sky", "--token", token["cam-2"], "--timestamp", now, late], { encoding: "utf8" });
    await pollUntil("the page tells of the refused file", async () =>
      (await page.locator(".live-note").innerText()).includes("late.png refused"));
    const disabled = await api(server, ROOT, "POST", "/pools/sky/members/cam-3/disable");
    assert.ok(disabled.status < 300, `disable: ${disabled.status}`);
    await page.locator("#members tr", { hasText: "cam-3" }).locator(".tag", { hasText: "disabled" }).waitFor({ timeout: 15_000 });
    await shot(page, "still-live-after-adding");

    // Any other page of the console hears it too: the header's area on
    // the buckets page counts a new refusal and names the file.
    await page.goto(`${server.web}/ui/buckets`);
    const area = page.locator("#notices");
    // The area is shown once its stream is open.
    await area.waitFor({ state: "visible" });
    const later = join(work, "later.png");
    writeFileSync(later, gradientPng(64, 40, [1, .6, .3]));
    const pushed = spawnSync(binary, ["pool", "push", "--server", server.web, "--pool", "sky", "--token", token["cam-2"], "--timestamp", now, later], { encoding: "utf8" });
    assert.ok(pushed.stderr.includes("later.png") || pushed.stdout.includes("later.png"), `the push reported the file: ${pushed.stdout}${pushed.stderr}`);
    await pollUntil("the buckets page counts the refusal", async () => (await area.locator(".count").innerText()) !== "");
    await area.locator("summary").click();
    assert.match(await area.locator("li").first().innerText(), /later\.png/);
    await shot(page, "notifications-on-buckets-page");
    await page.goto(`${server.web}/ui/pools`);
    await page.getByRole("link", { name: "sky" }).waitFor();
    await shot(page, "pools-list");
  } finally {
    await page.close();
    await server.stop();
  }
});

test("a folder dragged onto the page keeps its tree, however many files a level holds", { timeout: SCENARIO_TIMEOUT }, async () => {
  const server = await startServer();
  const shot = camera("10-folder-drop");
  const page = await browser.newPage();
  try {
    assert.equal((await api(server, ROOT, "POST", "/buckets", { name: "drops" })).status, 201);
    await signIn(page, server, ROOT);
    await page.goto(`${server.web}/ui/buckets/drops`);
    // A drop carries FileSystemEntry objects, which a page cannot make
    // from files on disk; these follow the same interface (entries, a
    // reader that hands out at most 100 entries per call, as Chromium's
    // does, then an empty batch), so the page's own walk is what is tried.
    await page.evaluate(() => {
      const file = (name, text) => ({ isFile: true, isDirectory: false, name, file: (ok) => ok(new File([text], name)) });
      const dir = (name, children) => ({
        isFile: false, isDirectory: true, name,
        createReader: () => {
          let next = 0;
          return { readEntries: (ok) => { const batch = children.slice(next, next + 100); next += batch.length; setTimeout(() => ok(batch)); } };
        },
      });
      const many = Array.from({ length: 150 }, (_, i) => file(`f-${String(i).padStart(3, "0")}.txt`, `file ${i}`));
      const album = dir("album", [
        file("cover.txt", "cover"),
        dir("2024", [file("summer.txt", "sun"), dir("raw", [file("frame 1.bin", "raw bytes")])]),
        dir("many", many),
        dir("empty", []),
      ]);
      const loose = file("loose.txt", "on its own");
      const drop = new Event("drop", { bubbles: true, cancelable: true });
      Object.defineProperty(drop, "dataTransfer", {
        value: { items: [album, loose].map((entry) => ({ webkitGetAsEntry: () => entry })), files: [] },
      });
      document.dispatchEvent(new Event("dragover", { bubbles: true, cancelable: true }));
      document.dispatchEvent(drop);
    });
    await allFinished(page, 154);
    await shot(page, "dropped");
    const listed = await api(server, ROOT, "GET", "/buckets/drops/objects?limit=1000");
    const keys = listed.body.objects.map((o) => o.key).sort();
    assert.equal(keys.length, 154, keys.join(", "));
    for (const key of ["album/cover.txt", "album/2024/summer.txt", "album/2024/raw/frame 1.bin", "album/many/f-000.txt", "album/many/f-149.txt", "loose.txt"]) {
      assert.ok(keys.includes(key), `${key} in ${keys.slice(0, 8).join(", ")}…`);
    }
    const raw = await api(server, ROOT, "GET", "/buckets/drops/objects/album/2024/raw/frame%201.bin");
    assert.equal(raw.body, "raw bytes");
    await page.getByRole("link", { name: "album/" }).click();
    await page.getByRole("link", { name: "2024/" }).click();
    await page.getByRole("link", { name: "raw/" }).click();
    await page.getByRole("link", { name: "frame 1.bin" }).waitFor();
    await shot(page, "album-2024-raw");
  } finally {
    await page.close();
    await server.stop();
  }
});
