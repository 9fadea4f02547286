#!/usr/bin/env node
// The demo shop's origin: a tiny static server for demo/site on http://127.0.0.1:8788 (and
// [::1]:8788 when the machine has IPv6, so "localhost" works whichever address it resolves to).
// `npm start` runs it as a child process behind the Worker; run it alone to see the site as it is
// without Splitstream:  node scripts/demo-origin.mjs [--port 8788] [--quiet]
//
// What it serves:
//   /                  index.html            /pricing, /pricing-b    pricing(-b).html
//   /products/1 … /3   product.html, filled  /checkout, /checkout-b  checkout(-b).html
//                      from products.json    /checkout/done          checkout-done.html
//                                            /stores                 stores.html (table, forms)
//   /assets/…, /favicon.svg                  static files, with their content types
//   /slow              a large page streamed in chunks with pauses (?kb=512&chunks=32&delay=100)
//   /_origin/headers   the request headers as JSON (see what the edge sends: x-ss-*)
//   /_origin/health    {"status":"ok","service":"splitstream-demo-origin"}
//   anything else      404.html with status 404
// Pages may include partials with `<!--#include virtual="/_partials/NAME.html" -->` (SSI syntax);
// /_partials/ itself is not served. Only GET and HEAD are allowed.
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_ROOT = join(here, "..", "demo", "site");
export const DEFAULT_PORT = 8788;
export const SERVICE = "splitstream-demo-origin";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/** Exact paths → page files (HTML, after includes). */
const PAGES = {
  "/": "index.html",
  "/index.html": "index.html",
  "/pricing": "pricing.html",
  "/pricing-b": "pricing-b.html",
  "/checkout": "checkout.html",
  "/checkout-b": "checkout-b.html",
  "/checkout/done": "checkout-done.html",
  "/stores": "stores.html",
};

const INCLUDE = /<!--#include virtual="\/_partials\/([a-z0-9_-]+\.html)"\s*-->/gi;

function escapeHtml(text) {
  return String(text).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}

/**
 * Creates (does not start) the demo origin. Files are read on every request, so edits to
 * demo/site show up on reload.
 */
