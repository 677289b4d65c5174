// Prometheus metrics of one export server, on a port of their own (METRICS_PORT in
// deploy/run, EXPORTER_METRICS_PORT here; unset or 0: off), so the export port keeps
// its two routes (server.mjs). Read at each scrape: the requests in flight and their
// time, the server's pages and its export counters (from whichever server registered
// them with setPoolSource: server.mjs, or stock.mjs for the package's pool), node's own
// process figures.
import http from 'node:http';

import client from 'prom-client';

const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry, prefix: 'exporter_' });

const inFlight = new client.Gauge({
  name: 'exporter_requests_in_flight',
  help: 'Export requests (POST /) being answered',
  registers: [registry]
});

const requestSeconds = new client.Histogram({
  name: 'exporter_request_seconds',
  help: 'Export requests (POST /) by status code, from arrival to the last byte',
  labelNames: ['status'],
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry]
});

let poolSource = () => ({ info: null, stats: {} });

/**
 * Where the pages and export counters are read at each scrape: `source()` returns
 * `{info: {available, used, pending, max} | null, stats: {performedExports, ...}}`.
 */
export const setPoolSource = (source) => {
  poolSource = source;
};

const poolInfo = () => poolSource().info;

new client.Gauge({
  name: 'exporter_pool_resources',
  help: 'Pages of the pool: available, used, pending acquires, max',
  labelNames: ['state'],
  registers: [registry],
  collect() {
    const info = poolInfo();
    for (const state of ['available', 'used', 'pending', 'max']) {
      this.set({ state }, info ? Number(info[state]) || 0 : 0);
    }
  }
});

const OUTCOMES = {
  performed: 'performedExports',
  attempted: 'exportAttempts',
  dropped: 'droppedExports',
  rejected_for_capacity: 'rejectedForCapacity',
  abandoned: 'abandonedExports'
};

new client.Counter({
  name: 'exporter_pool_exports_total',
  help: 'Export counters since start, by outcome',
  labelNames: ['outcome'],
  registers: [registry],
  collect() {
    this.reset();
    const { stats } = poolSource();
    for (const [outcome, key] of Object.entries(OUTCOMES)) {
      this.inc({ outcome }, stats[key] || 0);
    }
  }
});

/** Count an export request (POST /) in flight and time it until its answer is sent. */
export const measure = (method, path, response) => {
  if (method !== 'POST' || path !== '/') {
    return;
  }
  inFlight.inc();
  const end = requestSeconds.startTimer();
  response.once('close', () => {
    inFlight.dec();
    end({ status: String(response.statusCode) });
  });
};

/** Serve GET /metrics on host:port (a port of 0 or none: nothing). */
export const serveMetrics = (host, port) => {
  const number = Number(port || 0);
  if (!Number.isInteger(number) || number < 0 || number > 65535) {
    throw new Error(`EXPORTER_METRICS_PORT must be a port number, got '${port}'`);
  }
  if (!number) {
    return null;
  }
  const server = http.createServer(async (request, response) => {
    if (request.method !== 'GET' || request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'Content-Type': registry.contentType });
    response.end(await registry.metrics());
  });
  return server.listen(number, host);
};
