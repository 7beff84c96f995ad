import { sleep } from "../sleep.ts";
import { base32Encode } from "../codec/mod.ts";
import {
  addAnnouncement,
  createOperator,
  introductionText,
  loadOperator,
  maintain,
  type OperatorNode,
  readGsd,
  removeAnnouncement,
} from "../roles/operator/mod.ts";
import {
  type Command,
  DIR_OPTION,
  isoTime,
  JSON_OPTION,
  optionalString,
  requireString,
  stringList,
  UsageError,
} from "./command.ts";
import { startOperatorGateway } from "../web/mod.ts";
import { checkStorageUrl, readSecretText } from "../roles/inputs.ts";

async function withOperator<T>(dir: string, fn: (op: OperatorNode) => Promise<T>): Promise<T> {
  const op = await loadOperator(dir);
  try {
    return await fn(op);
  } finally {
    op.node.close();
  }
}

export const operatorCommands: Command[] = [
  {
    name: "create",
    summary: "create an empty grid service directory (GSD) replicated on the given servers",
    usage: "--dir DIR (--storage URL... | --storage-file PATH|-)",
    description:
      "The GSD writecap is kept in DIR/private/gsd-writecap (mode 0600): it is the grid's master " +
      "secret. Refuses to overwrite an existing node.",
    options: {
      dir: DIR_OPTION,
      storage: {
        type: "string",
        multiple: true,
        value: "URL",
        help: "storage URL of a server to hold the GSD",
      },
      "storage-file": {
        type: "string",
        value: "PATH",
        help: "read storage URLs from PATH, one per line ('-': stdin); they are secrets",
      },
      "validity-days": {
        type: "string",
        value: "DAYS",
        help: "how long each signed GSD version stays valid (default 7)",
      },
    },
    async run({ values, err }) {
      const dir = requireString(values, "dir");
      const urls = stringList(values, "storage");
      const file = optionalString(values, "storage-file");
      if (file !== undefined) {
        urls.push(
          ...(await readSecretText(file, "storage URLs")).split("\n").map((l) => l.trim()).filter(
            (l) => l !== "" && !l.startsWith("#"),
          ),
        );
      }
      if (!urls.length) {
        throw new UsageError("give at least one --storage URL (or --storage-file PATH)");
      }
      urls.forEach((u, i) => checkStorageUrl(u, `storage URL #${i + 1}`));
      const v = optionalString(values, "validity-days");
      const validityDays = v === undefined ? undefined : Number(v);
      if (validityDays !== undefined && !(validityDays > 0 && validityDays <= 3650)) {
        throw new UsageError("--validity-days must be a number of days (0 < d <= 3650)");
      }
      const op = await createOperator(dir, urls, { validityDays });
      op.node.close();
      err(
        `created the grid service directory on ${urls.length} server(s); its writecap is in ${dir}/private/`,
      );
      err(`next: 'shoal operator get-introduction-text --dir ${dir}'`);
    },
  },
  {
    name: "get-introduction-text",
    summary: "print the introduction text: <GSD readcap>,<storage URL>[,...]",
    usage: "--dir DIR",
    options: { dir: DIR_OPTION },
    async run({ values, out }) {
      await withOperator(
        requireString(values, "dir"),
        async (op) => out(await introductionText(op)),
      );
    },
  },
  {
    name: "add-announcement",
    summary: "check a storage server's announcement (GSA) and link it into the GSD",
    usage: "--dir DIR READCAP [--name PETNAME]",
    positionals: ["READCAP"],
    options: {
      dir: DIR_OPTION,
      name: {
        type: "string",
        value: "PETNAME",
        help: "entry name v1.PETNAME (default: the announced nickname)",
      },
    },
    async run({ values, positionals, err }) {
      await withOperator(requireString(values, "dir"), async (op) => {
        const r = await addAnnouncement(op, positionals[0], optionalString(values, "name"));
        err(
          `linked '${r.petname}' (server ${
            r.server.serverId.slice(0, 8)
          }, nickname ${r.server.nickname}); GSD version ${r.seqnum}`,
        );
      });
    },
  },
  {
    name: "remove-announcement",
    summary: "unlink an announcement from the GSD (by petname or readcap)",
    usage: "--dir DIR READCAP|PETNAME",
    positionals: ["READCAP|PETNAME"],
    options: { dir: DIR_OPTION },
    async run({ values, positionals, err }) {
      await withOperator(requireString(values, "dir"), async (op) => {
        const r = await removeAnnouncement(op, positionals[0]);
        err(
          `removed '${r.petname}'; GSD version ${r.seqnum}. Clients drop the server at their next refresh.`,
        );
      });
    },
  },
  {
    name: "list",
    summary: "list the servers announced in the GSD",
    usage: "--dir DIR [--json]",
    options: { dir: DIR_OPTION, json: JSON_OPTION },
    async run({ values, out, err }) {
      await withOperator(requireString(values, "dir"), async (op) => {
        const r = await readGsd(op);
        const st = op.node.state;
        const rows = st.servers.map((s) => ({
          petname: s.petname,
          nickname: s.nickname,
          serverId: s.serverId,
          locations: s.storageUrls.map((u) => u.slice(u.indexOf("@") + 1)),
          gsaSeqnum: s.gsaSeqnum,
        }));
        if (values.json) {
          out(
            JSON.stringify(
              {
                gsd: st.gsd &&
                  { seqnum: st.gsd.seqnum, issued: st.gsd.issued, expires: st.gsd.expires },
                servers: rows,
              },
              null,
              2,
            ),
          );
          return;
        }
        if (st.gsd) {
          out(
            `GSD version ${st.gsd.seqnum}, issued ${isoTime(st.gsd.issued)}, expires ${
              isoTime(st.gsd.expires)
            }`,
          );
        }
        if (!rows.length) out("no servers announced yet");
        for (const s of rows) {
          out(
            `${s.petname}\t${s.nickname}\t${s.serverId.slice(0, 16)}\t${
              s.locations.join(";")
            }\tGSA v${s.gsaSeqnum}`,
          );
        }
        for (const p of r.problems) err(`problem: ${p}`);
      });
    },
  },
  {
    name: "maintain",
    summary: "one pass: re-sign the GSD before it expires, repair servers lacking it, renew leases",
    usage: "--dir DIR [--json]",
    options: { dir: DIR_OPTION, json: JSON_OPTION },
    async run({ values, out }) {
      await withOperator(requireString(values, "dir"), async (op) => {
        const r = await maintain(op);
        if (values.json) {
          out(JSON.stringify(
            {
              resigned: r.resigned,
              repaired: r.repaired,
              seqnum: r.seqnum,
              expires: r.expires,
              healthy: r.check.healthy,
              leasesRenewed: r.leasesRenewed,
              leaseFailures: r.leaseFailures,
            },
            null,
            2,
          ));
          return;
        }
        out(
          `GSD version ${r.seqnum}, expires ${isoTime(r.expires)}${
            r.resigned ? " (re-signed)" : ""
          }${r.repaired ? " (repaired)" : ""}`,
        );
        out(`healthy: ${r.check.healthy ? "yes, every server holds the newest version" : "no"}`);
        for (const s of r.check.servers) {
          if (!s.shares.some((sh) => sh.newest)) {
            out(
              `  lacking newest: ${base32Encode(s.serverId).slice(0, 16)}${
                s.error ? ` (${s.error})` : ""
              }`,
            );
          }
        }
        out(`leases renewed on ${r.leasesRenewed} server(s)`);
        for (const f of r.leaseFailures) out(`  lease renewal failed: ${f}`);
      });
    },
  },
  {
    name: "run",
    summary: "run maintenance every interval until interrupted",
    usage: "--dir DIR [--interval SECONDS] [--web-port PORT [--web-refresh SECONDS]]",
    options: {
      dir: DIR_OPTION,
      interval: {
        type: "string",
        value: "SECONDS",
        help: "seconds between maintenance passes (default 3600)",
      },
      "web-port": {
        type: "string",
        value: "PORT",
        help: "serve the operator's status dashboard on 127.0.0.1:PORT (0: a free port)",
      },
      "web-refresh": {
        type: "string",
        value: "SECONDS",
        help: "seconds between the dashboard's reads of the grid (default 10)",
      },
      "show-secrets": { type: "boolean", help: "log the dashboard URL with its access token" },
    },
    async run({ values, err }) {
      const dir = requireString(values, "dir");
      const interval = Number(optionalString(values, "interval") ?? "3600");
      if (!(interval >= 1)) throw new UsageError("--interval must be at least 1 second");
      const webPortText = optionalString(values, "web-port");
      const webPort = webPortText === undefined ? null : Number(webPortText);
      if (webPort !== null && !(Number.isInteger(webPort) && webPort >= 0 && webPort <= 65535)) {
        throw new UsageError("--web-port must be an integer from 0 to 65535");
      }
      const webRefresh = Number(optionalString(values, "web-refresh") ?? "10");
      if (!(webRefresh >= 0.5 && webRefresh <= 86400)) {
        throw new UsageError("--web-refresh must be a number of seconds from 0.5 to 86400");
      }
      await loadOperator(dir).then((op) => op.node.close());
      const ac = new AbortController();
      const stop = () => ac.abort();
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGTERM", stop);
      err(`operator maintenance every ${interval}s`);
      const web = webPort === null ? null : await startOperatorGateway(dir, {
        port: webPort,
        refreshInterval: webRefresh,
        signal: ac.signal,
        log: err,
      });
      if (web) {
        err(`operator dashboard at ${web.url}`);
        err(
          values["show-secrets"]
            ? `dashboard: ${web.url}?token=${web.token}`
            : `dashboard: ${web.url}?token=TOKEN (TOKEN is in ${dir}/private/api-token; ` +
              "--show-secrets logs the whole URL)",
        );
      }
      try {
        while (!ac.signal.aborted) {
          try {
            const r = await withOperator(dir, maintain);
            err(
              `GSD version ${r.seqnum}: ${r.check.healthy ? "healthy" : "not healthy"}${
                r.resigned ? ", re-signed" : ""
              }${r.repaired ? ", repaired" : ""}`,
            );
          } catch (e) {
            err(`maintenance failed: ${(e as Error).message}`);
          }
          await sleep(interval * 1000, ac.signal);
        }
      } finally {
        Deno.removeSignalListener("SIGINT", stop);
        Deno.removeSignalListener("SIGTERM", stop);
        await web?.close();
      }
    },
  },
];
