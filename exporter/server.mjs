// The export server (service 3): the two routes the render stage needs, over node's own
// http server, drawing with render.mjs's pages in one Chromium (issue 24). Highcharts and
// its scripts are the package's (highcharts-export-server 6.0.0 and highcharts 13.1.1,
// pinned in package-lock.json); the package's own server is kept as stock.mjs, the
// reference the benchmark measures this one against.
//
// 1. Routes: only `POST /` (application/json, else 415) and `GET /health`; anything else
//    answers 404, with no CORS header.
// 2. Request bodies: only the fields the pipeline sends (lockdown.mjs); at most
//    config.json's server.maxUploadSize MB (413).
// 3. Chromium: every page aborts any request that would leave it (lockdown.mjs);
//    config.json also points Chromium at a proxy that refuses everything.
// 4. Chromium dies with this process, however it dies: it is started through chromium.sh
//    (PR_SET_PDEATHSIG). If Chromium dies first, a new one is launched at once.
// 5. Capacity: EXPORTER_PAGES pages (default 2), one chart each at a
//    time; up to pool.queueLimit requests wait for one, more answer 503 EXPORT_QUEUE_FULL
//    with Retry-After. A render that outlasts export.rasterizationTimeout answers 500
//    EXPORT_RASTERIZATION_TIMEOUT and its page is replaced.
// 6. The log: one JSON line per export on stdout (lockdown.mjs), with the run it drew for.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import puppeteer from 'puppeteer';

import { guardPage, isObject, logExport, logLine, problemWith } from './lockdown.mjs';
import { measure, serveMetrics, setPoolSource } from './metrics.mjs';
import { launchOptions, Renderer } from './render.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// ---- settings: the environment (start.sh's table), then config.json
const config = JSON.parse(readFileSync(process.env.EXPORTER_CONFIG || join(HERE, 'config.json'), 'utf8'));

const whole = (name, fallback, low, high) => {
  const text = process.env[name];
  const value = text === undefined || text.trim() === '' ? fallback : Number(text);
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new Error(`${name} must be a whole number from ${low} to ${high}, not '${text}'`);
  }
  return value;
};

const SETTINGS = {
  host: process.env.EXPORTER_HOST || config.server.host,
  port: whole('EXPORTER_PORT', config.server.port, 1, 65535),
  pages: whole('EXPORTER_PAGES', 2, 1, 16), // two per server: README "Scaling" (the stock pool: config.json's 1)
  queueLimit: config.pool.queueLimit,
  maxBodyBytes: config.server.maxUploadSize * 1024 * 1024,
  renderTimeoutMs: config.export.rasterizationTimeout,
  drainTimeoutMs: config.other.shutdownDrainTimeout,
  launchRetryMs: config.puppeteer.launchRetryWindow,
  logLevel: whole('EXPORTER_LOG_LEVEL', config.logging.level, 0, 5),
  size: { width: config.export.defaultWidth, height: config.export.defaultHeight, scale: config.export.defaultScale }
};

const warn = (message) => SETTINGS.logLevel >= 2 && logLine('warning', message);
const fail = (message, error) =>
  SETTINGS.logLevel >= 1 && logLine('error', message, { error: String(error?.message || error).slice(0, 500) });

// ---- Chromium: one browser, launched again after a crash
let browser = null;
let launching = null;
let closing = false;

