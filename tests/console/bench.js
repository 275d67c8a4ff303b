// Console benchmarks, run by hand against a release build (never in CI):
//
//   cargo build --release
//   cd tests/console && npm ci && CISTERN_BIN=../../target/release/cistern node bench.js
//
// Prints: the time the server takes to answer a folder page listing 1,000
// objects (and 200, the default page), timed with curl, the bytes a first load of a folder
// page transfers in a fresh browser, and the speed of a 1 GiB upload from
// Chromium through the console next to aws-cli against the same server in
// the same run, and the time of each page while paging by cursor through a
// folder of 100,000 objects. BENCH_UPLOAD_MIB changes the upload size, BENCH_DEEP_OBJECTS the number
// of objects paged through (0 skips it).

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ROOT, api, launchBrowser, startServer, tempDir } from "./harness.js";

const uploadMib = Number(process.env.BENCH_UPLOAD_MIB ?? 1024);

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function signedInCookie(server) {
  const response = await fetch(`${server.web}/ui/sign-in`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ name: ROOT.name, password: ROOT.password }),
  });
  return response.headers.get("set-cookie").split(";")[0];
}

/** Times a page with curl: request to first byte (the server renders the
 * whole page before sending it) and to last byte, over loopback. */
function timePage(server, cookie, path, runs) {
  const first = [];
  const total = [];
  let bytes = 0;
  for (let i = 0; i < runs + 5; i += 1) {
    const run = spawnSync("curl", ["-s", "-o", "/dev/null", "-H", `cookie: ${cookie}`,
      "-w", "%{http_code} %{time_starttransfer} %{time_total} %{size_download}", `${server.web}${path}`], { encoding: "utf8" });
    const [status, ttfb, done, size] = run.stdout.trim().split(" ");
    if (status !== "200") throw new Error(`${path} answered ${status}`);
    bytes = Number(size);
    if (i >= 5) { // the first few warm the caches
      first.push(Number(ttfb) * 1000);
      total.push(Number(done) * 1000);
    }
  }
  first.sort((a, b) => a - b);
  total.sort((a, b) => a - b);
  return { median: percentile(first, 50), p95: percentile(first, 95), last: percentile(total, 50), bytes };
}

