// Where an export's CPU goes, step by step (issue 24): one Chromium, one page, the
// same charts exported N times by each path, and for every step the CPU seconds
// of Chromium's processes (read from /proc) and of node (process.cpuUsage).
//
//   node profile.mjs PAYLOADS.json [N]
//
// PAYLOADS.json: {"kind": Highcharts options, ...}, e.g. from tests/bench_pipeline.py.
// Paths: "stock" repeats, call for call, what highcharts-export-server 6.0.0 does per
// export (lib/export.js, then the pool's clean-up, a new page every 40 exports);
// "ours" is what render.mjs does; "svg" (only when PROFILE_PATHS names it) draws the
// chart and reads its SVG, no picture. Prints one JSON object on stdout.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

import puppeteer from 'puppeteer';

import { clearPage, clearPageResources } from './node_modules/highcharts-export-server/lib/browser.js';
import { setupHighcharts, triggerExport } from './node_modules/highcharts-export-server/lib/highcharts.js';

import { launchOptions, pageSources, Renderer, TEMPLATE } from './render.mjs';

const TICKS = 100; // USER_HZ

/** CPU seconds used so far by `root` and every process below it, by pid. */
const treeCpu = (root) => {
  const parents = new Map();
  const cpu = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, 'utf8').split(') ').pop().split(' ');
      parents.set(Number(name), Number(fields[1]));
      // utime, stime, and cutime, cstime: the CPU of children that ended (a closed page's renderer)
      cpu.set(Number(name), fields.slice(11, 15).reduce((sum, value) => sum + Number(value), 0) / TICKS);
    } catch {
      // ended meanwhile
    }
  }
  const tree = new Map();
  for (const [pid, seconds] of cpu) {
    for (let up = pid; up > 1; up = parents.get(up) || 0) {
      if (up === root) {
        tree.set(pid, seconds);
        break;
      }
    }
  }
  return tree;
};

/** CPU seconds between two treeCpu readings: the sum of totals, so a process that ended
 * meanwhile counts once (its earlier CPU in `before`, its total in its parent's cutime). */
const spent = (before, after) => {
  const total = (tree) => [...tree.values()].reduce((sum, seconds) => sum + seconds, 0);
  return total(after) - total(before);
};

const nodeCpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

/** Time each named step of `exportOnce` over `count` exports: CPU ms per export of Chromium and node. */
const profile = async (browserPid, count, exportOnce) => {
  const steps = {};
  const step = async (name, work) => {
    const chromium = treeCpu(browserPid);
    const node = nodeCpu();
    const wall = performance.now();
    const result = await work();
    const entry = (steps[name] ||= { chromium: 0, node: 0, wall: 0 });
    entry.chromium += spent(chromium, treeCpu(browserPid));
    entry.node += nodeCpu() - node;
    entry.wall += (performance.now() - wall) / 1000;
    return result;
  };
  for (let i = 0; i < count; i++) {
    await exportOnce(step, i);
  }
  for (const entry of Object.values(steps)) {
    for (const key of Object.keys(entry)) entry[key] = (1000 * entry[key]) / count;
  }
  return steps;
};

// ---- the stock path, as highcharts-export-server 6.0.0 runs one export
const STOCK_WORK_LIMIT = 40; // config.json's pool.workLimit: a new page after this many exports

const stockPage = async (browser) => {
  const page = await browser.newPage();
  await page.setCacheEnabled(false);
  await page.setContent(TEMPLATE, { waitUntil: 'domcontentloaded' });
  await page.addScriptTag({ content: pageSources() });
  await page.evaluate(setupHighcharts);
  return page;
};

const stockOptions = (width, height) => ({
  export: {
    type: 'png',
    constr: 'chart',
    width,
    height,
    scale: 1,
    globalOptions: 'null',
    themeOptions: 'null'
  },
  customLogic: {}
});

let last = null; // the last PNG a path made (base64 or a Buffer), for PROFILE_SAVE

