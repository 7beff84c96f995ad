/**
 * The operator role: creates the grid service directory (GSD), links and
 * unlinks announcements, re-signs and repairs. docs/discovery.md §6.
 *
 *   OP/shoal.toml                 settings (GSD validity)
 *   OP/private/gsd-writecap       the GSD writecap (0600) — the grid's master secret
 *   OP/private/introduction-text  GSD readcap + the create-time storage URLs (0600)
 *   OP/private/servers.json       the servers in the GSD, as last read (0600)
 *   OP/private/lease-secret       this node's lease secret (0600)
 */
import { describeUnknownKey, parseTomlText, trackReads, unreadKeys } from "../tomlconf.ts";
import { base32Encode } from "../../codec/mod.ts";
import {
  type Cap,
  CapError,
  formatCap,
  leaseSecrets,
  parseCap,
  readcapOf,
} from "../../crypto/mod.ts";
import {
  ClientPool,
  decodeAnnouncement,
  DEFAULT_GSD_VALIDITY_SECONDS,
  formatIntroductionText,
  GSD_ENTRY_SERVER_ID,
  gsdEntryName,
  gsdLinks,
  gsdMeta,
  parseGsdMeta,
  petnameFromNickname,
  type RecordedServer,
  validatePetname,
} from "../../discovery/mod.ts";
import { type CheckResult, Grid, RollbackError, ServerList } from "../../grid/mod.ts";
import { parseStorageUrl, type StorageUrl } from "../../storage/mod.ts";
import { GridNode, LEASE_SECRET_FILE } from "../gridnode.ts";
import {
  exists,
  loadOrCreateSecret,
  makePrivateDir,
  normalizeDir,
  readTextOrNull,
  writeFileAtomic,
  writePrivate,
} from "../nodefs.ts";

export const GSD_WRITECAP_FILE = "private/gsd-writecap";
/**
 * The newest GSD version this operator published. A change is never built on an older version
 * read from the grid (a read that reached only lagging servers), so a change can never drop
 * the entries of the versions it did not see, nor fork a version number.
 */
export const GSD_SEQNUM_FILE = "private/gsd-seqnum";
const CONFIG_FILE = "shoal.toml";

export class OperatorError extends Error {
  override name = "OperatorError";
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

export interface OperatorNode {
  dir: string;
  gsdWritecap: string;
  node: GridNode;
  validity: number;
  /** The newest GSD version this operator published (0 when none is recorded). */
  published: number;
}

async function readPublished(dir: string): Promise<number> {
  const text = await readTextOrNull(`${dir}/${GSD_SEQNUM_FILE}`);
  const n = text === null ? 0 : Number(text.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

async function recordPublished(op: OperatorNode, seqnum: number | undefined): Promise<void> {
  if (seqnum === undefined || seqnum <= op.published) return;
  op.published = seqnum;
  await writePrivate(`${op.dir}/${GSD_SEQNUM_FILE}`, `${seqnum}\n`);
}

/** `fn`, with a rollback (only older GSD versions readable) said as what the operator can do. */
async function stepOut<T>(fn: () => Promise<T>, op: OperatorNode): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof RollbackError) {
      throw new OperatorError(
        `only versions older than ${op.published} of the grid service directory (the newest ` +
          `this operator published) could be read, so changing it now would drop what came ` +
          `since: start the storage servers that hold it, or wait until they answer, and try ` +
          `again (${e.message})`,
      );
    }
    throw e;
  }
}

/**
 * Change the GSD on `grid`'s servers: built only on a version at least as new as the newest
 * this operator published (else an error saying that only older versions were reachable),
 * and the new version recorded.
 */
async function changeGsd(
  op: OperatorNode,
  grid: Grid,
  change: Parameters<Grid["modifyDirectory"]>[1],
) {
  const res = await stepOut(() =>
    grid.modifyDirectory(op.gsdWritecap, change, {
      encoding: "everywhere",
      minSeqnum: op.published || undefined,
    }), op);
  await recordPublished(op, res?.seqnum);
  return res;
}

export function renderOperatorConfig(validityDays: number): string {
  return [
    "# Shoal operator node. Secrets live in private/ (mode 0600); never share gsd-writecap.",
    "[operator]",
    "# How long each signed version of the grid service directory stays valid.",
    "# `shoal operator maintain` (or `run`) re-signs it when half of this is left.",
    `gsd_validity_days = ${validityDays}`,
    "",
  ].join("\n");
}

