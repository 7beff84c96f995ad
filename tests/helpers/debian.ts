/**
 * Outside clients and validators that tests drive for real (restic, rclone, litmus, cadaver,
 * promtool, chromium, ...). On a fresh machine of this project's kind they are one `apt-get`
 * away: `ensureTool` installs the Debian package when the binary is missing and we run as root.
 * Installs are serialized through one lock file, so test files running in parallel never race
 * for dpkg's lock.
 */

const LOCK = "/tmp/shoal-test-apt.lock";
let updated = false;

async function have(binary: string): Promise<string | null> {
  for (const dir of ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin"]) {
    const p = `${dir}/${binary}`;
    if (await Deno.stat(p).then((s) => s.isFile, () => false)) return p;
  }
  return null;
}

async function sh(script: string): Promise<boolean> {
  const r = await new Deno.Command("bash", {
    args: ["-c", script],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { DEBIAN_FRONTEND: "noninteractive" },
  }).output().catch(() => null);
  if (r && !r.success) console.error(new TextDecoder().decode(r.stderr).slice(-2000));
  return !!r?.success;
}

/**
 * The absolute path of `binary`, installing Debian's `pkg` (default: `binary`) first when it is
 * missing. Throws with what to do when it cannot be had (not root, or apt-get failed): a test
 * that needs a real client must not pass without it.
 */
export async function ensureTool(binary: string, pkg = binary): Promise<string> {
  const found = await have(binary);
  if (found) return found;
  if (Deno.uid?.() !== 0) {
    throw new Error(`${binary} is missing: install Debian's ${pkg} (apt-get install -y ${pkg})`);
  }
  // flock serializes installs across test processes; apt-get update once per process.
  const update = updated ? "" : "apt-get update -q && ";
  const ok = await sh(
    `exec 9>${LOCK}; flock 9; command -v ${binary} >/dev/null || ` +
      `{ ${update}apt-get install -y -q --no-install-recommends ${pkg}; }`,
  );
  updated = true;
  const path = await have(binary);
  if (!ok || !path) {
    throw new Error(
      `could not install Debian's ${pkg} for ${binary}; run apt-get install -y ${pkg}`,
    );
  }
  return path;
}
