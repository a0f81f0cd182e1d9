#!/usr/bin/env node
// Runs before `npm start` and `npm test` (prestart, pretest): installs the dependencies with
// `npm ci` when node_modules is missing or older than package-lock.json, so a fresh clone
// needs no separate install step. When everything is in place it costs one stat of two
// files: a timestamp check, never a reinstall.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
};

const lock = mtime(join(root, 'package-lock.json'));
// npm writes node_modules/.package-lock.json at the end of every install.
const installed = mtime(join(root, 'node_modules', '.package-lock.json'));
if (installed !== undefined && (lock === undefined || installed >= lock)) process.exit(0);

process.stderr.write(
  installed === undefined
    ? 'statesmith: node_modules is missing; installing the dependencies (npm ci) first\n'
    : 'statesmith: package-lock.json is newer than node_modules; installing the dependencies (npm ci) first\n',
);
const npm = process.env.npm_execpath;
const result = npm
  ? spawnSync(process.execPath, [npm, 'ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' })
  : spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
if (result.status !== 0) {
  process.stderr.write(`statesmith: npm ci failed (exit ${result.status ?? result.signal}); run it yourself to see why\n`);
  process.exit(result.status ?? 1);
}
