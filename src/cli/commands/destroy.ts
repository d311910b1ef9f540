// `podnet destroy`: stop the agent, have it tear down what it created, remove podnet's files.
// --if-revision R (used by the cdktf destroy-time provisioner) skips a host whose recorded
// revision is not R: a newer apply has replaced that resource, so the network must stay.
// With --network and --address it needs no manifest: a node removed from the model is
// destroyed after synth has already written a manifest without it.
import { destroyHost } from '../../engine/apply';
import { agentConfigPath, isValidNetworkName, isValidNodeName, parseIpv4, revisionPath, unitPath } from '../../model';
import { SshConnection, type SshTarget } from '../../ssh';
import { parseCommandArgs } from '../args';
import { CliError } from '../cli-error';
import { ENGINE_USAGE, runEngineCommand } from '../engine-command';
import { labSshOverrides, reexecInLab } from '../lab-context';

export const summary = 'remove the agent and everything it created from each host';

const USAGE = `usage: podnet destroy [options]
       podnet destroy --network NAME --node NAME --address IP [--ssh-user U] [--ssh-port P] [--ssh-key F] [--known-hosts F] [--lab L] [--if-revision R]

${ENGINE_USAGE}
  --if-revision R         only hosts whose recorded revision is R (cdktf replacement guard)`;

type Result = { node: string; ok: boolean; actions: string[]; error?: string };

function print(results: Result[], json: boolean, network: string): number {
  if (json) process.stdout.write(JSON.stringify({ schema: 'podnet.dev/destroy/v1', network, hosts: results }, null, 2) + '\n');
  else for (const r of results) process.stdout.write(r.ok ? `${r.node}: ${r.actions.join(', ')}\n` : `${r.node}: FAILED: ${r.error}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}

async function destroyOne(conn: SshConnection, node: string, network: string, guard: string | undefined): Promise<Result> {
  if (guard) {
    const held = (await conn.exec(`cat ${revisionPath(network)} 2>/dev/null`, { allowFailure: true })).stdout.trim();
    if (held && held !== guard) return { node, ok: true, actions: [`skipped: host holds revision ${held}, not ${guard}`] };
  }
  return { node, ok: true, actions: await destroyHost(conn, network, agentConfigPath(network), unitPath(network)) };
}

/** Manifest-free form: everything needed is on the command line (the cdktf destroy provisioner). */
async function destroyByAddress(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    network: { type: 'string' }, node: { type: 'string' }, address: { type: 'string' }, 'ssh-user': { type: 'string' }, 'ssh-port': { type: 'string' },
    'ssh-key': { type: 'string' }, 'known-hosts': { type: 'string' }, lab: { type: 'string' }, 'if-revision': { type: 'string' }, json: { type: 'boolean' },
  }, USAGE);
  if (!values.network || !values.node || !values.address) throw new CliError(`--network, --node and --address go together\n\n${USAGE}`);
  // These reach paths and a root shell on the host: the model's own rules, before connecting.
  if (!isValidNetworkName(values.network)) throw new CliError(`--network ${JSON.stringify(values.network)}: not a valid network name`);
  if (!isValidNodeName(values.node)) throw new CliError(`--node ${JSON.stringify(values.node)}: not a valid node name`);
  if (parseIpv4(values.address) === undefined) throw new CliError(`--address ${JSON.stringify(values.address)}: not an IPv4 address`);
  const port = Number(values['ssh-port'] ?? 22);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`--ssh-port ${JSON.stringify(values['ssh-port'])}: must be 1-65535`);
  if (values.lab) {
    const code = await reexecInLab(values.lab);
    if (code !== undefined) return code;
  }
  const lab = labSshOverrides(values.lab);
  const user = values['ssh-user'] ?? 'root';
  const target: SshTarget = {
    host: values.address, port, user, sudo: user !== 'root', label: values.node,
    ...(values['ssh-key'] ?? lab.privateKeyPath ? { privateKeyPath: values['ssh-key'] ?? lab.privateKeyPath } : {}),
    ...(values['known-hosts'] ?? lab.knownHostsPath ? { knownHostsPath: values['known-hosts'] ?? lab.knownHostsPath } : {}),
  };
  let result: Result;
  try {
    const conn = await SshConnection.connect(target);
    try {
      result = await destroyOne(conn, values.node, values.network, values['if-revision']);
    } finally {
      await conn.close();
    }
  } catch (err) {
    result = { node: values.node, ok: false, actions: [], error: (err as Error).message };
  }
  return print([result], values.json ?? false, values.network);
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--address')) return destroyByAddress(argv);
  return runEngineCommand(argv, { 'if-revision': { type: 'string' } }, USAGE, async (ctx, values) => {
    const guard = values['if-revision'] as string | undefined;
    const network = ctx.declared.name;
    const results = await Promise.all(
      ctx.nodes.map(async (node): Promise<Result> => {
        try {
          return await destroyOne(await ctx.session.connection(node), node.name, network, guard);
        } catch (err) {
          return { node: node.name, ok: false, actions: [], error: (err as Error).message };
        }
      }),
    );
    return print(results, ctx.json, network);
  });
}
