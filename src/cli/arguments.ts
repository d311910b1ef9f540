// Each engine command's arguments, parsed into a typed value (terraform's command/arguments):
// commands read fields, never option strings. Errors are CliErrors that end with the usage.
import { isValidNetworkName, isValidNodeName, parseIpv4 } from '../model';
import type { ViewType } from '../views/view';
import { parseCommandArgs, type OptionSpec } from './args';
import { CliError } from './cli-error';

/** What plan, apply, drift and destroy share. */
export interface EngineArgs {
  /** undefined: the one manifest `cdktf synth` wrote under ./cdktf.out. */
  readonly manifest?: string;
  /** Node names; empty means every node. */
  readonly nodes: readonly string[];
  /** Run inside this lab's workstation namespace, with its key and known_hosts. */
  readonly lab?: string;
  readonly view: ViewType;
  /** Hosts worked on at once, in every phase. */
  readonly parallel: number;
  readonly sshKey?: string;
  readonly knownHosts?: string;
  readonly acceptNewHostKeys: boolean;
}

export const ENGINE_OPTIONS = {
  manifest: { type: 'string' },
  node: { type: 'string', multiple: true },
  lab: { type: 'string' },
  json: { type: 'boolean' },
  parallel: { type: 'string' },
  'accept-new-host-keys': { type: 'boolean' },
  'ssh-key': { type: 'string' },
  'known-hosts': { type: 'string' },
} as const satisfies OptionSpec;

export const ENGINE_USAGE = `  --manifest FILE         network manifest (default: the one under ./cdktf.out)
  --node NAME             only this node (repeatable)
  --lab NAME              reach hosts from lab NAME's workstation namespace, with its key and known_hosts
  --parallel N            hosts at a time, in every phase (default 16)
  --ssh-key FILE          private key for every node (overrides the manifest and --lab)
  --known-hosts FILE      known_hosts for every node (overrides the manifest and --lab)
  --accept-new-host-keys  trust unknown host keys on first use and record them
  --json                  machine-readable output`;

export const DEFAULT_PARALLEL = 16;

/** `--help` was given: the command prints its usage and exits 0. */
export const HELP = Symbol('help');
export type Parsed<T> = T | typeof HELP;

type Values = Record<string, string | boolean | Array<string | boolean> | undefined>;

function parse(argv: string[], options: OptionSpec, usage: string): Values | typeof HELP {
  const values = parseCommandArgs(argv, options, usage).values as Values;
  return values.help ? HELP : values;
}

const str = (v: Values, name: string): string | undefined => v[name] as string | undefined;
const bool = (v: Values, name: string): boolean => v[name] === true;
const view = (v: Values): ViewType => (bool(v, 'json') ? 'json' : 'human');

function engineArgs(v: Values): EngineArgs {
  const parallel = v.parallel === undefined ? DEFAULT_PARALLEL : Number(v.parallel);
  if (!Number.isInteger(parallel) || parallel < 1) throw new CliError(`--parallel ${String(v.parallel)}: must be a whole number >= 1`);
  return {
    ...(str(v, 'manifest') ? { manifest: str(v, 'manifest') } : {}),
    nodes: (v.node as string[] | undefined) ?? [],
    ...(str(v, 'lab') ? { lab: str(v, 'lab') } : {}),
    view: view(v),
    parallel,
    ...(str(v, 'ssh-key') ? { sshKey: str(v, 'ssh-key') } : {}),
    ...(str(v, 'known-hosts') ? { knownHosts: str(v, 'known-hosts') } : {}),
    acceptNewHostKeys: bool(v, 'accept-new-host-keys'),
  };
}

export const PLAN_USAGE = `usage: podnet plan [options]
       podnet plan --offline [--manifest FILE] [--node NAME] [--json]

${ENGINE_USAGE}
  --offline               contact no host: print each host's desired state from the manifest
  --detailed-exitcode     exit 0 when nothing would change, 2 when something would, 1 on error`;

export type PlanArgs =
  | { readonly mode: 'online'; readonly engine: EngineArgs; readonly detailedExitCode: boolean }
  | { readonly mode: 'offline'; readonly manifest?: string; readonly nodes: readonly string[]; readonly view: ViewType };

