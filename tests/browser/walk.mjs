// Walks pages in headless Chromium and checks each with axe-core (WCAG 2.0/2.1 A and AA).
//
// Reads a JSON plan on stdin:
//   {"chromium": "/usr/bin/chromium", "screenshots": "/dir or null",
//    "pages": [{"name": "...", "url": "...", "cookies": [{"name", "value", "url"}], "width": 1280}]}
// Writes one JSON line per page on stdout:
//   {"name", "url", "status", "final_url", "title", "lang", "violations": [{id, impact, help, nodes: [target...]}]}
// A page that cannot be loaded is reported with "error"; the script itself exits 0 unless the
// plan is unreadable or the browser cannot start. Assertions live in the Python test.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import puppeteer from "puppeteer-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

const plan = JSON.parse(readFileSync(0, "utf8"));
const browser = await puppeteer.launch({
  executablePath: plan.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
});
try {
  for (const spec of plan.pages) {
    const page = await browser.newPage();
    const result = { name: spec.name, url: spec.url };
    try {
      await page.setViewport({ width: spec.width || 1280, height: 900 });
      if (spec.cookies && spec.cookies.length) {
        await browser.setCookie(...spec.cookies);
      } else {
        await browser.deleteCookie(...(await browser.cookies()));
      }
      const response = await page.goto(spec.url, { waitUntil: "load", timeout: 20000 });
      result.status = response ? response.status() : null;
      result.final_url = page.url();
      result.title = await page.title();
      result.lang = await page.evaluate(() => document.documentElement.lang);
      result.text = await page.evaluate(() => document.body.innerText.slice(0, 4000));
      await page.evaluate(AXE_SOURCE);
      const axe = await page.evaluate(
        (tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }),
        AXE_TAGS,
      );
      result.violations = axe.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => n.target.join(" ")),
      }));
      if (plan.screenshots) {
        await page.screenshot({ path: path.join(plan.screenshots, `${spec.name}.png`), fullPage: true });
      }
    } catch (err) {
      result.error = String(err && err.message ? err.message : err);
    } finally {
      await page.close();
    }
    process.stdout.write(JSON.stringify(result) + "\n");
  }
} finally {
  await browser.close();
}
