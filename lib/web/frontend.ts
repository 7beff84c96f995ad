/**
 * What the standard-protocol frontends (WebDAV, restic's REST backend) share: HTTP Basic
 * authentication with one generated password, cross-site refusal, error mapping from the
 * file-system API, and a loopback server. Nothing here logs a request: paths and
 * credentials never reach a log.
 */
import { utf8 } from "../codec/mod.ts";
import { CapError } from "../crypto/mod.ts";
import { FsError } from "../fs/mod.ts";
import {
  DirectoryError,
  GridError,
  NotEnoughServersError,
  UncoordinatedWriteError,
  UnrecoverableError,
} from "../grid/mod.ts";

export const FRONTEND_USER = "shoal";

export function sameSecret(a: string, b: string): boolean {
  const x = utf8(a);
  const y = utf8(b);
  let d = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) d |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return d === 0;
}

/** Whether the request carries `Authorization: Basic` with these credentials. */
export function basicAuthOk(req: Request, user: string, password: string): boolean {
  const h = req.headers.get("authorization");
  const m = h ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h) : null;
  if (!m) return false;
  let text: string;
  try {
    text = new TextDecoder().decode(Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0)));
  } catch {
    return false;
  }
  const i = text.indexOf(":");
  if (i < 0) return false;
  // Both compared, always: no early exit that times which half was wrong.
  const u = sameSecret(text.slice(0, i), user);
  const p = sameSecret(text.slice(i + 1), password);
  return u && p;
}

/** A request a browser made on behalf of another site (refused for anything but reads). */
export function crossSite(req: Request): boolean {
  const origin = req.headers.get("origin");
  const host = req.headers.get("host");
  if (origin !== null && host !== null && origin.toLowerCase() !== `http://${host.toLowerCase()}`) {
    return true;
  }
  const site = req.headers.get("sec-fetch-site");
  return site !== null && site !== "same-origin" && site !== "none";
}

/** HTTP status and a message safe to show (never a cap) for an error from lib/fs or lib/grid. */
export function statusOf(e: unknown): { status: number; message: string } {
  const message = (e as Error)?.message ?? String(e);
  if (e instanceof FsError) {
    const status = {
      "not-found": 404,
      "exists": 412,
      "not-directory": 409,
      "is-directory": 405,
      "read-only": 403,
      "invalid": 400,
      "too-large": 413,
    }[e.code];
    return { status, message };
  }
  if (e instanceof CapError) return { status: 500, message: "a directory entry holds a bad cap" };
  if (e instanceof DirectoryError) return { status: 400, message };
  if (e instanceof NotEnoughServersError || e instanceof UnrecoverableError) {
    return { status: 503, message };
  }
  if (e instanceof UncoordinatedWriteError) return { status: 503, message };
  if (e instanceof GridError) return { status: 502, message };
  return { status: 500, message: `internal error: ${(e as Error)?.name ?? "Error"}` };
}

export interface Frontend {
  url: string;
  port: number;
  close(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

/** Serve `handler` on `hostname:port` (port 0: a free one). */
export function serveFrontend(
  handler: (req: Request) => Promise<Response>,
  hostname: string,
  port: number,
  signal?: AbortSignal,
): Promise<Frontend> {
  try {
    const server = Deno.serve({
      hostname,
      port,
      signal,
      onListen: () => {},
      onError: (e) => new Response(statusOf(e).message + "\n", { status: statusOf(e).status }),
    }, handler);
    const actual = (server.addr as Deno.NetAddr).port;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    return Promise.resolve({
      url: `http://${host}:${actual}/`,
      port: actual,
      close: () => server.shutdown(),
      finished: server.finished,
    });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      return Promise.reject(
        new Error(`${hostname}:${port} is already in use; choose another --listen`),
      );
    }
    return Promise.reject(e);
  }
}
