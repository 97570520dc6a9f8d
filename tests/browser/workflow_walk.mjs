// Walks several people through one shared story, taking turns (issue 12's "done when": a report
// assigned, reviewed, revised, resubmitted, approved, presented). Each person keeps a browser
// context of their own for the whole walk (their own cookies: signed in once), and every step
// names who takes it. Pages are checked with axe-core (WCAG 2.0/2.1 A and AA).
//
// Talks JSON lines over stdin/stdout, as role_walk.mjs. The first stdin line is the plan:
//   {"chromium": "/usr/bin/chromium", "screenshots": "/dir or null", "steps": [step, ...]}
// Every step has "as": the person taking it. Steps:
//   {"goto": url}                          load a page
//   {"goto_ask": {...}}                    load the URL the test answers (the driver writes
//                                          {"ask": {...}} and reads one line {"value": "..."})
//   {"ask": {...}}                         only ask (the test acts meanwhile, e.g. moves the clock);
//                                          with "remember": "NAME", later steps' "{{NAME}}" is the answer
//   {"type": selector, "text" | "ask_text"}
//                                          type into a field (ask_text: what the test answers)
//   {"fill": selector, "value": "..."}     set a field's value at once (date and time inputs,
//                                          replacing a textarea's text)
//   {"select": selector, "value": "..."}   choose an option
//   {"click": selector}                    click without waiting for a page (a radio, a checkbox)
//   {"click_all": selector}                click every element matching
//   {"submit": selector, "name": "..."}    click and wait for the page it leads to; reports
//                                          {"submitted": name, "status", "final_url", "chain"};
//                                          with "remember": "NAME", later steps' "{{NAME}}" is its URL
//   {"wait_text": "...", "url": url, "timeout": s}
//                                          load `url` until its text holds "..." (the workers
//                                          carry events between the services meanwhile)
//   {"check": "name"}                      report the page: status, URL, lang, text, axe violations
// Writes one JSON line per report; an error ends the walk with {"error", "step", "url"}.
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
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
      text: document.body.innerText.slice(0, 12000),
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
const people = new Map(); // name -> {page, status}

async function person(name) {
  if (!people.has(name)) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.setDefaultTimeout(20000);
    people.set(name, { page, status: null });
  }
  return people.get(name);
}

const remembered = {};
let current = null;
try {
  for (const planned of plan.steps) {
    const step = JSON.parse(
      JSON.stringify(planned).replace(/\{\{(\w+)\}\}/g, (whole, name) => remembered[name] ?? whole),
    );
    current = step;
    process.stderr.write(`${new Date().toISOString()} ${JSON.stringify(step)}\n`);
    const who = await person(step.as);
    const page = who.page;
    if (step.goto) {
      who.status = await load(page, step.goto);
    } else if (step.goto_ask) {
      who.status = await load(page, await ask(step.goto_ask));
    } else if (step.ask) {
      const value = await ask(step.ask);
      if (step.remember) remembered[step.remember] = value;
    } else if (step.type) {
      await page.type(step.type, step.ask_text ? await ask(step.ask_text) : step.text);
    } else if (step.fill) {
      await page.$eval(
        step.fill,
        (element, value) => {
          element.value = value;
          element.dispatchEvent(new Event("input", { bubbles: true }));
          element.dispatchEvent(new Event("change", { bubbles: true }));
        },
        step.value,
      );
    } else if (step.select) {
      const chosen = await page.select(step.select, step.value);
      if (!chosen.includes(step.value)) throw new Error(`no option ${step.value} in ${step.select}`);
    } else if (step.click) {
      await page.click(step.click);
    } else if (step.click_all) {
      const found = await page.$$(step.click_all);
      if (!found.length) throw new Error("nothing matches " + step.click_all);
      for (const element of found) await element.click();
    } else if (step.submit) {
      const [response] = await Promise.all([
        page.waitForNavigation({ waitUntil: "load", timeout: 30000 }),
        page.click(step.submit),
      ]);
      who.status = response ? response.status() : null;
      const chain = response ? response.request().redirectChain().map((r) => r.url()) : [];
      say({ submitted: step.name, status: who.status, final_url: page.url(), chain });
      if (step.remember) remembered[step.remember] = page.url();
    } else if (step.wait_text) {
      const until = Date.now() + (step.timeout || 30) * 1000;
      for (;;) {
        who.status = await load(page, step.url);
        const text = await page.evaluate(() => document.body.innerText);
        if (text.includes(step.wait_text)) break;
        if (Date.now() > until) throw new Error(`"${step.wait_text}" did not appear on ${step.url}`);
        await sleep(400);
      }
    } else if (step.check) {
      await report(page, step.check, who.status);
    } else {
      throw new Error("unknown step " + JSON.stringify(step));
    }
  }
} catch (err) {
  const where = current && people.has(current.as) ? people.get(current.as).page.url() : null;
  say({ error: String(err && err.message ? err.message : err), step: current, url: where });
} finally {
  await browser.close();
}
// The test keeps stdin open to answer questions: stop reading it, so the process can end.
input.close();
process.stdin.destroy();
