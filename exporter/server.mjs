// Entry point of the export server: highcharts-export-server 6.0.0 (pinned in
// package-lock.json), started the way its bin/cli.js starts it, with the doors
// the render stage does not need closed. Nothing in node_modules is modified, so
// `npm ci` cannot undo it; tests/test_security_exporter.py proves each door shut
// against the running server.
//
// 1. Routes: only `POST /` (JSON) and `GET /health`. Everything else, including
//    the UI on `GET /`, its static files, `/version/...` and CORS preflights,
//    answers 404 before the package sees it.
// 2. Request bodies: only the fields the pipeline sends. `infile`,
//    `globalOptions` and `themeOptions` must be JSON objects, so no string can
//    reach the package's "path ending in .json is a file to read" branch; `svg`,
//    `resources`, `callback`, `customCode`, `outfile`... are refused by name.
// 3. Chromium: every page intercepts its requests and aborts any that would
//    leave the page (http, https, ws, file, ftp, chrome...); only about:, data:
//    and blob: URLs, which never touch the network or the disk, continue.
//    config.json also points Chromium at a proxy that refuses everything
//    (loopback included), a second layer.
// 4. Chromium dies with this process, however it dies: it is started through
//    chromium.sh, which asks the kernel (PR_SET_PDEATHSIG) to kill it when its
//    parent goes, so even a SIGKILL of node leaves no browser behind.
// 5. The log: one JSON line per export (POST /) on stdout, with the run it drew for
//    (the render stage's X-Run-Id header, README "Logs"); a header that is not a run
//    id (at most 64 of [A-Za-z0-9-]) is left out, never written verbatim.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import puppeteer from 'puppeteer';

import main from './node_modules/highcharts-export-server/lib/index.js';

import { measure, serveMetrics } from './metrics.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// --- 3 and 4: every browser is launched through chromium.sh, every page intercepts
const LOCAL_SCHEMES = ['about:', 'data:', 'blob:'];

export const isLocalUrl = (url) => LOCAL_SCHEMES.some((scheme) => url.startsWith(scheme));

const guardPage = async (page) => {
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    if (request.isInterceptResolutionHandled()) {
      return;
    }
    if (isLocalUrl(request.url())) {
      request.continue();
    } else {
      main.log(2, `[lockdown] Blocked a request from the page to ${request.url().slice(0, 200)}`);
      request.abort('blockedbyclient');
    }
  });
  return page;
};

const launch = puppeteer.launch;
puppeteer.launch = async (options = {}) => {
  const browser = await launch({
    ...options,
    executablePath: join(HERE, 'chromium.sh'),
    // chromium.sh execs the real binary, so the pid puppeteer holds is Chromium's.
    env: { ...process.env, EXPORTER_CHROMIUM_BIN: process.env.PUPPETEER_EXECUTABLE_PATH }
  });
  const newPage = browser.newPage.bind(browser);
  browser.newPage = async (...args) => guardPage(await newPage(...args));
  return browser;
};

// --- 1 and 2: a gate in front of every route, a body check right before the export route
const FIELDS = new Set([
  'type',
  'infile',
  'width',
  'height',
  'scale',
  'constr',
  'b64',
  'noDownload',
  'globalOptions',
  'themeOptions'
]);

const isObject = (value) =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const isNumberIn = (value, low, high) =>
  typeof value === 'number' && Number.isFinite(value) && value >= low && value <= high;

/** The first problem of an export request body, or null when it may be rendered. */
export const problemWith = (body) => {
  if (!isObject(body)) {
    return 'The body must be a JSON object.';
  }
  for (const name of Object.keys(body)) {
    if (!FIELDS.has(name)) {
      return `The field '${name}' is not accepted by this server.`;
    }
  }
  if (!isObject(body.infile)) {
    return "The field 'infile' must be a JSON object of Highcharts options.";
  }
  for (const name of ['globalOptions', 'themeOptions']) {
    if (name in body && !isObject(body[name])) {
      return `The field '${name}' must be a JSON object.`;
    }
  }
  if ('type' in body && !['png', 'image/png'].includes(body.type)) {
    return "The field 'type' must be 'png'.";
  }
  if ('constr' in body && body.constr !== 'chart') {
    return "The field 'constr' must be 'chart'.";
  }
  for (const name of ['width', 'height']) {
    if (name in body && !isNumberIn(body[name], 1, 10000)) {
      return `The field '${name}' must be a number from 1 to 10000.`;
    }
  }
  if ('scale' in body && !isNumberIn(body.scale, 0.1, 5)) {
    return "The field 'scale' must be a number from 0.1 to 5.";
  }
  for (const name of ['b64', 'noDownload']) {
    if (name in body && typeof body[name] !== 'boolean') {
      return `The field '${name}' must be true or false.`;
    }
  }
  return null;
};

