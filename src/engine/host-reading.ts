// Reading everything podnet cares about on a host in one SSH round trip: a shell script
// prints tagged sections, parsed here. One exec per host keeps plan and drift fast.
import { LIVE_READ_NAMES, liveStateReads, parseLiveState, type LiveHostState, type LiveRead } from '../host/live-state';
import {
  agentConfigPath,
  cniConfLocation,
  DEFAULT_CNI_CONF_DIR,
  INSTALL_DIR,
  revisionPath,
  RUNTIME_PATH,
  statusPath,
  unitName,
  unitPath,
} from '../model';
import type { HostNode } from './runtime-choice';
import { shQuote } from '../ssh';

export interface UnitState {
  readonly activeState: string; // active, inactive, failed, ...
  readonly unitFileState: string; // enabled, disabled, "" when absent
  /** loaded, not-found, ...: whether systemd holds a definition a changed file would need reloading over. */
  readonly loadState: string;
}

export interface HostReading {
  readonly live: LiveHostState;
  readonly unit: UnitState;
  readonly unitFile?: string;
  readonly config?: string;
  readonly revision?: string;
  /** The agent's status file, raw JSON. */
  readonly status?: string;
  /** sha256 of installed files by remote path. */
  readonly hashes: Readonly<Record<string, string>>;
  /** Where the runtime symlink points, if installed. */
  readonly runtimeTarget?: string;
  /** The `node` on the host's PATH, if any (a candidate runtime for the agent). */
  readonly hostNode?: HostNode;
}

const MARK = '@@podnet:';

/** Symlinks the probe follows on the way to the host's node before it gives up (and fails closed); Linux's own limit is 40. */
export const HOST_NODE_MAX_HOPS = 40;

/**
 * Prints the host's `node` (first on PATH) and the binary it resolves to; then every path that
 * binary is reached through that root does not hold alone (a directory or file not owned by uid
 * 0, or writable by group or others), as `untrusted UID MODE PATH`. The path is resolved as the
 * kernel does, one component at a time, following every symlink, file or directory, to its
 * target: each directory it passes through, each directory holding a symlink it follows, and the
 * binary are checked, up to `/`. Someone who can write one of them can swap the binary the agent
 * runs as root (review finding 17), so then nothing else is done: the binary is not run, not even
 * for `--version`. More than HOST_NODE_MAX_HOPS symlinks, or a find that fails (one without
 * -printf, say), adds `unchecked`, which counts the same: the check fails closed. Else `linked`
 * when a running agent already uses it (its version was checked when it was linked: `node
 * --version` costs ~25 ms of CPU, a fifth of a no-op read), else its version. Expects `$u` to hold
 * the unit's `systemctl show` output and `$r` where the runtime link points, both read earlier.
 */
export const HOST_NODE_PROBE = [
  'p=$(command -v node 2>/dev/null) && printf \'%s\\n\' "$p" && {',
  '  readlink -f "$p"; set --; todo=${p#/}; d=; i=0; over=',
  '  while [ -n "$todo" ]; do',
  '    x=${todo%%/*}; case $todo in */*) todo=${todo#*/};; *) todo=;; esac',
  "    case $x in ''|.) continue;; ..) d=${d%/*}; continue;; esac",
  '    if [ -L "$d/$x" ]; then',
  `      i=$((i+1)); [ $i -le ${HOST_NODE_MAX_HOPS} ] || { over=1; break; }`,
  '      t=$(readlink "$d/$x"); case $t in /*) d=;; esac; t=${t#/}; todo=$t${todo:+/$todo}',
  '    else d=$d/$x; set -- "$@" "$d"; fi',
  '  done',
  '  bad=$(find / "$@" -maxdepth 0 ! -type l \\( ! -user 0 -o -perm /022 \\) -printf \'untrusted %U %m %p\\n\' 2>/dev/null) || over=1',
  '  [ -z "$over" ] || bad="$bad\nunchecked"',
  '  if [ -n "$bad" ]; then printf \'%s\\n\' "$bad";',
  '  elif [ "$r" = "$p" ] && case "$u" in *ActiveState=active*) true;; *) false;; esac; then echo linked;',
  '  else "$p" --version 2>/dev/null; fi; }',
].join('\n');

/** Thrown when a read the agent requires (LiveRead.required) fails on the host: drift must not mistake it for empty state. */
export class HostReadError extends Error {
  override readonly name = 'HostReadError';
}

const FAILED = '@@failed@@';

/**
 * A live-state read as a script line; every output ends with a presence marker (see
 * optionalFile), and a required command that fails prints FAILED instead, as the agent's own
 * read would throw.
 */
function readCommand(read: LiveRead): string {
  const argv = read.source === 'file' ? ['cat', read.path] : read.argv;
  const line = `${argv.map(shQuote).join(' ')} 2>/dev/null && echo '@@present@@'`;
  return read.source === 'command' && read.required ? `${line} || echo '${FAILED}'` : line;
}

