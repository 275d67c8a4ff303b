// What every console scenario needs: a fresh Cistern server on loopback
// ports with its own data directory, Debian's Chromium driven headless by
// playwright-core, screenshots of each page visited, and small helpers
// for the JSON API.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const binary = process.env.CISTERN_BIN ?? join(repo, "target", "debug", "cistern");
const shotsRoot = process.env.CISTERN_SCREENSHOTS ?? join(repo, "target", "console-screenshots");

export const ROOT = { name: "admin", password: "console-test-password" };

/** Servers still running, killed if the test process ends without them. */
const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Starts a server; resolves once it prints the addresses it listens on. */
export async function startServer(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), "cistern-console-"));
  const child = spawn(binary, [
    "serve", "--data-dir", dataDir,
    "--s3-listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0",
    "--root-user", ROOT.name, "--root-password", ROOT.password,
    ...extraArgs,
  ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  running.add(child);
  child.on("exit", () => running.delete(child));
  let log = "";
  const addresses = new Promise((resolve, reject) => {
    const look = (chunk) => {
      log += chunk.toString();
      // eslint-disable-next-line no-control-regex
      const plain = log.replace(/\u001b\[[0-9;]*m/g, "");
      const found = plain.match(/listening s3=(\S+) web=(\S+)/);
      if (found) {
        clearTimeout(timer);
        resolve({ s3: found[1], web: found[2] });
      }
    };
    child.stdout.on("data", look);
    child.stderr.on("data", look);
    child.on("exit", (code) => reject(new Error(`cistern exited (${code}) before listening:\n${log}`)));
    const timer = setTimeout(() => reject(new Error(`cistern did not start within 30 s:\n${log}`)), 30_000);
  });
  const { s3, web } = await addresses;
  return {
    web: `http://${web}`,
    s3: `http://${s3}`,
    dataDir,
    log: () => log,
    /** SIGTERM, as an operator stops it; a server that is still running
     *  10 s later is killed and the scenario fails with its log. */
    async stop() {
      let stuck = false;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        child.kill("SIGTERM");
        const timer = setTimeout(() => { stuck = true; child.kill("SIGKILL"); }, 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
      if (stuck) throw new Error(`cistern did not stop within 10 s of SIGTERM:\n${log.slice(-4000)}`);
    },
  };
}

/** Debian's Chromium, headless, with a new user data dir per launch. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
}

/** Saves numbered full-page screenshots of one scenario under target/. */
export function camera(scenario) {
  const folder = join(shotsRoot, scenario);
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  let count = 0;
  return async (page, name) => {
    count += 1;
    const file = join(folder, `${String(count).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  };
}

/** A JSON API call with HTTP Basic credentials (raw bodies may name their type). */
export async function api(server, who, method, path, body, contentType) {
  const headers = { authorization: `Basic ${Buffer.from(`${who.name}:${who.password}`).toString("base64")}` };
  let payload = body;
  if (body !== undefined && !(body instanceof Uint8Array) && typeof body !== "string") {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  if (contentType) headers["content-type"] = contentType;
  const response = await fetch(`${server.web}/api/v1${path}`, { method, headers, body: payload });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: response.status, body: json, headers: response.headers };
}

/** Signs in through the form; lands on the buckets page. */
export async function signIn(page, server, who) {
  await page.goto(`${server.web}/ui/sign-in`);
  await page.getByLabel("Name").fill(who.name);
  await page.getByLabel("Password").fill(who.password);
  await Promise.all([page.waitForURL(/\/ui\/buckets/), page.getByRole("button", { name: "Sign in" }).click()]);
}

export const tempDir = (prefix) => mkdtempSync(join(tmpdir(), prefix));

/** Calls `check` until it returns something truthy, for at most `ms`. */
export async function pollUntil(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