const launch = async () => {
  const executable = process.env.PUPPETEER_EXECUTABLE_PATH || '/usr/lib/chromium/chromium';
  const options = launchOptions(config.puppeteer.args, process.env.PUPPETEER_TEMP_DIR, join(HERE, 'chromium.sh'), {
    ...process.env,
    EXPORTER_CHROMIUM_BIN: executable // chromium.sh execs it: the pid puppeteer holds is Chromium's
  });
  const deadline = Date.now() + SETTINGS.launchRetryMs;
  for (let delay = 250; ; delay = Math.min(2 * delay, 4000)) {
    try {
      const launched = await puppeteer.launch(options);
      launched.on('disconnected', () => {
        if (browser === launched) {
          browser = null;
        }
        if (!closing) {
          warn('Chromium went away; launching it again');
          currentBrowser().catch((error) => fail('Chromium could not be launched again', error));
        }
      });
      return launched;
    } catch (error) {
      if (Date.now() + delay > deadline) {
        throw error;
      }
      fail('Chromium could not start; trying again', error);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
};

const currentBrowser = async () => {
  if (browser?.connected) {
    return browser;
  }
  launching ||= launch()
    .then((launched) => {
      browser = launched;
      return launched;
    })
    .finally(() => {
      launching = null;
    });
  return launching;
};

// ---- the pages: each draws one chart at a time; requests wait in order for a free one
const stats = { performedExports: 0, exportAttempts: 0, droppedExports: 0, rejectedForCapacity: 0, abandonedExports: 0 };
const guard = (page) => guardPage(page, warn);
const idle = Array.from(
  { length: SETTINGS.pages },
  () => new Renderer(currentBrowser, { ...SETTINGS.size, guard })
);
const waiting = [];

setPoolSource(() => ({
  info: { available: idle.length, used: SETTINGS.pages - idle.length, pending: waiting.length, max: SETTINGS.pages },
  stats
}));

class Refusal extends Error {
  constructor(statusCode, errorCode, message, headers = {}) {
    super(message);
    this.statusCode = statusCode;
    this.errorCode = errorCode;
    this.headers = headers;
  }
}

const queueFull = () =>
  new Refusal(
    503,
    'EXPORT_QUEUE_FULL',
    `The server is at capacity: ${waiting.length} exports are already waiting for a page (limit ${SETTINGS.queueLimit}). Retry shortly.`,
    { 'Retry-After': '1' }
  );

const acquire = () => {
  if (idle.length) {
    return Promise.resolve(idle.pop());
  }
  if (waiting.length >= SETTINGS.queueLimit) {
    stats.rejectedForCapacity += 1;
    return Promise.reject(queueFull());
  }
  return new Promise((resolve) => waiting.push(resolve));
};

const release = (renderer) => {
  const next = waiting.shift();
  if (next) {
    next(renderer);
  } else {
    idle.push(renderer);
  }
};

const withTimeout = (promise, ms) => {
  let timer;
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Refusal(
            500,
            'EXPORT_RASTERIZATION_TIMEOUT',
            `The chart was not drawn within ${ms} ms: it may be too large or complex.`
          )
        ),
      ms
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
};

/** Chromium's own failures (a page or the browser gone), as opposed to the chart's. */
const isBrowserFailure = (error) =>
  ['TargetCloseError', 'ProtocolError', 'ConnectionClosedError'].includes(error?.name) ||
  /Target closed|Session closed|detached|Protocol error|Connection closed|browser has disconnected/i.test(
    String(error?.message)
  );

/**
 * The PNG's size as the package chooses it: the request's, else the chart's options
 * (chart.width, exporting.sourceWidth, exporting.scale...), else config.json's; a
 * Refusal naming the field when the one chosen is not a sensible number.
 */
const pngSize = (body) => {
  const chart = isObject(body.infile.chart) ? body.infile.chart : {};
  const exporting = isObject(body.infile.exporting) ? body.infile.exporting : {};
  const pick = (candidates, fallback, low, high) => {
    const [field, value] = candidates.find(([, candidate]) => candidate !== undefined && candidate !== null) || [];
    if (field === undefined) {
      return fallback;
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value < low || value > high) {
      throw new Refusal(400, 'EXPORT_INVALID_REQUEST', `The field '${field}' must be a number from ${low} to ${high}.`);
    }
    return value;
  };
  return {
    width: pick(
      [['width', body.width], ['infile.chart.width', chart.width], ['infile.exporting.sourceWidth', exporting.sourceWidth]],
      SETTINGS.size.width,
      1,
      10000
    ),
    height: pick(
      [['height', body.height], ['infile.chart.height', chart.height], ['infile.exporting.sourceHeight', exporting.sourceHeight]],
      SETTINGS.size.height,
      1,
      10000
    ),
    scale: pick([['scale', body.scale], ['infile.exporting.scale', exporting.scale]], SETTINGS.size.scale, 0.1, 5)
  };
};

/** The PNG of one export request `body` (already checked), or a Refusal. */
const exportPng = async (body, clientGone) => {
  const size = { ...pngSize(body), globalOptions: body.globalOptions ?? null, themeOptions: body.themeOptions ?? null };
  stats.exportAttempts += 1;
  const renderer = await acquire();
  try {
    if (clientGone()) {
      stats.abandonedExports += 1;
      throw new Refusal(499, 'EXPORT_CLIENT_GONE', 'The client went away before a page was free.');
    }
    const png = await withTimeout(renderer.render(body.infile, size), SETTINGS.renderTimeoutMs);
    stats.performedExports += 1;
    return png;
  } catch (error) {
    if (error instanceof Refusal && error.errorCode === 'EXPORT_CLIENT_GONE') {
      throw error;
    }
    stats.droppedExports += 1;
    // Whatever happened to the page, the next chart gets a fresh one.
    renderer.close();
    if (error instanceof Refusal) {
      throw error;
    }
    if (isBrowserFailure(error)) {
      fail('Chromium failed during an export', error);
      throw new Refusal(500, 'EXPORT_FAILED', 'Chromium failed while drawing the chart; retry.');
    }
    const reason = String(error?.message || error).split('\n')[0].slice(0, 300);
    throw new Refusal(400, 'EXPORT_FAILED', `The chart could not be drawn: ${reason}`);
  } finally {
    release(renderer);
  }
};

// ---- HTTP
const answer = (response, statusCode, body, headers = {}) => {
  if (response.writableEnded || response.destroyed) {
    return;
  }
  const isJson = !Buffer.isBuffer(body) && typeof body !== 'string';
  const data = isJson ? JSON.stringify(body) : body;
  response.writeHead(statusCode, {
    'Content-Type': isJson ? 'application/json; charset=utf-8' : Buffer.isBuffer(body) ? 'image/png' : 'text/plain',
    'Content-Length': Buffer.byteLength(data),
    ...headers
  });
  response.end(data);
};

const refuse = (response, refusal, close = false) =>
  answer(
    response,
    refusal.statusCode,
    { statusCode: refusal.statusCode, errorCode: refusal.errorCode, message: refusal.message },
    { ...refusal.headers, ...(close ? { Connection: 'close' } : {}) }
  );

/** The request's body, parsed as JSON; a Refusal when it is too big or not JSON. */
const readJson = (request) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on('data', (chunk) => {
      size += chunk.length;
      if (size > SETTINGS.maxBodyBytes) {
        request.pause();
        reject(
          new Refusal(413, 'EXPORT_INVALID_REQUEST', `The body is larger than ${SETTINGS.maxBodyBytes / 1048576} MB.`)
        );
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new Refusal(400, 'EXPORT_INVALID_REQUEST', 'The body is not valid JSON.'));
      }
    });
  });

