// `podnet lab status`: the lab's hosts for people, or the lab's state as JSON (a developer
// tool's document: it has no schema id and may change with the lab; see json.ts).
import type { LabStatus } from '../lab';
import { printJson } from './json';
import type { ViewType } from './view';

export function renderLabStatus(st: LabStatus): string {
  if (st.status === 'down' || !st.info) return `lab '${st.name}' is down\n`;
  return (
    [
      `lab '${st.name}': ${st.status}`,
      ...st.hosts.map((h) => {
        // A VM host's kind says how its guest runs: vm/KVM, or vm/TCG (software emulation).
        const kind = h.kind === 'vm' ? `vm/${(h.accel ?? '?').toUpperCase()}` : 'nspawn';
        return `  ${h.name.padEnd(8)} ${h.address.padEnd(14)} ${kind.padEnd(7)} ${h.running ? `running (pid ${h.pid})` : 'STOPPED'}${h.bpf ? '' : '  (BPF forbidden)'}`;
      }),
      `ssh key: ${st.info.sshKeyPath}`,
      `known_hosts: ${st.info.knownHostsPath}`,
    ].join('\n') + '\n'
  );
}

export function labStatusText(type: ViewType, st: LabStatus): string {
  return type === 'json' ? printJson(st) : renderLabStatus(st);
}
