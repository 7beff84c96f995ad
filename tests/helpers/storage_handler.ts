/**
 * The storage protocol handler over a real on-disk ShareStore in a temp directory, with an
 * injected clock, for request-level tests: no socket, as the handler is a Request -> Response
 * function (tests/storage/server_process_test.ts covers the real server process over TLS).
 */
import { base32Encode } from "../../lib/codec/mod.ts";
import {
  API_PREFIX,
  AUTH_SCHEME,
  createStorageHandler,
  type HandlerOptions,
  ShareStore,
  type StorageHandler,
  type StoreOptions,
} from "../../lib/storage/mod.ts";

/** The handler's swissnum (storageRequest authorizes with it) and server ID. */
export const SWISSNUM = new Uint8Array(32).fill(7);
export const SERVER_ID = new Uint8Array(32).fill(5);

/** A request for `path` below the API prefix, authorized with SWISSNUM. */
export function storageRequest(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Uint8Array,
): Request {
  return new Request(`https://127.0.0.1:1${API_PREFIX}/${path}`, {
    method,
    headers: { authorization: `${AUTH_SCHEME} ${base32Encode(SWISSNUM)}`, ...headers },
    body: body as BodyInit | undefined,
  });
}

export interface StoreHandler {
  /** The store's root, `storage` in a temp directory that is removed afterwards. */
  root: string;
  store: ShareStore;
  handle: StorageHandler;
  /** The store's clock (ms since the epoch), for the test to move. */
  clock: { t: number };
}

/**
 * Run `fn` with a fresh store (its clock at 1,700,000,000,000 ms) and a handler on it that logs
 * nothing; `opts` adds store and handler options.
 */
export async function withStoreHandler(
  prefix: string,
  fn: (h: StoreHandler) => Promise<void>,
  opts: { store?: Partial<StoreOptions>; handler?: Partial<HandlerOptions> } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  const clock = { t: 1_700_000_000_000 };
  try {
    const root = `${dir}/storage`;
    const store = await ShareStore.open({ root, now: () => clock.t, ...opts.store });
    const handle = createStorageHandler(store, {
      swissnum: SWISSNUM,
      serverId: SERVER_ID,
      log: () => {},
      ...opts.handler,
    });
    await fn({ root, store, handle, clock });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
