/** restic's REST backend (protocol v2) over the file-system API. docs/restic.md. */
import type { ShoalFs } from "../../fs/mod.ts";

export interface ResticOptions {
  fs: ShoalFs;
  user: string;
  password: string;
}

export class ResticServer {
  constructor(readonly opts: ResticOptions) {}
  handler = (_req: Request): Promise<Response> =>
    Promise.resolve(new Response(null, { status: 501 }));
}
