// Opens every chapter of the built book in headless Chromium and fails on a
// console error, a page error, or an asset that does not load; then checks
// that admonitions are styled and that search finds "rate limit", and saves
// a screenshot of one chapter.
//
// Usage: node check-book.mjs BOOK_HTML_DIR ARTIFACT_DIR
import { chromium } from "playwright-core";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const [bookDir, artifactDir] = process.argv.slice(2);
if (!bookDir || !artifactDir) {
  console.error("usage: node check-book.mjs BOOK_HTML_DIR ARTIFACT_DIR");
  process.exit(2);
}

const types = {
  ".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
  ".png": "image/png", ".woff2": "font/woff2", ".woff": "font/woff", ".ttf": "font/ttf", ".json": "application/json",
};

// A static server on a free loopback port, for the duration of the check.
const server = http.createServer((request, response) => {
  const url = new URL(request.url, "http://localhost");
  let file = path.join(bookDir, decodeURIComponent(url.pathname));
  if (file.endsWith("/")) file = path.join(file, "index.html");
  if (!file.startsWith(path.resolve(bookDir)) && !file.startsWith(bookDir)) {
    response.writeHead(403).end();
    return;
  }
  fs.readFile(file, (error, data) => {
    if (error) {
      response.writeHead(404).end("not found");
      return;
    }
    response.writeHead(200, { "content-type": types[path.extname(file)] || "application/octet-stream" }).end(data);
  });
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

let failures = 0;
const pass = (what) => console.log(`PASS  ${what}`);
const fail = (what) => { console.log(`FAIL  ${what}`); failures++; };

try {
  const chapters = fs.readdirSync(bookDir)
    .filter((f) => f.endsWith(".html") && !["print.html", "404.html", "toc.html"].includes(f))
    .sort();
  const page = await browser.newPage();
  let problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`failed to load ${r.url()}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`); });

  // The first chapter with an admonition, for the style check below; and
  // every archive a chapter links to.
  let withAdmonition = null;
  const archives = new Set();
  for (const chapter of chapters) {
    problems = [];
    await page.goto(`${base}/${chapter}`, { waitUntil: "networkidle" });
    const title = await page.locator("main h1").first().textContent().catch(() => null);
    if (!title) problems.push("no <h1> in <main>");
    if (!withAdmonition && (await page.locator(".admonition").count()) > 0) withAdmonition = chapter;
    for (const href of await page.locator('a[href$=".tar.gz"]').evaluateAll((links) => links.map((a) => a.href))) {
      archives.add(href);
    }
    // Commands a reader types (bash blocks not captioned as a file) fit the
    // page at its default width: no horizontal scrolling.
    const wide = await page.locator("main pre").evaluateAll((pres) => pres
      .filter((pre) => pre.querySelector("code.language-bash"))
      .filter((pre) => !(pre.previousElementSibling && pre.previousElementSibling.querySelector(".filename")))
      .filter((pre) => pre.scrollWidth > pre.clientWidth + 1)
      .map((pre) => pre.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "")));
    for (const line of wide) problems.push(`a command scrolls sideways: ${line.trim()}`);
    if (problems.length === 0) pass(`${chapter}: loads with no errors ("${title.trim()}")`);
    else fail(`${chapter}: ${problems.join("; ")}`);
  }

  // The step archives download, as gzip, the same bytes as the built site holds.
  if (archives.size === 0) fail("no chapter links to a step archive");
  for (const href of archives) {
    const response = await page.request.get(href);
    const body = await response.body();
    const local = fs.readFileSync(path.join(bookDir, new URL(href).pathname));
    if (response.status() === 200 && body[0] === 0x1f && body[1] === 0x8b && body.equals(local)) {
      pass(`${new URL(href).pathname} downloads (${body.length} bytes of gzip)`);
    } else {
      fail(`${href}: status ${response.status()}, ${body.length} bytes`);
    }
  }

  // Admonitions: the admonish stylesheet gives them a border and a title bar.
  if (!withAdmonition) fail("no chapter has an admonition to check the style of");
  await page.goto(`${base}/${withAdmonition}`, { waitUntil: "networkidle" });
  const styled = await page.evaluate(() => {
    const box = document.querySelector(".admonition");
    const title = box && box.querySelector(".admonition-title");
    if (!box || !title) return null;
    const b = getComputedStyle(box), t = getComputedStyle(title);
    return { border: b.borderLeftWidth, background: t.backgroundColor };
  });
  if (styled && styled.border !== "0px" && styled.background !== "rgba(0, 0, 0, 0)") {
    pass(`admonitions are styled (border ${styled.border}, title background ${styled.background})`);
  } else {
    fail(`admonitions are not styled: ${JSON.stringify(styled)}`);
  }
  await page.locator(".admonition").first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(artifactDir, "admonition.png"), fullPage: false });
  // The first page of part one, as a reader meets it.
  await page.goto(`${base}/hello-plugin.html`, { waitUntil: "networkidle" });
  await page.setViewportSize({ width: 1100, height: 1500 });
  await page.screenshot({ path: path.join(artifactDir, "hello-plugin.png"), fullPage: false });
  await page.locator("img").nth(1).scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(artifactDir, "hello-plugin-envoy.png"), fullPage: false });
  pass(`screenshots saved in ${artifactDir}`);

  // Search.
  await page.goto(`${base}/index.html`, { waitUntil: "networkidle" });
  await page.click("#search-toggle");
  // mdBook searches on key events, so type rather than fill.
  await page.locator("#searchbar").pressSequentially("rate limit");
  try {
    await page.waitForSelector("#searchresults li", { timeout: 5000 });
    const hits = await page.locator("#searchresults li").count();
    pass(`search for "rate limit" returns ${hits} result(s)`);
  } catch {
    fail(`search for "rate limit" returned nothing`);
  }
} finally {
  await browser.close();
  server.close();
}

console.log(failures === 0 ? "browser check passed" : `${failures} browser check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
