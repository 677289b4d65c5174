// One Chromium page that draws Highcharts charts to PNG (issue 24): the work the
// package's export path does per export, without the parts that cost CPU and change
// nothing in the picture (README "Benchmarks", exporter/profile.mjs measures each).
//
// - The page is made once: the package's own template and the same Highcharts scripts
//   (node_modules/highcharts, config.json's lists), loaded once, not every 40 exports.
// - One call into the page per chart: it destroys the previous chart and draws the new
//   one with the options the package's triggerExport would give it (animation off,
//   exporting and series labels off, theme, global options set and reset), without
//   wrapping Chart.prototype.init again on every export, and without the accessibility
//   module's screen-reader DOM, which no pixel shows.
// - The viewport is the chart's size, set only when the size changes, and the page's
//   background is transparent once for all (omitBackground set and reset it per shot).
// - One screenshot of the viewport (Page.captureScreenshot over the page's own CDP
//   session), not one "beyond the viewport", which resizes the page's surface twice.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODULES = join(dirname(fileURLToPath(import.meta.url)), 'node_modules');
const PACKAGE = join(MODULES, 'highcharts-export-server');
const HIGHCHARTS = join(MODULES, 'highcharts');

/** The package's page template (templates/template.html), as its pages start. */
export const TEMPLATE = readFileSync(join(PACKAGE, 'templates', 'template.html'), 'utf8');

let sources = null;

/** The Highcharts scripts of config.json's `highcharts` lists, read once from node_modules/highcharts. */
export const pageSources = (config = null) => {
  if (sources === null) {
    const highcharts = (config || JSON.parse(readFileSync(new URL('./config.json', import.meta.url)))).highcharts;
    const files = [
      ...highcharts.coreScripts,
      ...highcharts.moduleScripts.map((name) => join('modules', name)),
      ...highcharts.indicatorScripts.map((name) => join('indicators', name))
    ];
    sources = files.map((file) => readFileSync(join(HIGHCHARTS, `${file}.js`), 'utf8')).join(';\n');
  }
  return sources;
};

/** puppeteer.launch's options, as the package launches its browser: config.json's arguments. */
export const launchOptions = (args, userDataDir, executablePath, env = process.env) => ({
  headless: 'shell',
  executablePath,
  env,
  userDataDir,
  args: [...args],
  handleSIGINT: false,
  handleSIGTERM: false,
  handleSIGHUP: false,
  waitForInitialPage: false, // config.json's --no-startup-window: there is none
  defaultViewport: null
});

// Runs inside the page, once: Highcharts without animation, and the draw function.
function setupPage() {
  /* global Highcharts */
  Highcharts.animObject = () => ({ duration: 0 });
  const { merge, getOptions, setOptions } = Highcharts;
  window.drawChart = (userOptions, width, height, globalOptions, themeOptions) => {
    for (const old of Highcharts.charts) {
      old?.destroy();
    }
    Highcharts.charts.length = 0;
    const pristine = globalOptions ? merge(false, {}, getOptions()) : null;
    const user = merge(userOptions, { chart: { width, height } });
    const final = merge(false, themeOptions, user, { chart: { animation: false } });
    // What the package's wrap of Chart.prototype.init adds, once.
    // The accessibility module's screen-reader DOM (an element per point, descriptions)
    // reaches no pixel of a PNG: off. It was a third of the CPU of a small chart.
    const chartOptions = merge(final, { accessibility: { enabled: false } }, {
      exporting: { enabled: false },
      plotOptions: { series: { label: { enabled: false } } },
      tooltip: {}
    });
    for (const series of chartOptions.series || []) {
      series.animation = false;
    }
    try {
      if (globalOptions) {
        setOptions(globalOptions);
      }
      const chart = Highcharts.chart('container', chartOptions);
      return { width: chart.chartWidth, height: chart.chartHeight };
    } finally {
      if (pristine) {
        const defaults = getOptions();
        for (const name of Object.keys(defaults)) {
          if (typeof defaults[name] !== 'function') {
            delete defaults[name];
          }
        }
        setOptions(pristine);
      }
    }
  };
}

const noStep = (_name, work) => work();

/** One Chromium page that renders charts, one at a time. */
export class Renderer {
  /**
   * `browser()`: the browser to open the page in (a promise; a new one after a crash);
   * `guard(page)`: what every new page goes through first (request interception).
   */
  constructor(browser, { width = 800, height = 400, guard = async (page) => page } = {}) {
    this.browser = browser;
    this.guard = guard;
    this.viewport = { width, height, deviceScaleFactor: 1 };
    this.page = null;
    this.session = null;
    this.exports = 0;
  }

  async open() {
    // Each page its own window: a tab behind another one draws no frame, and its screenshot waits forever.
    const page = await this.guard(await (await this.browser()).newPage({ type: 'window' }));
    try {
      await page.setCacheEnabled(false);
      await page.setViewport(this.viewport);
      await page.setContent(TEMPLATE, { waitUntil: 'domcontentloaded' });
      await page.addScriptTag({ content: pageSources() });
      await page.evaluate(setupPage);
      const session = await page.createCDPSession();
      await session.send('Emulation.setDefaultBackgroundColorOverride', { color: { r: 0, g: 0, b: 0, a: 0 } });
      this.page = page;
      this.session = session;
      this.exports = 0;
    } catch (error) {
      await page.close().catch(() => {});
      throw error;
    }
    return this;
  }

  get isOpen() {
    return Boolean(this.page && !this.page.isClosed() && this.page.browser().connected);
  }

  async close() {
    const page = this.page;
    this.page = null;
    this.session = null;
    if (page && !page.isClosed()) {
      await page.close().catch(() => {});
    }
  }

  /**
   * The PNG of `options` drawn at `width` x `height` CSS pixels times `scale`.
   * `step(name, work)` may time each part (exporter/profile.mjs).
   */
  async render(options, { width, height, scale = 1, globalOptions = null, themeOptions = null }, step = noStep) {
    if (!this.isOpen) {
      await step('new page', () => this.open());
    }
    const { page, session } = this;
    const size = await step('chart', () =>
      page.evaluate(
        (...args) => window.drawChart(...args),
        options,
        width,
        height,
        globalOptions,
        themeOptions
      )
    );
    const viewport = { width: Math.ceil(size.width), height: Math.ceil(size.height), deviceScaleFactor: scale };
    if (Object.keys(viewport).some((key) => viewport[key] !== this.viewport[key])) {
      await step('setViewport (size changed)', () => page.setViewport(viewport));
      this.viewport = viewport;
    }
    const shot = await step('screenshot', () =>
      session.send('Page.captureScreenshot', {
        format: 'png',
        clip: { x: 0, y: 0, width: viewport.width, height: viewport.height, scale: 1 },
        optimizeForSpeed: true
      })
    );
    this.exports += 1;
    return Buffer.from(shot.data, 'base64');
  }
}
