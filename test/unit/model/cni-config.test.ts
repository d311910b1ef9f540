import { planFixes } from '../../../agent/reconcile/fixes';
import { hostReadScript, parseHostReading } from '../../../src/engine/host-reading';
import {
  cniConfigsShadowing,
  cniDirsCommand,
  cniWritablePath,
  desiredHostState,
  renderAgentUnit,
  resolveNetwork,
  validateNetworkSpec,
} from '../../../src/model';
import { diffCniConfig } from '../../../src/planner/host-diff';
import { referenceSpec } from '../reference-network';

const node1 = desiredHostState(resolveNetwork(referenceSpec), 'node1');

describe('CNI conflist', () => {
  it("renders node1's conflist: bridge cni0 with host-local over its subnet, then portmap", () => {
    expect(node1.cni.path).toBe('/etc/cni/net.d/10-podnet-cluster.conflist');
    expect(JSON.parse(node1.cni.content)).toEqual({
      cniVersion: '1.0.0',
      name: 'cluster',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          isDefaultGateway: true,
          hairpinMode: true,
          ipMasq: false,
          mtu: 1480,
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24', gateway: '10.244.1.1' }]], routes: [{ dst: '10.244.0.0/16' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    expect(node1.cni.content.endsWith('}\n')).toBe(true);
  });

  it('never asks the bridge plugin to masquerade, whatever ipMasq says (it would NAT pod-to-pod traffic)', () => {
    const noMasq = desiredHostState(resolveNetwork({ ...referenceSpec, ipMasq: false }), 'node1');
    expect(noMasq.cni.content).toBe(node1.cni.content);
  });

  it('follows the MTU, the subnet and the directory', () => {
    const other = desiredHostState(resolveNetwork({ ...referenceSpec, mtu: 1400, cniConfDir: '/var/lib/podnet-cni' }), 'node2');
    const bridge = (
      JSON.parse(other.cni.content) as { plugins: Array<{ mtu: number; ipam: { ranges: Array<Array<{ subnet: string }>> } }> }
    ).plugins[0]!;
    expect(bridge.mtu).toBe(1400);
    expect(bridge.ipam.ranges[0]![0]!.subnet).toBe('10.244.2.0/24');
    expect(other.cni.path).toBe('/var/lib/podnet-cni/10-podnet-cluster.conflist');
  });

  it.each([['relative'], ['/etc/cni/'], ['/etc/../cni'], ['/etc/cni net.d'], ["/etc/'cni"], ['/etc/%n'], [42]])(
    'rejects cniConfDir %p',
    (dir) => {
      expect(validateNetworkSpec({ ...referenceSpec, cniConfDir: dir }).map((p) => p.field)).toEqual(['cniConfDir']);
    },
  );
});

describe('CNI config drift', () => {
  const files = ['10-podnet-cluster.conflist'];
  it('is in sync when the file is there and first', () => {
    expect(
      diffCniConfig(node1.cni, {
        cniConfig: node1.cni.content,
        cniConfFiles: [...files, '99-loopback.conf', '05-notes.txt', '.05-hidden.conf'],
      }),
    ).toEqual([]);
  });

  it('reports a missing conflist (and a missing directory) for the agent to write', () => {
    const missing = diffCniConfig(node1.cni, { cniConfFiles: [] });
    expect(missing).toEqual([expect.objectContaining({ kind: 'cni-config', subject: node1.cni.path, actual: 'missing' })]);
    expect(diffCniConfig(node1.cni, {})[0]!.actual).toBe('missing (no /etc/cni/net.d)');
    expect(planFixes(node1, missing).writeCniConfig).toBe(true);
  });

  it('reports a different conflist, saying existing pods keep the old settings', () => {
    const old = node1.cni.content.replace('"mtu": 1480', '"mtu": 1400');
    const [d] = diffCniConfig(node1.cni, { cniConfig: old, cniConfFiles: files });
    expect(d).toEqual({
      kind: 'cni-config',
      action: 'update',
      subject: node1.cni.path,
      expected: 'network cluster, subnet 10.244.1.0/24, mtu 1480',
      actual: 'network cluster, subnet 10.244.1.0/24, mtu 1400; pods made with it keep its settings until re-created',
    });
  });

  it("reports foreign configs sorting before podnet's, and the agent leaves them alone", () => {
    const live = {
      cniConfig: node1.cni.content,
      cniConfFiles: ['00-other.conf', '10-flannel.conflist', ...files, '87-podman-bridge.conflist'],
    };
    const diffs = diffCniConfig(node1.cni, live);
    expect(diffs.map((d) => [d.kind, d.subject])).toEqual([
      ['cni-config-shadowed', '/etc/cni/net.d/00-other.conf'],
      ['cni-config-shadowed', '/etc/cni/net.d/10-flannel.conflist'],
    ]);
    expect(planFixes(node1, diffs)).toMatchObject({ writeCniConfig: false, ipBatch: [] });
    expect(cniConfigsShadowing(['10-podnet-cluster.conflist.podnet-tmp', '00.json'], '10-podnet-cluster.conflist')).toEqual(['00.json']);
  });
});

describe('CNI config on the host', () => {
  it('the unit makes the directory outside its sandbox, noting what it made, and may write its parent', () => {
    const unit = renderAgentUnit('cluster', 'auto');
    expect(unit).toContain(
      "ExecStartPre=+/bin/sh -c 'for d in /etc /etc/cni /etc/cni/net.d; do [ -d $$d ] || { mkdir $$d && echo $$d >> /run/podnet/cluster.cni-dirs-created; } || exit 1; done'",
    );
    expect(unit).toContain('ReadWritePaths=-/etc/cni\n');
    expect(cniWritablePath('/cni')).toBe('/cni');
    expect(cniWritablePath('/var/lib/cni/net.d')).toBe('/var/lib/cni');
    expect(cniDirsCommand('n', '/cni')).toContain('for d in /cni;');
  });

  it('the host read returns the conflist and the directory listing', () => {
    expect(hostReadScript('cluster', node1.cni)).toContain('ls -1A /etc/cni/net.d');
    const M = '@@podnet:';
    const out = [
      ``,
      `${M}cniconf`,
      `${node1.cni.content}@@present@@`,
      `${M}cnidir`,
      `00-x.conf`,
      `10-podnet-cluster.conflist`,
      `@@present@@`,
      `${M}end`,
      ``,
    ].join('\n');
    const live = parseHostReading(out).live;
    expect(live.cniConfig).toBe(node1.cni.content);
    expect(live.cniConfFiles).toEqual(['00-x.conf', '10-podnet-cluster.conflist']);
    const none = parseHostReading([``, `${M}cniconf`, `${M}cnidir`, `${M}end`, ``].join('\n')).live;
    expect(none.cniConfig).toBeUndefined();
    expect(none.cniConfFiles).toBeUndefined();
  });
});
