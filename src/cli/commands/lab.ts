// `podnet lab ...`: a lab of real Debian hosts on this machine (see docs/lab.md).
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { CliError } from '../cli-error';
import { labStatusText } from '../../views/lab-view';
import {
  DEFAULT_LAB_NAME,
  hostCommand,
  labDown,
  labStatus,
  labUp,
  podAdd,
  podDel,
  readLab,
  sshOptions,
  wsCommand,
  type LabInfo,
} from '../../lab';

export const summary =
  "a lab of real Debian hosts (systemd-nspawn, or qemu with Debian's kernel) on this machine: up, down, status, exec, ws, pod";

const USAGE = `usage: podnet lab <subcommand> [--name LAB] ...

  up [--hosts N] [--no-bpf HOST[,HOST...]] [--profile HOST=PROFILE[,...]] [--vm HOST[,HOST...]]
                                             build the base image if needed, boot N hosts (default 3);
                                             PROFILE joins traits with '-': ens33 (NIC name), mtu1450,
                                             docker | fwdrop (FORWARD DROP), legacy (iptables-legacy), sysctl,
                                             networkd, ufw, firewalld, nm (NetworkManager) (docs/lab.md);
                                             --vm hosts are qemu guests on Debian's stock kernel (ipip.ko)
  down                                       stop the hosts, unmount, delete the namespaces
  status [--json]                            what is up
  exec HOST -- CMD...                        run CMD inside a host
  ws -- CMD...                               run CMD on the workstation (192.168.0.1)
  pod add HOST POD                           add a pod through the host's CNI config, as a container runtime would
  pod exec HOST POD -- CMD...                run CMD inside a pod
  pod del HOST POD                           delete a pod

--name LAB  the lab's name (default '${DEFAULT_LAB_NAME}', or $PODNET_LAB)`;

function splitDashDash(argv: string[]): [string[], string[]] {
  const i = argv.indexOf('--');
  return i < 0 ? [argv, []] : [argv.slice(0, i), argv.slice(i + 1)];
}

type Parsed = { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };

function parse(argv: string[], extra: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {}): Parsed {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: { name: { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...extra },
    });
  } catch (e) {
    throw new CliError(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
  }
}

const labName = (v: unknown): string => (typeof v === 'string' ? v : process.env.PODNET_LAB || DEFAULT_LAB_NAME);

function inherit(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, { stdio: 'inherit' });
    child.on('error', (e) => {
      process.stderr.write(`podnet: ${e.message}\n`);
      resolve(127);
    });
    child.on('close', (code, sig) => resolve(code ?? (sig ? 128 + 15 : 1)));
  });
}