const server = await startServer();
const browser = await launchBrowser();
try {
  await api(server, ROOT, "POST", "/buckets", { name: "bench" });
  const keys = Array.from({ length: 1000 }, (_, i) => `photos/IMG_${String(i).padStart(5, "0")}.jpg`);
  for (let i = 0; i < keys.length; i += 32) {
    await Promise.all(keys.slice(i, i + 32).map((key) => api(server, ROOT, "PUT", `/buckets/bench/objects/${key}`, "x".repeat(2048), "image/jpeg")));
  }
  const cookie = await signedInCookie(server);
  for (const size of [1000, 200]) {
    const page = timePage(server, cookie, `/ui/buckets/bench?prefix=photos%2F&size=${size}`, 50);
    console.log(`folder page of ${size} objects (curl, loopback): to first byte median ${page.median.toFixed(2)} ms, p95 ${page.p95.toFixed(2)} ms; to last byte median ${page.last.toFixed(2)} ms; ${page.bytes} bytes of HTML`);
  }

  // Paging by cursor through a folder of many objects (BENCH_DEEP_OBJECTS,
  // 100,000): every page is followed by its "Next page" link, and the
  // first and last pages should cost the same.
  const deep = Number(process.env.BENCH_DEEP_OBJECTS ?? 100_000);
  if (deep > 0) {
    let started = performance.now();
    const name = (i) => `deep/f-${String(i).padStart(7, "0")}`;
    for (let i = 0; i < deep; i += 64) {
      await Promise.all(Array.from({ length: Math.min(64, deep - i) }, (_, j) =>
        api(server, ROOT, "PUT", `/buckets/bench/objects/${name(i + j)}`, "", "text/plain")));
    }
    console.log(`stored ${deep} empty objects in deep/ in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    let path = "/ui/buckets/bench?prefix=deep%2F";
    const times = [];
    let rows = 0;
    started = performance.now();
    while (path) {
      const asked = performance.now();
      const response = await fetch(`${server.web}${path}`, { headers: { cookie } });
      const html = await response.text();
      times.push(performance.now() - asked);
      if (response.status !== 200) throw new Error(`${path} answered ${response.status}`);
      rows += (html.match(/class="file"/g) ?? []).length;
      const next = html.match(/<a href="([^"]+)" rel="next">Next page<\/a>/);
      path = next ? next[1].replaceAll("&amp;", "&").replaceAll("&#38;", "&") : null;
    }
    const walked = (performance.now() - started) / 1000;
    if (rows !== deep) throw new Error(`the pages listed ${rows} files, not ${deep}`);
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const edge = Math.min(20, Math.floor(times.length / 2));
    console.log(`paged through ${deep} objects: ${times.length} pages of 200 in ${walked.toFixed(1)} s; median of the first ${edge} pages ${median(times.slice(0, edge)).toFixed(2)} ms, of the last ${edge} ${median(times.slice(-edge)).toFixed(2)} ms (whole page, node fetch)`);
  }

  // First load in a fresh browser: the page and everything it pulls in.
  const context = await browser.newContext();
  const [name, value] = cookie.split("=");
  await context.addCookies([{ name, value, url: server.web }]);
  const page = await context.newPage();
  const requests = [];
  page.on("requestfinished", (request) => requests.push(request));
  await page.goto(`${server.web}/ui/buckets/bench?prefix=photos%2F`, { waitUntil: "networkidle" });
  let transferred = 0;
  for (const request of requests) {
    const sizes = await request.sizes();
    transferred += sizes.responseBodySize + sizes.responseHeadersSize;
  }
  console.log(`first load of a folder page (200 entries): ${requests.length} requests, ${(transferred / 1024).toFixed(1)} KiB transferred`);

  // The same file up through aws-cli, then through the console in Chromium.
  const folder = tempDir("cistern-bench-");
  const file = join(folder, "big.bin");
  const fd = openSync(file, "w");
  const chunk = randomBytes(16 * 1024 * 1024);
  for (let written = 0; written < uploadMib; written += 16) writeSync(fd, chunk);
  closeSync(fd);
  const env = {
    ...process.env, AWS_ACCESS_KEY_ID: ROOT.name, AWS_SECRET_ACCESS_KEY: ROOT.password,
    AWS_DEFAULT_REGION: "us-east-1", AWS_EC2_METADATA_DISABLED: "true",
  };
  const aws = process.env.AWS_CLI ?? "aws";
  let started = performance.now();
  const cli = spawnSync(aws, ["--endpoint-url", server.s3, "s3", "cp", "--only-show-errors", file, "s3://bench/aws/big.bin"], { env, encoding: "utf8" });
  if (cli.status !== 0) throw new Error(cli.stderr);
  const cliSecs = (performance.now() - started) / 1000;

  await page.goto(`${server.web}/ui/buckets/bench`);
  await page.locator("#files").setInputFiles(file);
  started = performance.now();
  await page.getByRole("button", { name: "Upload" }).click();
  await page.locator(".upload-total .state").filter({ hasText: "1 of 1 finished" }).waitFor({ timeout: 600_000 });
  const consoleSecs = (performance.now() - started) / 1000;
  const cliSpeed = uploadMib / cliSecs;
  const consoleSpeed = uploadMib / consoleSecs;
  console.log(`${uploadMib} MiB upload: aws-cli ${cliSpeed.toFixed(0)} MiB/s (${cliSecs.toFixed(1)} s), console in Chromium ${consoleSpeed.toFixed(0)} MiB/s (${consoleSecs.toFixed(1)} s), console/aws-cli = ${(consoleSpeed / cliSpeed).toFixed(2)}`);
  rmSync(folder, { recursive: true, force: true });
  await context.close();
} finally {
  await browser.close();
  await server.stop();
}