const handle = async (request, response) => {
  const path = request.url.split('?')[0];
  measure(request.method, path, response);
  logExport(request.method, path, request.headers['x-run-id'], response);

  if ((request.method === 'GET' || request.method === 'HEAD') && path === '/health') {
    return answer(response, 200, {
      status: 'OK',
      browserConnected: Boolean(browser?.connected), // what compose's and Kubernetes' probes ask
      pages: SETTINGS.pages,
      exports: stats.performedExports
    });
  }
  if (request.method !== 'POST' || path !== '/') {
    return refuse(response, new Refusal(404, 'NOT_FOUND', 'Only POST / and GET /health are served.'), true);
  }
  if (!/^application\/json\s*(;|$)/i.test(request.headers['content-type'] || '')) {
    return refuse(response, new Refusal(415, 'EXPORT_INVALID_REQUEST', 'The body must be application/json.'), true);
  }
  // Refused before the body is read: a full queue costs a socket, not a body in memory.
  if (!idle.length && waiting.length >= SETTINGS.queueLimit) {
    stats.rejectedForCapacity += 1;
    return refuse(response, queueFull(), true);
  }
  let gone = false;
  response.once('close', () => {
    gone = !response.writableFinished;
  });
  try {
    const body = await readJson(request);
    const problem = problemWith(body);
    if (problem) {
      return refuse(response, new Refusal(400, 'EXPORT_INVALID_REQUEST', problem));
    }
    const png = await exportPng(body, () => gone);
    return body.b64 ? answer(response, 200, png.toString('base64')) : answer(response, 200, png);
  } catch (error) {
    if (error instanceof Refusal) {
      return refuse(response, error, error.statusCode === 413);
    }
    fail('An export failed', error);
    return refuse(response, new Refusal(500, 'EXPORT_FAILED', 'The export failed; retry.'));
  }
};

// ---- start and stop
const start = async () => {
  await currentBrowser(); // Chromium up before the port opens: /health means "can draw"
  const server = http.createServer((request, response) => {
    handle(request, response).catch((error) => {
      fail('A request could not be answered', error);
      response.destroy();
    });
  });
  server.keepAliveTimeout = 65_000; // longer than the render stage's pooled connections idle
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(SETTINGS.port, SETTINGS.host, resolve);
  });
  serveMetrics(SETTINGS.host, process.env.EXPORTER_METRICS_PORT);
  if (SETTINGS.logLevel >= 3) {
    logLine('info', 'listening', { host: SETTINGS.host, port: SETTINGS.port, pages: SETTINGS.pages });
  }

  const stop = async (signal) => {
    if (closing) {
      return;
    }
    closing = true;
    server.close(); // no new connections; the exports in flight finish
    server.closeIdleConnections();
    const drained = new Promise((resolve) => {
      const check = () => (idle.length === SETTINGS.pages ? resolve() : setTimeout(check, 50));
      check();
    });
    await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, SETTINGS.drainTimeoutMs))]);
    await browser?.close().catch(() => {});
    if (SETTINGS.logLevel >= 3) {
      logLine('info', 'stopped', { signal });
    }
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => stop(signal));
  }
};

start().catch((error) => {
  fail('The export server could not start', error);
  process.exit(1);
});