export function reachText(info: LabInfo): string {
  const ssh = (addr: string): string =>
    `ip netns exec ${info.workstation.netns} ssh ${sshOptions(info.sshKeyPath, info.knownHostsPath).slice(0, 4).join(' ')} root@${addr}`;
  const first = info.hosts[1] ?? info.hosts[0]!;
  return [
    `lab '${info.name}': ${info.hosts.length} hosts, workstation ${info.workstation.address} (netns ${info.workstation.netns}), underlay switch netns ${info.switchNetns}`,
    ...info.hosts.map(
      (h) =>
        `  ${h.name.padEnd(8)} ${h.address.padEnd(14)} ${h.kind === 'vm' ? `VM (qemu, ${(h.accel ?? '?').toUpperCase()}; lab exec goes over SSH)` : `netns ${h.netns}`}${h.bpf ? '' : '  (BPF forbidden)'}${h.profile ? `  profile ${h.profile}` : ''}${h.router ? ` (behind router ${h.router.address}, path MTU ${h.router.mtu})` : ''}`,
    ),
    `ssh key:     ${info.sshKeyPath}`,
    `known_hosts: ${info.knownHostsPath}`,
    'reach a host:',
    `  ${ssh(first.address)}`,
    `  podnet lab exec ${first.name}${info.name === DEFAULT_LAB_NAME ? '' : ` --name ${info.name}`} -- ip -br addr`,
    `take it down: podnet lab down${info.name === DEFAULT_LAB_NAME ? '' : ` --name ${info.name}`}`,
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const [before, after] = splitDashDash(rest);
  const log = (l: string): void => {
    process.stderr.write(`${l}\n`);
  };
  switch (sub) {
    case 'up': {
      const a = parse(before, {
        hosts: { type: 'string' },
        'no-bpf': { type: 'string', multiple: true },
        profile: { type: 'string', multiple: true },
        vm: { type: 'string', multiple: true },
      });
      if (a.values.help) {
        process.stdout.write(USAGE + '\n');
        return 0;
      }
      const hosts = a.values.hosts === undefined ? undefined : Number(a.values.hosts);
      if (hosts !== undefined && !Number.isInteger(hosts)) throw new CliError(`--hosts wants a number, not '${String(a.values.hosts)}'`);
      const list = (v: unknown): string[] => ((v as string[] | undefined) ?? []).flatMap((s) => s.split(',')).filter(Boolean);
      try {
        const profiles = Object.fromEntries(
          list(a.values.profile).map((item) => {
            const [host, profile] = item.split('=', 2);
            if (!host || !profile) throw new CliError(`--profile wants HOST=PROFILE, not '${item}'`);
            return [host, profile];
          }),
        );
        const info = await labUp({
          name: labName(a.values.name),
          hosts,
          noBpfHosts: list(a.values['no-bpf']),
          profiles,
          vmHosts: list(a.values.vm),
          log,
        });
        process.stdout.write(reachText(info) + '\n');
        return 0;
      } catch (e) {
        throw new CliError(e instanceof Error ? e.message : String(e));
      }
    }
    case 'down': {
      const a = parse(before);
      const name = labName(a.values.name);
      if (!readLab(name)) {
        log(`no lab named '${name}' is up`);
        return 0;
      }
      await labDown(name, log);
      log(`lab '${name}' is down`);
      return 0;
    }
    case 'status': {
      const a = parse(before, { json: { type: 'boolean' } });
      const st = labStatus(labName(a.values.name));
      process.stdout.write(labStatusText(a.values.json ? 'json' : 'human', st));
      if (a.values.json || st.status === 'down' || !st.info) return 0;
      return st.hosts.every((h) => h.running) ? 0 : 1;
    }
    case 'exec': {
      const a = parse(before);
      const host = a.positionals[0];
      if (!host || after.length === 0) throw new CliError(`usage: podnet lab exec HOST -- CMD...`);
      return inherit(wrap(() => hostCommand(labName(a.values.name), host, after)));
    }
    case 'ws': {
      const a = parse(before);
      if (after.length === 0) throw new CliError('usage: podnet lab ws -- CMD...');
      return inherit(wrap(() => wsCommand(labName(a.values.name), after)));
    }
    case 'pod': {
      const a = parse(before);
      const [verb, host, pod] = a.positionals;
      const name = labName(a.values.name);
      if (!host || !pod) throw new CliError('usage: podnet lab pod add|exec|del HOST POD [-- CMD...]');
      try {
        if (verb === 'add') {
          const { ip } = await podAdd(name, host, pod);
          process.stdout.write(`${host}/${pod} ${ip}\n`);
          return 0;
        }
        if (verb === 'del') {
          await podDel(name, host, pod);
          return 0;
        }
      } catch (e) {
        throw new CliError(e instanceof Error ? e.message : String(e));
      }
      if (verb === 'exec') {
        if (after.length === 0) throw new CliError('usage: podnet lab pod exec HOST POD -- CMD...');
        return inherit(wrap(() => hostCommand(name, host, ['ip', 'netns', 'exec', pod, ...after])));
      }
      throw new CliError(`unknown pod verb '${verb ?? ''}'\n\n${USAGE}`);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return sub ? 0 : 1;
    default:
      throw new CliError(`unknown lab subcommand '${sub}'\n\n${USAGE}`);
  }
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e));
  }
}