/**
 * The operator's shoal.toml: the GSD validity in seconds. Unknown keys and bad values are errors
 * that name the file, the line and the value found.
 */
export function parseOperatorConfig(text: string, file: string): { validity: number } {
  const raw = parseTomlText(text, file, (m) => new OperatorError(m));
  const used = new Set<string>();
  const doc = trackReads(raw, used);
  const days = (doc.operator as Record<string, unknown> | undefined)?.gsd_validity_days;
  for (const u of unreadKeys(raw, used, text)) throw new OperatorError(describeUnknownKey(file, u));
  if (days === undefined) return { validity: DEFAULT_GSD_VALIDITY_SECONDS };
  if (typeof days !== "number" || !(days > 0) || days > 3650) {
    throw new OperatorError(
      `${file}: operator.gsd_validity_days must be a number of days (0 < d <= 3650), found ${
        JSON.stringify(days)
      }`,
    );
  }
  return { validity: Math.round(days * 86400) };
}

async function readValidity(dir: string): Promise<number> {
  const file = `${dir}/${CONFIG_FILE}`;
  const text = await readTextOrNull(file);
  return text === null ? DEFAULT_GSD_VALIDITY_SECONDS : parseOperatorConfig(text, file).validity;
}

export async function loadOperator(dirArg: string): Promise<OperatorNode> {
  const dir = normalizeDir(dirArg);
  const cap = await readTextOrNull(`${dir}/${GSD_WRITECAP_FILE}`);
  if (cap === null) {
    throw new OperatorError(
      `${dir} is not an operator node (no ${GSD_WRITECAP_FILE}); create one with 'shoal operator create'`,
    );
  }
  const node = await GridNode.load(dir);
  if (!node) {
    throw new OperatorError(
      `${dir} is missing its introduction text; the operator node is damaged`,
    );
  }
  return {
    dir,
    gsdWritecap: cap.trim(),
    node,
    validity: await readValidity(dir),
    published: await readPublished(dir),
  };
}

/** Create an empty GSD replicated on the given servers. Returns the operator node. */
export async function createOperator(
  dirArg: string,
  storageUrlTexts: string[],
  opts: { validityDays?: number } = {},
): Promise<OperatorNode> {
  const dir = normalizeDir(dirArg);
  if (storageUrlTexts.length === 0) {
    throw new OperatorError("give at least one --storage URL to hold the GSD");
  }
  const urls: StorageUrl[] = storageUrlTexts.map((t, i) => {
    try {
      return parseStorageUrl(t);
    } catch (e) {
      throw new OperatorError(
        `--storage #${i + 1} is not a valid storage URL: ${(e as Error).message}`,
      );
    }
  });
  if (await exists(`${dir}/${GSD_WRITECAP_FILE}`) || await exists(`${dir}/${CONFIG_FILE}`)) {
    throw new OperatorError(`${dir} already holds a node; choose another --dir`);
  }
  await Deno.mkdir(dir, { recursive: true });
  await makePrivateDir(dir);
  const validity = Math.round((opts.validityDays ?? DEFAULT_GSD_VALIDITY_SECONDS / 86400) * 86400);
  const leaseSecret = await loadOrCreateSecret(`${dir}/${LEASE_SECRET_FILE}`);
  const pool = new ClientPool();
  let writecap: string;
  try {
    const servers = new ServerList(urls.map((u) => pool.server(u)));
    const grid = new Grid({ servers, leaseSecret, mutableEncoding: "everywhere" });
    writecap = await grid.createDirectory([], "everywhere", { ...gsdMeta(now(), validity) });
  } finally {
    pool.close();
  }
  const readcap = await readcapOf(parseCap(writecap)) as Extract<Cap, { kind: "dir-read" }>;
  await writePrivate(`${dir}/${GSD_WRITECAP_FILE}`, writecap + "\n");
  await writePrivate(`${dir}/${GSD_SEQNUM_FILE}`, "1\n"); // a new directory is version 1
  await GridNode.recordIntroduction(
    dir,
    formatIntroductionText({ gsdReadcap: readcap, storageUrls: urls }),
  );
  await writeFileAtomic(`${dir}/${CONFIG_FILE}`, renderOperatorConfig(validity / 86400));
  return await loadOperator(dir);
}

/** Servers the GSD is published to: every announced server plus the create-time ones. */
function publishUrls(op: OperatorNode, extra: StorageUrl[] = []): StorageUrl[] {
  return op.node.knownUrls(extra);
}

