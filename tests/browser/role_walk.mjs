// Walks people through the pages as they would: sign in through the real forms, follow the menu,
// fill in forms, upload a file; checks every page it reaches with axe-core (WCAG 2.0/2.1 A and AA).
//
// Talks JSON lines over stdin/stdout. The first stdin line is the plan:
//   {"chromium": "/usr/bin/chromium", "screenshots": "/dir or null",
//    "journeys": [{"name": "...", "steps": [step, ...]}]}
// Steps (each journey runs in a browser context of its own: no cookies shared between people):
//   {"goto": url}                         load a page
//   {"type": selector, "text": "..."}     type into a field
//   {"type": selector, "ask": {...}}      type what the test answers: the driver writes
//                                         {"ask": {...}} to stdout and reads one line {"value": "..."}
//                                         from stdin (TOTP codes, the link from the mail)
//   {"goto_ask": {...}}                   load the URL the test answers
//   {"click": selector}                   click without waiting for a page (a checkbox)
//   {"upload": selector, "file": path}    choose a file
//   {"submit": selector, "name": "..."}   click and wait for the page it leads to; reports
//                                         {"submitted": name, "status", "final_url", "chain": [urls]}
//   {"check": "name"}                     report the page: status, URL, lang, text, the controls,
//                                         the selects' options, the textareas' values, axe violations
//   {"menu": "prefix", "origin": url}     check every link of the header's menu on `origin` (not the
//                                         account links): one {"check": "prefix path"} each
// Writes one JSON line per report; an error ends that journey with {"journey", "error"}.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";
import puppeteer from "puppeteer-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
const plan = JSON.parse((await lines.next()).value);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function ask(question) {
  say({ ask: question });
  const answer = await lines.next();
  if (answer.done) throw new Error("no answer to " + JSON.stringify(question));
  return JSON.parse(answer.value).value;
}

async function report(page, name, status) {
  const result = { check: name, status, final_url: page.url(), title: await page.title() };
  Object.assign(
    result,
    await page.evaluate(() => ({
      lang: document.documentElement.lang,
      text: document.body.innerText.slice(0, 8000),
      controls: [...document.querySelectorAll("main a, main button, main input[type=submit]")].map((e) =>
        (e.innerText || e.value || "").trim(),
      ),
      selects: Object.fromEntries(
        [...document.querySelectorAll("select[id]")].map((s) => [s.id, [...s.options].map((o) => o.text)]),
      ),
      textareas: Object.fromEntries([...document.querySelectorAll("textarea[name]")].map((t) => [t.name, t.value])),
      ids: [...document.querySelectorAll("main [id]")].map((e) => e.id),
    })),
  );
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
    const file = name.replace(/[^A-Za-z0-9_-]+/g, "_") + ".png";
    await page.screenshot({ path: path.join(plan.screenshots, file), fullPage: true });
  }
  say(result);
}

async function load(page, url) {
  const response = await page.goto(url, { waitUntil: "load", timeout: 20000 });
  return response ? response.status() : null;
}

const browser = await puppeteer.launch({
  executablePath: plan.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
});
try {
  for (const journey of plan.journeys) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.setDefaultTimeout(20000);
    let status = null;
    try {
      for (const step of journey.steps) {
        process.stderr.write(`${journey.name}: ${JSON.stringify(step)}\n`);
        if (step.goto) {
          status = await load(page, step.goto);
        } else if (step.goto_ask) {
          status = await load(page, await ask(step.goto_ask));
        } else if (step.type) {
          const text = step.ask ? await ask(step.ask) : step.text;
          await page.type(step.type, text);
        } else if (step.click) {
          await page.click(step.click);
        } else if (step.upload) {
          const input = await page.$(step.upload);
          if (!input) throw new Error("no file field " + step.upload);
          await input.uploadFile(step.file);
        } else if (step.submit) {
          const [response] = await Promise.all([
            page.waitForNavigation({ waitUntil: "load", timeout: 30000 }),
            page.click(step.submit),
          ]);
          status = response ? response.status() : null;
          const chain = response ? response.request().redirectChain().map((r) => r.url()) : [];
          say({ submitted: step.name, status, final_url: page.url(), chain });
        } else if (step.check) {
          await report(page, step.check, status);
        } else if (step.menu) {
          const origin = new URL(step.origin).origin;
          const hrefs = await page.evaluate(
            () => [...document.querySelectorAll("header nav a[href]")].map((a) => a.href),
          );
          // the menu's pages, not the account links nor the language switch (`?lang=`)
          const menu = [...new Set(hrefs)].filter(
            (h) => new URL(h).origin === origin && !h.includes("/auth/") && !new URL(h).searchParams.has("lang"),
          );
          for (const href of menu) {
            status = await load(page, href);
            await report(page, `${step.menu} ${new URL(href).pathname}`, status);
          }
        } else {
          throw new Error("unknown step " + JSON.stringify(step));
        }
      }
    } catch (err) {
      say({ journey: journey.name, error: String(err && err.message ? err.message : err), url: page.url() });
    } finally {
      await context.close();
    }
  }
} finally {
  await browser.close();
}
// The test keeps stdin open to answer questions: stop reading it, so the process can end.
input.close();
process.stdin.destroy();