/**
 * `cni` is where the network's conflist goes (DesiredHostState's `cni`: its directory and path);
 * the default is for a network with the default cniConfDir.
 */
export function hostReadScript(
  network: string,
  cni: { readonly dir: string; readonly path: string } = cniConfLocation(network, DEFAULT_CNI_CONF_DIR),
): string {
  const unit = unitName(network);
  const reads = liveStateReads(network, cni);
  return [
    'set +e',
    `sec() { printf '\\n${MARK}%s\\n' "$1"; }`,
    ...LIVE_READ_NAMES.map((name) => `sec ${name}; ${readCommand(reads[name])}`),
    `sec unit; u=$(systemctl show -p LoadState -p ActiveState -p UnitFileState ${unit} 2>/dev/null); printf '%s\\n' "$u"`,
    `sec unitfile; cat ${unitPath(network)} 2>/dev/null && echo '@@present@@'`,
    `sec config; cat ${agentConfigPath(network)} 2>/dev/null && echo '@@present@@'`,
    `sec revision; cat ${revisionPath(network)} 2>/dev/null`,
    `sec status; cat ${statusPath(network)} 2>/dev/null`,
    // Every shipped file sits directly in INSTALL_DIR (the runtime is in a subdirectory).
    `sec hashes; find ${INSTALL_DIR} -maxdepth 1 -type f -exec sha256sum {} + 2>/dev/null`,
    `sec runtime; r=$(readlink ${RUNTIME_PATH} 2>/dev/null); printf '%s\\n' "$r"`,
    `sec hostnode; ${HOST_NODE_PROBE}`,
    'sec end',
    'exit 0',
  ].join('\n');
}

function sections(output: string): Map<string, string> {
  const map = new Map<string, string>();
  const parts = output.split(`\n${MARK}`);
  for (const part of parts.slice(1)) {
    const nl = part.indexOf('\n');
    const name = nl < 0 ? part : part.slice(0, nl);
    map.set(name, nl < 0 ? '' : part.slice(nl + 1));
  }
  return map;
}

/** A section whose command printed a trailing presence marker: undefined when the file was absent. */
function optionalFile(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const end = text.lastIndexOf('@@present@@');
  return end < 0 ? undefined : text.slice(0, end);
}

export function parseHostNode(section: string): HostNode | undefined {
  const [path, realPath, ...rest] = section
    .trim()
    .split('\n')
    .map((l) => l.trim());
  if (!path?.startsWith('/')) return undefined;
  // The probe may pass a directory twice (a link leading back through it): once each here.
  const untrusted = [...new Set(rest)].flatMap((l) => {
    const m = /^untrusted (\d+) ([0-7]+) (\/.*)$/.exec(l);
    return m ? [{ path: m[3]!, uid: Number(m[1]), mode: m[2]! }] : [];
  });
  if (rest.includes('unchecked')) return { path, realPath: realPath || path, untrusted, unchecked: true };
  if (untrusted.length > 0) return { path, realPath: realPath || path, untrusted };
  if (rest[0] === 'linked') return { path, linked: true };
  return { path, realPath: realPath || path, version: rest[0] ?? '' };
}

export function parseHostReading(output: string): HostReading {
  const s = sections(output);
  if (!s.has('end')) throw new Error('host read was cut short (no end marker)');
  const unitProps = new Map(
    (s.get('unit') ?? '')
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string])
      .filter((kv) => kv.length === 2),
  );
  const hashes: Record<string, string> = {};
  for (const line of (s.get('hashes') ?? '').split('\n')) {
    const m = /^([0-9a-f]{64})\s+(\S+)$/.exec(line.trim());
    if (m) hashes[m[2]!] = m[1]!;
  }
  const unitFile = optionalFile(s.get('unitfile'));
  const config = optionalFile(s.get('config'));
  const revision = (s.get('revision') ?? '').trim();
  const status = (s.get('status') ?? '').trim();
  const runtime = (s.get('runtime') ?? '').trim();
  const hostNode = parseHostNode(s.get('hostnode') ?? '');
  const failed = LIVE_READ_NAMES.filter((name) => (s.get(name) ?? '').trimEnd().endsWith(FAILED));
  if (failed.length > 0)
    throw new HostReadError(`reading the host's live state failed: ${failed.join(', ')} (see liveStateReads for the commands)`);
  return {
    live: parseLiveState(Object.fromEntries(LIVE_READ_NAMES.map((name) => [name, optionalFile(s.get(name))]))),
    unit: {
      activeState: unitProps.get('ActiveState') ?? 'unknown',
      unitFileState: unitProps.get('UnitFileState') ?? '',
      loadState: unitProps.get('LoadState') ?? 'unknown',
    },
    ...(unitFile !== undefined ? { unitFile } : {}),
    ...(config !== undefined ? { config } : {}),
    ...(revision ? { revision } : {}),
    ...(status ? { status } : {}),
    hashes,
    ...(runtime ? { runtimeTarget: runtime } : {}),
    ...(hostNode ? { hostNode } : {}),
  };
}
