// `--lab NAME`: talk to a podnet lab's hosts the only allowed way, from the lab's
// workstation network namespace. The CLI re-executes itself there (ip netns exec), and
// takes the lab's SSH key and known_hosts unless the manifest names others.
import { spawn } from 'node:child_process';
import { readLab } from '../lab';
import { CliError } from './cli-error';
import type { SshOverrides } from '../engine/session';

const IN_LAB_ENV = 'PODNET_IN_LAB_WS';

/** Returns undefined when already inside the workstation namespace; otherwise the child's exit code. */
export async function reexecInLab(lab: string): Promise<number | undefined> {
  if (process.env[IN_LAB_ENV] === lab) return undefined;
  const info = readLab(lab);
  if (!info) throw new CliError(`lab '${lab}' is not up (start it with: podnet lab up --name ${lab})`);
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', info.workstation.netns, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, [IN_LAB_ENV]: lab },
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

export function labSshOverrides(lab: string | undefined): SshOverrides {
  if (!lab) return {};
  const info = readLab(lab);
  if (!info) throw new CliError(`lab '${lab}' is not up`);
  return { privateKeyPath: info.sshKeyPath, knownHostsPath: info.knownHostsPath };
}