const stockPath = async (browser, chart, count, width, height) => {
  let page = await stockPage(browser);
  const steps = await profile(browser.process().pid, count, async (step, i) => {
    if (i > 0 && i % STOCK_WORK_LIMIT === 0) {
      await step('new page (every 40 exports)', async () => {
        await page.close();
        page = await stockPage(browser);
      });
    }
    const options = structuredClone(chart);
    options.chart.width = width;
    options.chart.height = height;
    await step('chart: triggerExport', () => page.evaluate(triggerExport, options, stockOptions(width, height), false));
    const size = await step('size and clip', async () => {
      const found = await page.evaluate(() => {
        const { chartHeight, chartWidth } = window.Highcharts.charts[0];
        document.body.style.zoom = 1;
        return { chartHeight, chartWidth };
      });
      const clip = await page.$eval('#chart-container', (element) => {
        const { x, y } = element.getBoundingClientRect();
        return { x, y };
      });
      return { ...found, ...clip };
    });
    await step('setViewport', () =>
      page.setViewport({ width: size.chartWidth, height: size.chartHeight, deviceScaleFactor: 1 })
    );
    last = await step('screenshot (beyond viewport, transparent)', () =>
      page.screenshot({
        type: 'png',
        encoding: 'base64',
        clip: { x: size.x, y: size.y, width: size.chartWidth, height: size.chartHeight },
        captureBeyondViewport: true,
        fullPage: false,
        optimizeForSpeed: true,
        omitBackground: true
      })
    );
    await step('clean-up: destroy chart, remove tags', () => clearPageResources(page, []));
    await step('clean-up: pool release (body reset)', () => clearPage(page, false));
  });
  await page.close();
  return steps;
};

// ---- paths on one render.mjs page: `exportOnce(renderer, step)` is one export
const rendererPath = (exportOnce) => async (browser, chart, count, width, height) => {
  const renderer = new Renderer(async () => browser, { width, height });
  await renderer.open();
  const steps = await profile(browser.process().pid, count, async (step) => {
    last = await exportOnce(renderer, chart, width, height, step);
  });
  await renderer.close();
  return steps;
};

// ---- our path: render.mjs
const ourPath = rendererPath((renderer, chart, width, height, step) => renderer.render(chart, { width, height }, step));

// ---- the chart alone, no picture: Highcharts' drawing and its SVG markup, what Chromium
// would still do if the render stage rasterised SVG itself (PROFILE_PATHS=ours,svg;
// README: the SVG route, measured and set aside)
const svgPath = rendererPath(async ({ page }, chart, width, height, step) => {
  await step('chart', () => page.evaluate((...args) => window.drawChart(...args), chart, width, height, null, null));
  return step('SVG markup', () => page.evaluate(() => document.querySelector('#container svg').outerHTML));
});

const PATHS = { stock: stockPath, ours: ourPath, svg: svgPath };

const main = async () => {
  const [file, countText = '200'] = process.argv.slice(2);
  const payloads = JSON.parse(readFileSync(file, 'utf8'));
  const count = Number(countText);
  const config = JSON.parse(readFileSync(new URL('./config.json', import.meta.url), 'utf8'));
  const args = [...config.puppeteer.args, ...(process.env.PROFILE_ARGS || '').split(' ').filter(Boolean)];
  const browser = await puppeteer.launch(
    launchOptions(args, process.env.PROFILE_DIR, process.env.PUPPETEER_EXECUTABLE_PATH || '/usr/lib/chromium/chromium')
  );
  const paths = (process.env.PROFILE_PATHS || 'stock,ours').split(',');
  const width = 800;
  const height = 400;
  const result = {};
  try {
    for (const [kind, chart] of Object.entries(payloads)) {
      const points = chart.series.reduce((sum, series) => sum + series.data.length, 0);
      // warm-up, then the measured rounds; stock and ours alternate so drift weighs on both
      result[kind] = { points };
      for (const path of paths) {
        await PATHS[path](browser, chart, 5, width, height);
        result[kind][path] = await PATHS[path](browser, chart, count, width, height);
        if (process.env.PROFILE_SAVE) {
          if (path === 'svg') {
            writeFileSync(`${process.env.PROFILE_SAVE}/${kind}-${path}.svg`, last);
          } else {
            const png = typeof last === 'string' ? Buffer.from(last, 'base64') : last;
            writeFileSync(`${process.env.PROFILE_SAVE}/${kind}-${path}.png`, png);
          }
        }
      }
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
