// What plan, apply, drift and destroy share once their arguments are parsed: the lab
// re-exec, the manifest, the SSH session (always closed) and choosing nodes.
import type { NetworkNode } from '../model';
import { EngineSession } from '../engine/session';
import { loadArtifacts, type ArtifactSet } from '../engine/artifacts';
import { processStreams, type Streams } from '../views/view';
import { HELP, type EngineArgs, type Parsed } from './arguments';
import { CliError } from './cli-error';
import { labSshOverrides, reexecInLab } from './lab-context';
import { readManifestFile } from './manifest-file';

export interface EngineContext {
  readonly session: EngineSession;
  /** The nodes asked for (all declared ones without --node), in the manifest's order. */
  readonly nodes: readonly NetworkNode[];
  /** The built agent and what ships with it (throws MissingBuildError before `npm run build`). */
  readonly artifacts: () => ArtifactSet;
  readonly streams: Streams;
}

/**
 * Runs `command` with the parsed arguments, or prints `usage` for --help. Every command's
 * errors that are meant for the user arrive as CliErrors.
 */
export async function runParsed<T>(parsed: Parsed<T>, usage: string, command: (args: T) => Promise<number>): Promise<number> {
  if (parsed === HELP) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  return command(parsed);
}

/**
 * Re-executes inside the lab's workstation namespace if --lab asks for it, then runs `body`
 * with a session that is always closed. Returns the exit code.
 */
export async function withEngine(args: EngineArgs, body: (ctx: EngineContext) => Promise<number>): Promise<number> {
  if (args.lab) {
    const code = await reexecInLab(args.lab);
    if (code !== undefined) return code;
  }
  const { manifest } = readManifestFile(args.manifest);
  const session = new EngineSession(
    manifest,
    {
      ...labSshOverrides(args.lab),
      ...(args.sshKey ? { privateKeyPath: args.sshKey } : {}),
      ...(args.knownHosts ? { knownHostsPath: args.knownHosts } : {}),
      ...(args.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
    },
    args.parallel,
  );
  const declared = session.declaredNetwork();
  for (const name of args.nodes) {
    if (!declared.nodes.some((n) => n.name === name))
      throw new CliError(`node '${name}' is not in network '${declared.name}' (nodes: ${declared.nodes.map((n) => n.name).join(', ')})`);
  }
  const nodes = args.nodes.length ? declared.nodes.filter((n) => args.nodes.includes(n.name)) : declared.nodes;
  let artifacts: ArtifactSet | undefined;
  try {
    return await body({ session, nodes, artifacts: () => (artifacts ??= loadArtifacts()), streams: processStreams() });
  } finally {
    await session.close();
  }
}