export function parsePlanArgs(argv: string[]): Parsed<PlanArgs> {
  if (argv.includes('--offline')) {
    const v = parse(
      argv,
      { offline: { type: 'boolean' }, manifest: { type: 'string' }, node: { type: 'string', multiple: true }, json: { type: 'boolean' } },
      PLAN_USAGE,
    );
    if (v === HELP) return HELP;
    return {
      mode: 'offline',
      ...(str(v, 'manifest') ? { manifest: str(v, 'manifest') } : {}),
      nodes: (v.node as string[] | undefined) ?? [],
      view: view(v),
    };
  }
  const v = parse(argv, { ...ENGINE_OPTIONS, 'detailed-exitcode': { type: 'boolean' } }, PLAN_USAGE);
  if (v === HELP) return HELP;
  return { mode: 'online', engine: engineArgs(v), detailedExitCode: bool(v, 'detailed-exitcode') };
}

const LOCK_TIMEOUT_USAGE = `  --lock-timeout D        wait up to D (e.g. 30s, 5m) for a host locked by another apply or
                          destroy (default 0s: fail at once, naming the holder)`;

/**
 * A duration as terraform's -lock-timeout takes it (`0s`, `30s`, `5m`, `1h`, `250ms`; a bare
 * number is seconds), in milliseconds. Throws CliError naming the option.
 */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new CliError(`${option} ${JSON.stringify(text)}: not a duration (e.g. 0s, 30s, 5m)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * scale);
}

const lockTimeout = (v: Values): number =>
  str(v, 'lock-timeout') === undefined ? 0 : parseDuration(str(v, 'lock-timeout')!, '--lock-timeout');

export const APPLY_USAGE = `usage: podnet apply [options]

${ENGINE_USAGE}
  --revision R            record R on the host (used by the cdktf destroy guard)
${LOCK_TIMEOUT_USAGE}`;

export interface ApplyArgs {
  readonly engine: EngineArgs;
  readonly revision?: string;
  /** Milliseconds to wait for a host's lock. */
  readonly lockTimeoutMs: number;
}

export function parseApplyArgs(argv: string[]): Parsed<ApplyArgs> {
  const v = parse(argv, { ...ENGINE_OPTIONS, revision: { type: 'string' }, 'lock-timeout': { type: 'string' } }, APPLY_USAGE);
  if (v === HELP) return HELP;
  return { engine: engineArgs(v), ...(str(v, 'revision') ? { revision: str(v, 'revision') } : {}), lockTimeoutMs: lockTimeout(v) };
}

export const DRIFT_USAGE = `usage: podnet drift [options]

${ENGINE_USAGE}

exit codes: 0 in sync, 2 drift, 1 error. --json prints the drift document (README, Commands):
  { schema, network, inSync, hosts: [{ node, address, inSync, error?: { kind, message },
    differences: [{ kind, action, subject, expected?, actual? }] }] }`;

export interface DriftArgs {
  readonly engine: EngineArgs;
}

export function parseDriftArgs(argv: string[]): Parsed<DriftArgs> {
  const v = parse(argv, ENGINE_OPTIONS, DRIFT_USAGE);
  if (v === HELP) return HELP;
  return { engine: engineArgs(v) };
}

export const DESTROY_USAGE = `usage: podnet destroy [options]
       podnet destroy --network NAME --node NAME --address IP [--ssh-user U] [--ssh-port P] [--ssh-key F] [--known-hosts F] [--lab L] [--if-revision R] [--lock-timeout D] [--json]

${ENGINE_USAGE}
  --if-revision R         only hosts whose recorded revision is R (cdktf replacement guard)
${LOCK_TIMEOUT_USAGE}`;

export type DestroyArgs =
  | { readonly mode: 'manifest'; readonly engine: EngineArgs; readonly ifRevision?: string; readonly lockTimeoutMs: number }
  /** No manifest: a node removed from the model is destroyed after synth wrote a manifest without it. */
  | {
      readonly mode: 'address';
      readonly network: string;
      readonly node: string;
      readonly address: string;
      readonly sshUser: string;
      readonly sshPort: number;
      readonly sshKey?: string;
      readonly knownHosts?: string;
      readonly lab?: string;
      readonly ifRevision?: string;
      readonly lockTimeoutMs: number;
      readonly view: ViewType;
    };

export function parseDestroyArgs(argv: string[]): Parsed<DestroyArgs> {
  if (argv.includes('--address')) {
    const v = parse(
      argv,
      {
        network: { type: 'string' },
        node: { type: 'string' },
        address: { type: 'string' },
        'ssh-user': { type: 'string' },
        'ssh-port': { type: 'string' },
        'ssh-key': { type: 'string' },
        'known-hosts': { type: 'string' },
        lab: { type: 'string' },
        'if-revision': { type: 'string' },
        json: { type: 'boolean' },
        'lock-timeout': { type: 'string' },
      },
      DESTROY_USAGE,
    );
    if (v === HELP) return HELP;
    const [network, node, address] = [str(v, 'network'), str(v, 'node'), str(v, 'address')];
    if (!network || !node || !address) throw new CliError(`--network, --node and --address go together\n\n${DESTROY_USAGE}`);
    // These reach paths and a root shell on the host: the model's own rules, before connecting.
    if (!isValidNetworkName(network)) throw new CliError(`--network ${JSON.stringify(network)}: not a valid network name`);
    if (!isValidNodeName(node)) throw new CliError(`--node ${JSON.stringify(node)}: not a valid node name`);
    if (parseIpv4(address) === undefined) throw new CliError(`--address ${JSON.stringify(address)}: not an IPv4 address`);
    const sshPort = Number(str(v, 'ssh-port') ?? 22);
    if (!Number.isInteger(sshPort) || sshPort < 1 || sshPort > 65535)
      throw new CliError(`--ssh-port ${JSON.stringify(str(v, 'ssh-port'))}: must be 1-65535`);
    return {
      mode: 'address',
      network,
      node,
      address,
      sshUser: str(v, 'ssh-user') ?? 'root',
      sshPort,
      view: view(v),
      lockTimeoutMs: lockTimeout(v),
      ...(str(v, 'ssh-key') ? { sshKey: str(v, 'ssh-key') } : {}),
      ...(str(v, 'known-hosts') ? { knownHosts: str(v, 'known-hosts') } : {}),
      ...(str(v, 'lab') ? { lab: str(v, 'lab') } : {}),
      ...(str(v, 'if-revision') ? { ifRevision: str(v, 'if-revision') } : {}),
    };
  }
  const v = parse(argv, { ...ENGINE_OPTIONS, 'if-revision': { type: 'string' }, 'lock-timeout': { type: 'string' } }, DESTROY_USAGE);
  if (v === HELP) return HELP;
  return {
    mode: 'manifest',
    engine: engineArgs(v),
    ...(str(v, 'if-revision') ? { ifRevision: str(v, 'if-revision') } : {}),
    lockTimeoutMs: lockTimeout(v),
  };
}

export const FORCE_UNLOCK_USAGE = `usage: podnet force-unlock --node NAME [options] LOCK_ID

Removes the host lock of a podnet apply or destroy that is gone (killed, its workstation lost),
when its id is LOCK_ID (the locked error prints it). A lock with another id stays.

${ENGINE_USAGE}`;

export interface ForceUnlockArgs {
  readonly engine: EngineArgs;
  readonly node: string;
  readonly lockId: string;
}

export function parseForceUnlockArgs(argv: string[]): Parsed<ForceUnlockArgs> {
  const values = parseCommandArgs(argv, ENGINE_OPTIONS, FORCE_UNLOCK_USAGE);
  if (values.values.help) return HELP;
  const engine = engineArgs(values.values as Values);
  if (engine.nodes.length !== 1) throw new CliError(`force-unlock works on one host: give exactly one --node\n\n${FORCE_UNLOCK_USAGE}`);
  if (values.positionals.length !== 1 || !/^[A-Za-z0-9-]{1,64}$/.test(values.positionals[0]!))
    throw new CliError(`give the lock's id (the locked error prints it)\n\n${FORCE_UNLOCK_USAGE}`);
  return { engine, node: engine.nodes[0]!, lockId: values.positionals[0]! };
}