/** The current GSD as the operator reads it (and the discovery state it implies). */
export async function readGsd(op: OperatorNode) {
  const result = await op.node.refresh({ quick: false, fanout: 3 });
  return result;
}

/** `<GSD readcap>,<storage URL>...` using servers in the GSD and the create-time ones. */
export async function introductionText(
  op: OperatorNode,
  opts: { refresh?: boolean } = {},
): Promise<string> {
  if (opts.refresh ?? true) {
    try {
      await readGsd(op);
    } catch { /* fall back to what is recorded */ }
  }
  return formatIntroductionText({
    gsdReadcap: op.node.intro.gsdReadcap,
    storageUrls: op.node.knownUrls(),
  });
}

export interface AddResult {
  petname: string;
  server: RecordedServer;
  seqnum: number;
}

/** Validate the GSA behind `readcapText` and link it as `v1.<petname>`. */
export async function addAnnouncement(
  op: OperatorNode,
  readcapText: string,
  petnameArg?: string,
): Promise<AddResult> {
  let cap: Cap;
  try {
    cap = parseCap(readcapText.trim());
  } catch (e) {
    throw new OperatorError(
      `not a valid announcement readcap: ${e instanceof CapError ? e.message : String(e)}`,
    );
  }
  if (cap.kind === "mutable-write") {
    throw new OperatorError(
      "that is an announcement WRITEcap; the operator takes only the readcap (MUT-R1) — never hold a server's writecap",
    );
  }
  if (cap.kind !== "mutable-read") {
    throw new OperatorError(`an announcement readcap is a MUT-R1 cap, not a ${cap.kind} cap`);
  }
  const capText = formatCap(cap);
  await readGsd(op);
  const current = op.node.state.servers;
  if (current.some((s) => s.gsaReadcap === capText)) {
    throw new OperatorError("that announcement is already linked in the grid service directory");
  }
  // Read the announcement from every server we know.
  const grid = op.node.grid(publishUrls(op));
  let announcement;
  let seqnum: number;
  try {
    const r = await grid.readMutable(cap);
    announcement = decodeAnnouncement(r.contents);
    seqnum = r.seqnum;
  } catch (e) {
    throw new OperatorError(
      `could not read a valid announcement behind that readcap from the ${grid.servers.size} known servers: ${
        (e as Error).message
      }` +
        " (has the server run 'shoal storage join'?)",
    );
  }
  if (!announcement.storage) throw new OperatorError("the announcement offers no storage service");
  const serverId = base32Encode(announcement.serverId);
  const dup = current.find((s) => s.serverId === serverId);
  if (dup) {
    throw new OperatorError(
      `server ${serverId.slice(0, 8)} is already announced as '${dup.petname}'`,
    );
  }
  const petname = validatePetname(petnameArg ?? petnameFromNickname(announcement.nickname));
  if (current.some((s) => s.petname === petname)) {
    throw new OperatorError(`the petname '${petname}' is taken; choose another with --name`);
  }
  // The server must be reachable by its pin.
  const url = announcement.storage.storageUrls[0];
  try {
    await op.node.pool.server(url).storage.version();
  } catch (e) {
    throw new OperatorError(
      `the announced server is not reachable at its storage URL: ${(e as Error).message}`,
    );
  }
  const target = op.node.grid(publishUrls(op, announcement.storage.storageUrls));
  const name = gsdEntryName(petname);
  const t = now();
  const res = await changeGsd(op, target, (entries) => {
    if (entries.some((e) => e.name === name)) {
      throw new OperatorError(`the petname '${petname}' is taken; choose another with --name`);
    }
    return {
      // The entry is bound to the server id verified above: clients refuse a GSA behind it
      // that later claims another (docs/discovery.md §3, "Binding").
      entries: [...entries, {
        name,
        readcap: capText,
        metadata: { ctime: t, mtime: t, [GSD_ENTRY_SERVER_ID]: serverId },
      }],
      meta: { ...gsdMeta(t, op.validity) },
    };
  });
  await readGsd(op).catch(() => {});
  const server = op.node.state.servers.find((s) => s.serverId === serverId) ?? {
    petname,
    nickname: announcement.nickname,
    serverId,
    storageUrls: [],
    software: announcement.software,
    announced: announcement.announced,
    gsaReadcap: capText,
    gsaSeqnum: seqnum,
    gsaCheckstring: "",
  };
  return { petname, server, seqnum: res?.seqnum ?? 0 };
}

