// Issue 12's done-when path in a real browser against `make run` (CIM_DATA_DIR=/tmp/cimrun).
// node walk_done_when.mjs (from tests/browser, for puppeteer-core). Screenshots in /tmp/walk.
import puppeteer from "puppeteer-core";
import { execSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const INTAKE = "http://127.0.0.1:8000", ASSESS = "http://127.0.0.1:8001";
const DATA = "/tmp/cimrun", SHOTS = "/tmp/walk";
fs.mkdirSync(SHOTS, { recursive: true });
const accounts = fs.readFileSync("/tmp/run.log", "utf8");
function staff(email) {
  const line = accounts.split("\n").find((l) => l.includes(` ${email} `));
  const [, password] = line.match(/password (\S+)/);
  const [, secret] = line.match(/TOTP secret (\S+)/);
  return { email, password, secret };
}
const code = (secret) => execSync(`/work/main/.venv/bin/python -c "import pyotp; print(pyotp.TOTP('${secret}').now())"`).toString().trim();

const browser = await puppeteer.launch({
  executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let n = 0;
async function shot(page, name) {
  n += 1;
  await page.screenshot({ path: path.join(SHOTS, `${String(n).padStart(2, "0")}-${name}.png`), fullPage: true });
}
async function person() {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1100, height: 900 });
  return page;
}
async function submitForm(page, selector) {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
}
async function staffSignIn(email) {
  const page = await person();
  const who = staff(email);
  await page.goto(`${INTAKE}/auth/sign-in`);
  await page.type("#staff-email", who.email);
  await page.type("#staff-password", who.password);
  await page.type("#staff-code", code(who.secret));
  await submitForm(page, 'form[action="/auth/staff"] button[type=submit]');
  return page;
}
async function studentSignIn(email) {
  const page = await person();
  const before = new Set(fs.readdirSync(`${DATA}/mail/new`));
  await page.goto(`${INTAKE}/auth/sign-in`);
  await page.type("#link-email", email);
  await submitForm(page, 'form[action="/auth/link"] button[type=submit]');
  let mail;
  for (let i = 0; i < 50 && !mail; i++) {
    mail = fs.readdirSync(`${DATA}/mail/new`).find((f) => !before.has(f));
    if (!mail) await new Promise((r) => setTimeout(r, 200));
  }
  const text = fs.readFileSync(`${DATA}/mail/new/${mail}`, "utf8").replace(/=\r?\n/g, "").replace(/=3D/g, "=");
  const link = text.match(/http:\/\/127\.0\.0\.1:8000\/auth\/link\/[A-Za-z0-9_\-.]+/)[0];
  await page.goto(link);
  await submitForm(page, "main form button[type=submit]");
  return page;
}
async function text(page) { return page.evaluate(() => document.querySelector("main").innerText); }
async function waitText(page, url, needle, what) {
  for (let i = 0; i < 60; i++) {
    await page.goto(url);
    if ((await text(page)).includes(needle)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`never saw ${what}: ${needle}`);
}

// The student and their report
const tova = await studentSignIn("tova.exempel@example.org");
const myCim = tova.url();
console.log("student at", myCim);
await shot(tova, "student-my-cim-submitted");
const sid = myCim.split("/students/")[1].split(/[/?]/)[0];

// The coordinator assigns two assessors from the report's page
const cora = await staffSignIn("coordinator@example.org");
await cora.goto(`${ASSESS}/queue`);
await shot(cora, "coordinator-queue");
const reportUrl = await cora.evaluate((name) => {
  const row = [...document.querySelectorAll("tbody tr")].find((r) => r.innerText.includes(name));
  return row.querySelector('a[href*="/reports/"]').href;
}, "Tova Exempel");
console.log("report", reportUrl);
for (const assessor of ["Bo Bedömare", "Siv Granskare"]) {
  await cora.goto(reportUrl);
  const value = await cora.evaluate((name) =>
    [...document.querySelectorAll("select[name=assessor] option")].find((o) => o.textContent.includes(name)).value, assessor);
  await cora.select("select[name=assessor]", value);
  await submitForm(cora, 'form[action$="/assign"] button[type=submit]');
}
await shot(cora, "coordinator-report-assigned");

// Both assessors review: one approves, one asks for a revision
async function review(email, recommendation, signedIn) {
  const page = signedIn || await staffSignIn(email);
  await page.goto(`${reportUrl}/reviews`);
  await page.evaluate((rec) => {
    for (const radio of document.querySelectorAll('input[type=radio][value="met"]')) radio.checked = true;
    document.querySelector(`input[name=recommendation][value="${rec}"]`).checked = true;
  }, recommendation);
  await shot(page, `assessor-${email.split("@")[0]}-review-form`);
  await submitForm(page, 'form[action$="/reviews"] button[type=submit]');
  await shot(page, `assessor-${email.split("@")[0]}-reviewed`);
  return page;
}
const bo = await review("assessor@example.org", "approve");
const siv = await review("assessor2@example.org", "revise");

// The coordinator decides on the disagreement: revise, with a summary for the student
await cora.goto(`${reportUrl}/reviews`);
await cora.evaluate(() => { document.querySelector('input[name=outcome][value="revise"]').checked = true; });
await cora.type("textarea[name=summary]", "Compare the two welfare systems you met, and relate them to your future profession.");
await submitForm(cora, 'form[action$="/decision"] button[type=submit]');
await shot(cora, "coordinator-revision-requested");

// The student sees it, and resubmits
await waitText(tova, myCim, "Compare the two welfare systems", "the revision on My CIM");
await shot(tova, "student-revision-requested");
const resubmit = await tova.evaluate(() => [...document.querySelectorAll("a")].find((a) => a.href.includes("/resubmit")).href);
await tova.goto(resubmit);
await shot(tova, "student-resubmit-form");
const first = await tova.$("textarea");
await first.click({ clickCount: 3 });
await first.type(" I compared the welfare systems of France and Sweden, and what it means for my work.");
await submitForm(tova, "main form button[type=submit]");
await shot(tova, "student-resubmitted");

// The round goes back to the same assessors, who see what changed, and both approve
await waitText(bo, `${reportUrl}/reviews`, "Round 2", "round 2 on the reviews page");
await bo.goto(`${reportUrl}/changes`);
await shot(bo, "assessor-changes");
await review("assessor@example.org", "approve", bo);
await review("assessor2@example.org", "approve", siv);
await waitText(tova, myCim, "Book an occasion", "the approval on My CIM");
await shot(tova, "student-approved");

// The coordinator publishes an occasion starting in two minutes
await cora.goto(`${ASSESS}/presentations`);
const start = new Date(Date.now() + 2 * 60 * 1000);
const lund = new Intl.DateTimeFormat("sv-SE", { timeZone: "Europe/Stockholm", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).format(start);
const [day, hm] = lund.split(" ");
const [h, m] = hm.split(":").map(Number);
const startAt = `${String(h).padStart(2, "0")}:${String(m + 1).padStart(2, "0")}`.replace(/:60$/, ":59");
await cora.select("select[name=kind]", "international_cafe");
await cora.$eval("input[name=day]", (el, v) => { el.value = v; }, day);
await cora.$eval("input[name=starts]", (el, v) => { el.value = v; }, startAt);
const endAt = `${String((h + 1) % 24).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
await cora.$eval("input[name=ends]", (el, v) => { el.value = v; }, h < 23 ? endAt : "23:59");
await cora.type("input[name=place]", "Allhelgona kyrkogata 8, room 128");
await cora.$eval("input[name=capacity]", (el) => { el.value = "12"; });
await shot(cora, "coordinator-publish-form");
await submitForm(cora, 'form[action="/presentations"] button[type=submit]');
await shot(cora, "coordinator-occasion");
const occasionUrl = cora.url();

// The student books it from their page
await tova.goto(`${ASSESS}/students/${sid}/presentation`);
await shot(tova, "student-presentation-page");
await submitForm(tova, "td form button[type=submit]");
await shot(tova, "student-booked");
await waitText(tova, myCim, "presentation booked", "the booking on My CIM");
await shot(tova, "student-my-cim-booked");

// Once it has started, the coordinator records that she presented
const wait = new Date(`${day}T${startAt}:05`).getTime();
console.log("waiting for the occasion to start", startAt);
for (;;) {
  await cora.goto(occasionUrl);
  if (await cora.$('button[value="held"]')) break;
  await new Promise((r) => setTimeout(r, 5000));
}
await submitForm(cora, 'button[value="held"]');
await shot(cora, "coordinator-recorded-held");
await waitText(tova, myCim, "Eligible for the diploma", "eligibility on My CIM");
await shot(tova, "student-eligible");
await tova.goto(`${myCim}?lang=sv`);
await shot(tova, "student-eligible-sv");
console.log("done", wait);
await browser.close();
