// Bundles the console into ../internal/console/dist, which kvsd embeds (go:embed): an
// index.html naming content-hashed assets (served immutable), plus a .gz beside each asset
// (served to browsers that accept gzip). hls.js is a chunk of its own, loaded with the first
// video. Prints every file's gzipped size and fails when the console without hls.js is over
// the budget.
import * as esbuild from 'esbuild';
import { gzipSync } from 'node:zlib';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'internal', 'console', 'dist');
const assets = join(dist, 'assets');
const budget = 300 * 1024; // gzipped bytes, hls.js excluded

rmSync(assets, { recursive: true, force: true });
rmSync(join(dist, 'index.html'), { force: true });
mkdirSync(assets, { recursive: true });

const result = await esbuild.build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true, splitting: true, format: 'esm', minify: true, metafile: true,
  target: ['chrome100', 'firefox100', 'safari15'],
  outdir: assets, entryNames: '[name]-[hash]', chunkNames: '[name]-[hash]', assetNames: '[name]-[hash]',
  legalComments: 'linked', logLevel: 'warning',
});

let js = '', css = '', total = 0, hls = 0;
const rows = [];
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  const name = basename(file);
  const bytes = readFileSync(join(assets, name));
  const gz = gzipSync(bytes, { level: 9 });
  writeFileSync(join(assets, name + '.gz'), gz);
  const isHls = Object.keys(out.inputs).some(i => i.includes('node_modules/hls.js/'));
  if (isHls) hls += gz.length; else total += gz.length;
  if (out.entryPoint && out.entryPoint.endsWith('src/main.js') && name.endsWith('.js')) {
    js = name;
    css = out.cssBundle ? basename(out.cssBundle) : '';
  }
  rows.push([name, bytes.length, gz.length, isHls]);
}

writeFileSync(join(dist, 'index.html'), `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>kvsd console</title>
${css ? `<link rel="stylesheet" href="assets/${css}">\n` : ''}<script type="module" src="assets/${js}"></script>
</head>
<body>
<div id="app"><noscript>The kvsd console needs JavaScript.</noscript></div>
</body>
</html>
`);

const kb = n => (n / 1024).toFixed(1) + ' KiB';
for (const [name, raw, gz, isHls] of rows.sort((a, b) => b[2] - a[2])) {
  console.log(`console: ${name.padEnd(34)} ${kb(raw).padStart(10)} ${kb(gz).padStart(10)} gzipped${isHls ? ' (hls.js)' : ''}`);
}
console.log(`console: ${kb(total)} gzipped without hls.js (budget ${kb(budget)}), hls.js ${kb(hls)}`);
if (total > budget) {
  console.error(`console: over the budget of ${kb(budget)} gzipped`);
  process.exit(1);
}
