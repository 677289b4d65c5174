// The stock export path: highcharts-export-server 6.0.0 (pinned in package-lock.json),
// its own Express server, page pool and screenshot, started the way its bin/cli.js
// starts it, with the doors
// the render stage does not need closed (lockdown.mjs). It is no longer what
// start.sh runs (server.mjs is): the benchmark runs it (EXPORTER_SERVER=stock) as the
// reference every figure of issue 24 is a ratio to. Nothing in node_modules is modified, so
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

import { isObject, guardPage, logExport, problemWith } from './lockdown.mjs';
import { getPoolInfoJSON, stats } from './node_modules/highcharts-export-server/lib/pool.js';
import { measure, serveMetrics, setPoolSource } from './metrics.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// --- 3 and 4: every browser is launched through chromium.sh, every page intercepts
const launch = puppeteer.launch;
puppeteer.launch = async (options = {}) => {
  const browser = await launch({
    ...options,
    executablePath: join(HERE, 'chromium.sh'),
    // chromium.sh execs the real binary, so the pid puppeteer holds is Chromium's.
    env: { ...process.env, EXPORTER_CHROMIUM_BIN: process.env.PUPPETEER_EXECUTABLE_PATH }
  });
  const newPage = browser.newPage.bind(browser);
  browser.newPage = async (...args) => guardPage(await newPage(...args), (message) => main.log(2, `[lockdown] ${message}`));
  return browser;
};

// --- 1 and 2: a gate in front of every route, a body check right before the export route
const refuse = (response, statusCode, errorCode, message) =>
  response.status(statusCode).json({ statusCode, errorCode, message });

// In front of everything (even the package's CORS): the routes, the content type,
// and no stack traces in error bodies. Cheap: the body is not read here, so the
// package's own "queue full" refusal still comes before any body is parsed.
const gate = (request, response, next) => {
  measure(request.method, request.path, response);
  logExport(request.method, request.path, request.get('X-Run-Id'), response);
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
  setPoolSource(() => {
    try {
      return { info: getPoolInfoJSON(), stats };
    } catch {
      return { info: null, stats }; // the pool is not created yet
    }
  });
  serveMetrics(options.server.host, process.env.EXPORTER_METRICS_PORT);
};

start().catch((error) => {
  main.logWithStack(1, error, '[lockdown] The export server could not start.');
  process.exit(1);
});