// --- 5: one JSON line per export
const RUN_ID = /^[A-Za-z0-9-]{1,64}$/;
const SERVICE = process.env.LOG_SERVICE || 'exporter';

/** The run id of an X-Run-Id header value, or null when it is not one (absent, too long, other characters). */
export const validRunId = (value) => (typeof value === 'string' && RUN_ID.test(value) ? value : null);

/** Write one JSON line for an export request (POST /) once its answer is sent (or the client left). */
const logExport = (request, response) => {
  if (request.method !== 'POST' || request.path !== '/') {
    return;
  }
  const started = process.hrtime.bigint();
  const runId = validRunId(request.get('X-Run-Id'));
  response.once('close', () => {
    const line = {
      timestamp: new Date().toISOString().replace('Z', '000Z'), // microseconds, as the Python services write it
      level: response.statusCode >= 500 ? 'error' : response.statusCode >= 400 ? 'warning' : 'info',
      logger: 'exporter',
      service: SERVICE,
      event: 'export',
      method: request.method,
      path: request.path,
      status: response.statusCode,
      duration_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100
    };
    if (runId) {
      line.run_id = runId;
    }
    if (!response.writableFinished) {
      line.aborted = true; // the client went away before the answer was sent
    }
    process.stdout.write(`${JSON.stringify(line)}\n`);
  });
};

const refuse = (response, statusCode, errorCode, message) =>
  response.status(statusCode).json({ statusCode, errorCode, message });

// In front of everything (even the package's CORS): the routes, the content type,
// and no stack traces in error bodies. Cheap: the body is not read here, so the
// package's own "queue full" refusal still comes before any body is parsed.
const gate = (request, response, next) => {
  measure(request, response);
  logExport(request, response);
  const json = response.json.bind(response);
  response.json = (body) => {
    if (isObject(body)) {
      delete body.stack;
    }
    return json(body);
  };

  if ((request.method === 'GET' || request.method === 'HEAD') && request.path === '/health') {
    return next();
  }
  if (request.method !== 'POST' || request.path !== '/') {
    return refuse(response, 404, 'NOT_FOUND', 'Only POST / and GET /health are served.');
  }
  if (!request.is('application/json')) {
    return refuse(response, 415, 'EXPORT_INVALID_REQUEST', 'The body must be application/json.');
  }
  next();
};

// Right before the package's export route, once its body parser has run.
const checkBody = (request, response, next) => {
  const problem = problemWith(request.body);
  return problem ? refuse(response, 400, 'EXPORT_INVALID_REQUEST', problem) : next();
};

const isExportRoute = (layer) => layer.route?.path === '/' && Boolean(layer.route.methods?.post);

/** Move the layer of `handle` to just before the first layer matching `before` (or to the front). */
const moveLayer = (stack, handle, before = () => true) => {
  const [layer] = stack.splice(
    stack.findIndex((candidate) => candidate.handle === handle),
    1
  );
  const index = stack.findIndex(before);
  if (index < 0) {
    throw new Error('[lockdown] The export route was not found: the body check cannot be placed.');
  }
  stack.splice(index, 0, layer);
  return index;
};

const installGate = (server) => {
  server.use('/', gate);
  server.use('/', checkBody);
  moveLayer(server.getApp().router.stack, gate);
};

const placeBodyCheck = (server) => {
  const stack = server.getApp().router.stack;
  const index = moveLayer(stack, checkBody, isExportRoute);
  if (stack[index].handle !== checkBody || !isExportRoute(stack[index + 1])) {
    throw new Error('[lockdown] The body check is not right before the export route.');
  }
};

// --- start, as bin/cli.js does for a server
const start = async () => {
  const options = main.setOptions(null, process.argv);
  if (!options) {
    process.exit(1);
  }
  // Whatever the config file or the environment say, these stay shut.
  options.ui.enable = false;
  options.customLogic.allowCodeExecution = false;
  options.customLogic.allowFileResources = false;
  options.server.ssl.enable = false;
  options.server.enable = true;

  installGate(main.server);
  await main.initExport(options);
  await main.startServer(options.server);
  placeBodyCheck(main.server);
  serveMetrics(options.server.host, process.env.EXPORTER_METRICS_PORT);
};

start().catch((error) => {
  main.logWithStack(1, error, '[lockdown] The export server could not start.');
  process.exit(1);
});