export function createDemoOrigin({ root = DEFAULT_ROOT, log = () => {} } = {}) {
  const read = (file) => readFileSync(join(root, file), "utf8");
  const page = (file) => read(file).replace(INCLUDE, (_m, name) => read(join("_partials", name)));

  function productPage(id) {
    const products = JSON.parse(read("products.json"));
    const product = Object.hasOwn(products, id) ? products[id] : undefined;
    if (!product) return undefined;
    const values = {
      id,
      name: escapeHtml(product.name),
      tagline: escapeHtml(product.tagline),
      price: product.price, // trusted HTML from products.json (may hold a <span class="was">)
      reviews: escapeHtml(product.reviews),
      features: product.features.map((f) => `<li>${escapeHtml(f)}</li>`).join(""),
    };
    return page("product.html").replace(/\{\{(\w+)\}\}/g, (m, key) => values[key] ?? m);
  }

  /** A static file under root (never a partial, never outside root), or undefined. */
  function staticFile(pathname) {
    let decoded;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      return undefined; // malformed percent-encoding
    }
    if (decoded.startsWith("/_partials/") || decoded.includes("\0")) return undefined;
    const relative = normalize(decoded).replace(/^[/\\]+/, "");
    const file = join(root, relative);
    if (!file.startsWith(root + sep) || !TYPES[extname(file)]) return undefined;
    if (relative.endsWith(".html") || relative === "products.json") return undefined;
    try {
      if (!statSync(file).isFile()) return undefined;
      return { body: readFileSync(file), type: TYPES[extname(file)] };
    } catch {
      return undefined;
    }
  }

  function send(req, res, status, type, body, extraHeaders = {}) {
    const buffer = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const etag = `"${createHash("sha1").update(buffer).digest("base64url").slice(0, 16)}"`;
    const headers = {
      "content-type": type,
      etag,
      "cache-control": !type.startsWith("text/html")
        ? "public, max-age=300"
        : // `?cacheable` on any page: marked cacheable, so the edge keeps it per variant
          // (docs/caching.md; docs/demo.md "Cached variants").
          new URL(req.url ?? "/", "http://demo").searchParams.has("cacheable")
          ? "public, max-age=60"
          : "no-cache",
      "x-demo-origin": "1",
      ...extraHeaders,
    };
    if (status === 200 && req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers).end();
      return 304;
    }
    headers["content-length"] = String(buffer.length);
    res.writeHead(status, headers);
    res.end(req.method === "HEAD" ? undefined : buffer);
    return status;
  }

  /** /slow: the head at once, then `chunks` pieces of the body with `delay` ms between them. */
  function slow(req, res, url) {
    const clamp = (name, fallback, min, max) => {
      const n = Number(url.searchParams.get(name) ?? fallback);
      return Number.isFinite(n) ? Math.min(max, Math.max(min, Math.floor(n))) : fallback;
    };
    const totalKb = clamp("kb", 512, 1, 16384);
    const chunks = clamp("chunks", 32, 1, 1000);
    const delay = clamp("delay", 100, 0, 5000);
    const [head, tail] = page("index.html").split("<main>");
    const top = `${head.replace(
      /<title>[^<]*<\/title>/,
      "<title>Slow page — Trailhead Supply Co.</title>",
    )}<main class="container section" data-page="slow"><h1 class="hero-title">A slow, streamed page</h1><p class="lead">${totalKb} KB in ${chunks} chunks, ${delay} ms apart. Through the edge the changes above arrive with the first bytes, long before the end of the page.</p>`;
    const bottom = `</main>${tail.slice(tail.indexOf("</main>") + "</main>".length)}`;
    const perChunk = Math.max(
      1,
      Math.floor((totalKb * 1024 - top.length - bottom.length) / chunks),
    );
    res.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "x-demo-origin": "1",
    });
    if (req.method === "HEAD") return res.end();
    res.write(top);
    let sent = 0;
    let timer;
    res.on("close", () => clearTimeout(timer));
    const next = () => {
      if (res.destroyed) return;
      if (sent === chunks) return res.end(bottom);
      let html = "";
      let row = sent * 1000;
      while (html.length < perChunk) {
        html += `<div class="slow-row">Chunk ${sent + 1}/${chunks} · row ${++row} · trail log entry with some text to fill the page</div>\n`;
      }
      sent++;
      res.write(html);
      timer = setTimeout(next, delay);
    };
    timer = setTimeout(next, delay);
    return 200;
  }

  function handle(req, res) {
    const url = new URL(req.url ?? "/", "http://origin.invalid");
    const path = url.pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(req, res, 405, "text/plain; charset=utf-8", "Method Not Allowed\n", {
        allow: "GET, HEAD",
      });
    }
    if (path === "/_origin/health") {
      return send(
        req,
        res,
        200,
        TYPES[".json"],
        JSON.stringify({ status: "ok", service: SERVICE }),
        {
          "cache-control": "no-store",
        },
      );
    }
    if (path === "/_origin/headers") {
      return send(req, res, 200, TYPES[".json"], JSON.stringify(req.headers, null, 2) + "\n", {
        "cache-control": "no-store",
      });
    }
    if (path === "/slow") return slow(req, res, url);
    const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
    if (Object.hasOwn(PAGES, trimmed))
      return send(req, res, 200, TYPES[".html"], page(PAGES[trimmed]));
    const product = /^\/products\/(\d+)$/.exec(trimmed);
    if (product) {
      const html = productPage(product[1]);
      if (html) return send(req, res, 200, TYPES[".html"], html);
    }
    const file = staticFile(path);
    if (file) return send(req, res, 200, file.type, file.body);
    return send(req, res, 404, TYPES[".html"], page("404.html"));
  }

  return (req, res) => {
    let status;
    try {
      status = handle(req, res);
    } catch (error) {
      status = 500;
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      }
      res.end(`demo origin error: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    log(req, status);
  };
}

/**
 * Starts the demo origin on 127.0.0.1:port and, when available, [::1]:port.
 * Resolves to { url, close() } once the IPv4 listener is up; rejects if it cannot listen.
 */
export async function startDemoOrigin({ port = DEFAULT_PORT, root = DEFAULT_ROOT, log } = {}) {
  const handler = createDemoOrigin({ root, log });
  const listen = (host) =>
    new Promise((resolve, reject) => {
      const server = createServer(handler);
      server.keepAliveTimeout = 30_000;
      server.once("error", reject);
      server.listen({ port, host }, () => {
        server.off("error", reject);
        resolve(server);
      });
    });
  const servers = [await listen("127.0.0.1")];
  const actualPort = servers[0].address().port;
  try {
    servers.push(await (port === 0 ? Promise.reject(new Error("ephemeral")) : listen("::1")));
  } catch {
    // No IPv6 loopback (or it is taken): IPv4 alone is fine, wrangler resolves localhost to it.
  }
  return {
    url: `http://localhost:${actualPort}`,
    port: actualPort,
    close: () =>
      Promise.all(
        servers.map(
          (s) =>
            new Promise((resolve) => {
              s.closeAllConnections?.();
              s.close(() => resolve());
            }),
        ),
      ).then(() => undefined),
  };
}

function requestLogger(req, status) {
  const headers = req.headers;
  const visitor = headers["x-ss-visitor-id"];
  const decisions = headers["x-ss-decisions"];
  const flags = headers["x-ss-flags"];
  const extra = visitor
    ? ` · visitor ${visitor}${decisions ? ` · ${decisions}` : ""}${flags ? ` · flags ${flags}` : ""}${headers["x-ss-revision"] ? ` · rev ${headers["x-ss-revision"]}` : ""}`
    : "";
  console.log(`origin: ${req.method} ${req.url} ${status ?? ""}${extra}`);
}

async function main() {
  const args = process.argv.slice(2);
  const portIndex = args.indexOf("--port");
  const port = Number(portIndex >= 0 ? args[portIndex + 1] : (process.env.PORT ?? DEFAULT_PORT));
  const quiet = args.includes("--quiet");
  try {
    const origin = await startDemoOrigin({ port, log: quiet ? undefined : requestLogger });
    console.log(`origin: demo shop on http://127.0.0.1:${origin.port} (${DEFAULT_ROOT})`);
    const stop = () => origin.close().then(() => process.exit(0));
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, stop);
    // When started by `npm start` with an IPC channel, exit with the parent.
    process.on("disconnect", stop);
  } catch (error) {
    const code = error && typeof error === "object" && "code" in error ? error.code : undefined;
    console.error(
      code === "EADDRINUSE"
        ? `origin: port ${port} is already in use`
        : `origin: ${error instanceof Error ? error.message : String(error)}`,
    );
    process.exit(code === "EADDRINUSE" ? 98 : 1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