/** Unlink an announcement by petname or readcap, and republish. */
export async function removeAnnouncement(
  op: OperatorNode,
  which: string,
): Promise<{ petname: string; seqnum: number }> {
  await readGsd(op);
  let capText: string | null = null;
  if (which.startsWith("shoal:")) {
    try {
      capText = formatCap(parseCap(which.trim()));
    } catch (e) {
      throw new OperatorError(`not a valid readcap: ${(e as Error).message}`);
    }
  }
  const server = op.node.state.servers.find((s) =>
    capText ? s.gsaReadcap === capText : s.petname === which
  );
  // Also look at raw GSD entries (an entry whose GSA could not be read is still removable).
  const grid = op.node.grid(publishUrls(op));
  const listing = await grid.listDirectory(op.gsdWritecap);
  const { links } = gsdLinks(listing.entries);
  const link = links.find((l) => capText ? l.gsaReadcapText === capText : l.petname === which);
  if (!link) {
    throw new OperatorError(
      `no announcement '${capText ? "(that readcap)" : which}' is linked in the GSD`,
    );
  }
  const removedPin = server ? server.serverId : null;
  // Publish to every server, the removed one included this last time: a share there wakes
  // the clients watching it, which then learn of the removal at once. Later versions leave it out.
  const target = op.node.grid(publishUrls(op));
  const t = now();
  const res = await changeGsd(op, target, (entries, _meta) => ({
    entries: entries.filter((e) => e.name !== gsdEntryName(link.petname)),
    meta: { ...gsdMeta(t, op.validity) },
  }));
  // Drop the removed server from the create-time list too, so it is no longer a bootstrap server.
  if (removedPin) {
    const intro = op.node.intro;
    const keep = intro.storageUrls.filter((u) => base32Encode(u.pin) !== removedPin);
    if (keep.length !== intro.storageUrls.length && keep.length > 0) {
      await GridNode.recordIntroduction(
        op.dir,
        formatIntroductionText({ gsdReadcap: intro.gsdReadcap, storageUrls: keep }),
      );
    }
  }
  const reloaded = await loadOperator(op.dir);
  await readGsd(reloaded).catch(() => {});
  reloaded.node.close();
  return { petname: link.petname, seqnum: res?.seqnum ?? listing.seqnum };
}

export interface MaintainReport {
  resigned: boolean;
  repaired: boolean;
  seqnum: number;
  expires: number;
  check: CheckResult;
  leasesRenewed: number;
  leaseFailures: string[];
}

/** Re-sign the GSD if half its validity is gone; repair servers lacking the newest; renew leases. */
export async function maintain(op: OperatorNode): Promise<MaintainReport> {
  await readGsd(op).catch(() => {});
  const grid = op.node.grid(publishUrls(op));
  const listing = await stepOut(
    () => grid.listDirectory(op.gsdWritecap, { minSeqnum: op.published || undefined }),
    op,
  );
  const meta = parseGsdMeta(listing.meta);
  const t = now();
  let resigned = false;
  let repaired = false;
  let seqnum = listing.seqnum;
  let expires = meta.expires;
  const before = await grid.checkMutable(op.gsdWritecap);
  if (meta.expires - t < (meta.expires - meta.issued) / 2 || !before.healthy) {
    const m = gsdMeta(t, op.validity);
    const res = await changeGsd(op, grid, (entries) => ({ entries, meta: { ...m } }));
    resigned = meta.expires - t < (meta.expires - meta.issued) / 2;
    repaired = !before.healthy;
    seqnum = res?.seqnum ?? seqnum;
    expires = m.expires;
  }
  const check = await grid.checkMutable(op.gsdWritecap);
  let leasesRenewed = 0;
  const leaseFailures: string[] = [];
  await Promise.all(
    grid.servers.all().map(async (s) => {
      try {
        const l = leaseSecrets(op.node.leaseSecret, check.storageIndex, s.serverId);
        await s.storage.renewLease(check.storageIndex, { renew: l.renew, cancel: l.cancel });
        leasesRenewed++;
      } catch (e) {
        leaseFailures.push(`${base32Encode(s.serverId).slice(0, 8)}: ${(e as Error).message}`);
      }
    }),
  );
  return { resigned, repaired, seqnum, expires, check, leasesRenewed, leaseFailures };
}
