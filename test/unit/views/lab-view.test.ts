// `podnet lab status`: the human and JSON renderings, against golden files.
import type { LabStatus } from '../../../src/lab';
import { labStatusText } from '../../../src/views/lab-view';
import { expectGolden } from './scenario';

const up: LabStatus = {
  name: 'pn1',
  status: 'up',
  hosts: [
    { name: 'master', address: '192.168.0.80', running: true, pid: 4242, bpf: true, kind: 'nspawn' },
    { name: 'node1', address: '192.168.0.81', running: false, bpf: false, kind: 'nspawn' },
    { name: 'node2', address: '192.168.0.82', running: true, pid: 5151, bpf: true, kind: 'vm', accel: 'tcg' },
  ],
  info: {
    name: 'pn1',
    stateDir: '/var/lib/podnet-lab/pn1',
    hosts: [
      {
        name: 'master',
        address: '192.168.0.80',
        netns: 'pn1-master',
        rootDir: '/var/lib/podnet-lab/pn1/master',
        bpf: true,
        kind: 'nspawn',
      },
      { name: 'node1', address: '192.168.0.81', netns: 'pn1-node1', rootDir: '/var/lib/podnet-lab/pn1/node1', bpf: false, kind: 'nspawn' },
      {
        name: 'node2',
        address: '192.168.0.82',
        netns: 'pn1-node2',
        rootDir: '/var/lib/podnet-lab/pn1/node2',
        bpf: true,
        kind: 'vm',
        accel: 'tcg',
      },
    ],
    workstation: { netns: 'pn1-ws', address: '192.168.0.1' },
    switchNetns: 'pn1-sw',
    sshKeyPath: '/var/lib/podnet-lab/pn1/id_ed25519',
    knownHostsPath: '/var/lib/podnet-lab/pn1/known_hosts',
  },
};

describe('lab status view', () => {
  it('lists hosts with their kind (nspawn, vm/TCG), a stopped one and the key files (golden lab-status.txt)', () => {
    expectGolden('lab-status.txt', labStatusText('human', up) + labStatusText('human', { name: 'pn2', status: 'down', hosts: [] }));
  });
  it('prints the lab state as JSON (golden lab-status.json)', () => {
    expectGolden('lab-status.json', labStatusText('json', up));
  });
});
