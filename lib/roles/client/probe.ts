/**
 * Is each recorded server answering? One small request (the server's version) per server,
 * all at once, each bounded by a timeout: for `client servers` and the running client's
 * "down" / "back up" log lines.
 */
import type { DiscoveryState } from "../../discovery/mod.ts";
import { mapLimit } from "../../grid/mod.ts";
import { parseStorageUrl } from "../../storage/mod.ts";
import type { GridNode } from "../gridnode.ts";

export interface ServerStatus {
  up: boolean;
  /** Why it is down. */
  error?: string;
  /** From its version answer: bytes it can still accept, and bytes of shares it stores. */
  availableSpace?: number;
  used?: number;
}

/** Status by server id (base32) of every recorded server. */
export async function probeServers(
  node: GridNode,
  state: DiscoveryState = node.state,
  timeoutMs = 3000,
): Promise<Map<string, ServerStatus>> {
  const out = new Map<string, ServerStatus>();
  await mapLimit(state.servers, 16, async (s) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const server = node.pool.server(parseStorageUrl(s.storageUrls[0]), s.nickname);
      const v = await Promise.race([
        server.storage.version(),
        new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      out.set(s.serverId, { up: true, availableSpace: v.availableSpace, used: v.used });
    } catch (e) {
      out.set(s.serverId, { up: false, error: (e as Error).message });
    } finally {
      clearTimeout(timer);
    }
  });
  return out;
}

/** A storage URL with its swissnum replaced by "REDACTED" (the pin and locations stay). */
export function redactStorageUrl(url: string): string {
  return url.replace(/:[^:@]+@/, ":REDACTED@");
}
