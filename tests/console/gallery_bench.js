// The gallery of a 2,000-photo folder filling in, run by hand against a
// release build (never in CI):
//
//   cargo build --release
//   cd tests/console && npm ci && CISTERN_BIN=../../target/release/cistern node gallery_bench.js
//
// Stores BENCH_PHOTOS (2,000) camera-like JPEGs of BENCH_MEGAPIXELS (12),
// encoded by Chromium from a noisy picture so they compress as photos do,
// then opens the folder's gallery in Chromium and scrolls down as a person
// would until every tile shows its thumbnail. Meanwhile a small request
// (a 4 KiB GET through the JSON API) runs in a loop; its latency beside
// the same loop on an idle server says whether thumbnailing stalls others.

import { Buffer } from "node:buffer";
import { ROOT, api, launchBrowser, signIn, startServer } from "./harness.js";

const photos = Number(process.env.BENCH_PHOTOS ?? 2000);
const megapixels = Number(process.env.BENCH_MEGAPIXELS ?? 12);

const percentile = (xs, p) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

/** Times small GETs one after another until `running()` says stop. */
async function smallGets(server, running) {
  const times = [];
  const auth = `Basic ${Buffer.from(`${ROOT.name}:${ROOT.password}`).toString("base64")}`;
  while (running()) {
    const asked = performance.now();
    const response = await fetch(`${server.web}/api/v1/buckets/photos/objects/small.bin`, { headers: { authorization: auth } });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`small GET answered ${response.status}`);
    times.push(performance.now() - asked);
  }
  return times;
}

const server = await startServer();
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto(`${server.web}/ui/sign-in`);
  const width = Math.round(Math.sqrt(megapixels * 1e6 * 4 / 3));
  const height = Math.round(width * 3 / 4);
  const jpeg = Buffer.from(await page.evaluate(async ([w, h]) => {
    const canvas = new OffscreenCanvas(w, h);
    const context = canvas.getContext("2d");
    const pixels = context.createImageData(w, h);
    for (let i = 0; i < pixels.data.length; i += 4) {
      const x = (i / 4) % w;
      pixels.data[i] = (x * 255) / w + Math.random() * 40;
      pixels.data[i + 1] = Math.random() * 255;
      pixels.data[i + 2] = 128 + Math.random() * 60;
      pixels.data[i + 3] = 255;
    }
    context.putImageData(pixels, 0, 0);
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.85 });
    return [...new Uint8Array(await blob.arrayBuffer())];
  }, [width, height]));
  console.log(`photo: ${width} x ${height} JPEG, ${(jpeg.length / 1048576).toFixed(1)} MiB`);

  await api(server, ROOT, "POST", "/buckets", { name: "photos" });
  await api(server, ROOT, "PUT", "/buckets/photos/objects/small.bin", "s".repeat(4096), "application/octet-stream");
  let started = performance.now();
  let retried = 0;
  const store = async (key) => {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const put = await api(server, ROOT, "PUT", `/buckets/photos/objects/${key}`, jpeg, "image/jpeg");
        if (put.status === 201) return;
        throw new Error(`answered ${put.status} ${JSON.stringify(put.body)}`);
      } catch (error) {
        if (attempt === 3) throw error;
        retried += 1;
        console.log(`PUT ${key} failed (${error.cause?.code ?? error.message}); trying again`);
      }
    }
  };
  for (let i = 0; i < photos; i += 16) {
    await Promise.all(Array.from({ length: Math.min(16, photos - i) }, (_, j) =>
      store(`camera/IMG_${String(i + j).padStart(5, "0")}.jpg`)));
  }
  if (retried > 0) console.log(`${retried} uploads were tried again`);
  console.log(`${photos} photos stored in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  let idleRunning = true;
  const idle = smallGets(server, () => idleRunning);
  await new Promise((resolve) => setTimeout(resolve, 5000));
  idleRunning = false;
  const idleTimes = await idle;

  await signIn(page, server, ROOT);
  await page.setViewportSize({ width: 1280, height: 900 });
  let busyRunning = true;
  const busy = smallGets(server, () => busyRunning);
  started = performance.now();
  await page.goto(`${server.web}/ui/buckets/photos/gallery?prefix=camera%2F`);
  const shown = () => page.evaluate(() => {
    const tiles = [...document.querySelectorAll(".gallery img")];
    const inView = tiles.filter((img) => {
      const box = img.getBoundingClientRect();
      return box.bottom > 0 && box.top < window.innerHeight;
    });
    const done = (img) => img.complete && img.naturalWidth > 0;
    return {
      tiles: tiles.length,
      loaded: tiles.filter(done).length,
      // The photos are 4:3, so their thumbnails are 256 x 192; the
      // placeholder for a thumbnail not made (a full queue) is square.
      placeholders: tiles.filter((img) => done(img) && img.naturalHeight === 256).length,
      inViewDone: inView.every(done),
    };
  });
  // The first screen: what a person looks at first.
  for (;;) {
    if ((await shown()).inViewDone) break;
    await page.waitForTimeout(50);
  }
  const firstScreen = (performance.now() - started) / 1000;
  // Then down to the end, a screen at a time once the one shown is filled.
  let state;
  for (;;) {
    state = await shown();
    if (state.tiles === photos && state.loaded === photos) break;
    if (state.inViewDone) await page.mouse.wheel(0, 900);
    await page.waitForTimeout(50);
  }
  const whole = (performance.now() - started) / 1000;
  busyRunning = false;
  const busyTimes = await busy;
  console.log(`first screen of thumbnails: ${firstScreen.toFixed(1)} s; all ${photos} shown after scrolling: ${whole.toFixed(1)} s (${(photos / whole).toFixed(1)} images/s), ${state.placeholders} shown as placeholders`);
  console.log(`4 KiB GET through the JSON API, idle: median ${percentile(idleTimes, 50).toFixed(2)} ms, p99 ${percentile(idleTimes, 99).toFixed(2)} ms (${idleTimes.length} requests)`);
  console.log(`4 KiB GET while the gallery fills in: median ${percentile(busyTimes, 50).toFixed(2)} ms, p99 ${percentile(busyTimes, 99).toFixed(2)} ms (${busyTimes.length} requests); p99 ratio ${(percentile(busyTimes, 99) / percentile(idleTimes, 99)).toFixed(2)}`);
} finally {
  await browser.close();
  await server.stop();
}
