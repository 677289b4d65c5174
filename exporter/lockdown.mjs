// What the export server accepts and lets its pages do (README "Locked down"), shared by
// server.mjs (ours) and stock.mjs (the package's server, the benchmark's reference).
// tests/test_security_exporter.py proves each door shut against the running server.

const LOCAL_SCHEMES = ['about:', 'data:', 'blob:'];

/** True for a URL that never leaves the page: about:, data: and blob:. */
export const isLocalUrl = (url) => LOCAL_SCHEMES.some((scheme) => url.startsWith(scheme));

/** Make `page` abort every request that would leave it; `warn(message)` hears of each one. */
export const guardPage = async (page, warn) => {
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    if (request.isInterceptResolutionHandled()) {
      return;
    }
    if (isLocalUrl(request.url())) {
      request.continue();
    } else {
      warn(`Blocked a request from the page to ${request.url().slice(0, 200)}`);
      request.abort('blockedbyclient');
    }
  });
  return page;
};

// The fields the render stage sends; anything else is refused by name.
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

export const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

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

const RUN_ID = /^[A-Za-z0-9-]{1,64}$/;

/** The run id of an X-Run-Id header value, or null when it is not one (absent, too long, other characters). */
export const validRunId = (value) => (typeof value === 'string' && RUN_ID.test(value) ? value : null);

const SERVICE = process.env.LOG_SERVICE || 'exporter';

/** One JSON log line on stdout, as the Python services write them (README "Logs"). */
export const logLine = (level, event, fields = {}) => {
  const line = {
    timestamp: new Date().toISOString().replace('Z', '000Z'), // microseconds, as the Python services write it
    level,
    logger: 'exporter',
    service: SERVICE,
    event,
    ...fields
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

/**
 * Write one JSON line for an export request (POST /) once its answer is sent or the
 * client left: status, duration and the run it drew for (X-Run-Id, when valid).
 */
export const logExport = (method, path, runIdHeader, response) => {
  if (method !== 'POST' || path !== '/') {
    return;
  }
  const started = process.hrtime.bigint();
  const runId = validRunId(runIdHeader);
  response.once('close', () => {
    const status = response.statusCode;
    const fields = {
      method,
      path,
      status,
      duration_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100
    };
    if (runId) {
      fields.run_id = runId;
    }
    if (!response.writableFinished) {
      fields.aborted = true; // the client went away before the answer was sent
    }
    logLine(status >= 500 ? 'error' : status >= 400 ? 'warning' : 'info', 'export', fields);
  });
};
