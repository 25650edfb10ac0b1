// Lighthouse (mobile) on the pages given as arguments; prints each score and exits 1 when any
// of performance, accessibility and best practices is under 0.95. The two HTTPS audits are
// skipped: plain HTTP on a school LAN cannot pass them.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ART = process.env.ARTIFACTS;
const bin = path.join(here, 'node_modules', '.bin', 'lighthouse');
let ok = true;
for (const [i, url] of process.argv.slice(2).entries()) {
  const out = path.join(ART, `lighthouse-${i}.json`);
  const profile = fs.mkdtempSync(path.join(ART, 'lh-profile-'));
  try {
    execFileSync(bin, [url, '--quiet', '--form-factor=mobile', '--only-categories=performance,accessibility,best-practices',
      '--skip-audits=is-on-https,redirects-http', '--output=json', `--output-path=${out}`,
      `--chrome-flags=--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --user-data-dir=${profile}`],
      { env: { ...process.env, CHROME_PATH: '/usr/bin/chromium' }, stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (e) {
    // Lighthouse exits non-zero for some audits this Chromium cannot run; the report decides.
    if (!fs.existsSync(out)) throw e;
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const report = JSON.parse(fs.readFileSync(out, 'utf8'));
  const scores = Object.fromEntries(Object.entries(report.categories).map(([k, c]) => [k, c.score]));
  console.log(`lighthouse ${url}: ${JSON.stringify(scores)} (report ${out})`);
  for (const [name, score] of Object.entries(scores)) {
    if (!(score >= 0.95)) {
      ok = false;
      const failing = Object.values(report.audits).filter((a) => a.score !== null && a.score < 1 && a.scoreDisplayMode !== 'informative' && a.scoreDisplayMode !== 'notApplicable').map((a) => `${a.id}=${a.score}`);
      console.log(`  ${name} ${score} < 0.95; audits below 1: ${failing.join(', ')}`);
    }
  }
}
process.exit(ok ? 0 : 1);
