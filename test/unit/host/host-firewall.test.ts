import { planFixes } from '../../../agent/reconcile/fixes';
import { parseFirewalldZones, parseForwarding, parseIptablesForward, type LiveHostState } from '../../../src/host/live-state';
import { conntrackBypassScript, desiredHostState, firewalldProtocolCall, firewalldSourceCall, resolveNetwork } from '../../../src/model';
import { diffHost } from '../../../src/planner/host-diff';
import { liveAsDesired } from '../views/scenario';
import { referenceSpec } from '../reference-network';

const state = desiredHostState(resolveNetwork(referenceSpec), 'node1');
const PODNET_S = '-A FORWARD -s 10.244.0.0/16 -m comment --comment "podnet cluster" -j ACCEPT';
const PODNET_D = '-A FORWARD -d 10.244.0.0/16 -m comment --comment "podnet cluster" -j ACCEPT';
/** Docker's FORWARD chain as `iptables-save -t filter` prints it. */
const DOCKER = [
  '*filter',
  ':INPUT ACCEPT [0:0]',
  ':FORWARD DROP [12:720]',
  ':OUTPUT ACCEPT [0:0]',
  ':DOCKER-USER - [0:0]',
  '-A FORWARD -j DOCKER-USER',
  '-A FORWARD -o docker0 -j DOCKER',
  '-A DOCKER-USER -j RETURN',
  'COMMIT',
  '',
].join('\n');

function withFirewall(nft?: string, legacy?: string): LiveHostState {
  return {
    ...liveAsDesired(state),
    iptablesForward: { ...(nft ? { nft: parseIptablesForward(nft) } : {}), ...(legacy ? { legacy: parseIptablesForward(legacy) } : {}) },
  };
}

describe('host firewalls: podnet accept rules where a FORWARD chain is in effect', () => {
  it('reads the FORWARD chain of iptables-save output, other chains left out', () => {
    expect(parseIptablesForward(DOCKER)).toEqual({
      policy: 'DROP',
      rules: ['-A FORWARD -j DOCKER-USER', '-A FORWARD -o docker0 -j DOCKER'],
    });
  });

  it('asks nothing of a chain that accepts everything (iptables-nft-save prints one where there is none)', () => {
    expect(diffHost(state, withFirewall('*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n'))).toEqual([]);
  });

  it('names the iptables whose FORWARD chain would drop the cluster CIDR, and inserts exactly the missing rules, in order', () => {
    const live = withFirewall(DOCKER.replace('-A FORWARD -j DOCKER-USER', `${PODNET_D}\n-A FORWARD -j DOCKER-USER`), DOCKER);
    const diffs = diffHost(state, live);
    expect(diffs.map((d) => [d.kind, d.subject, d.actual])).toEqual([
      ['firewall-forward', 'iptables-nft', "policy DROP, 2 rule(s) of others; 1 of podnet's rules missing: pods cannot forward through it"],
      [
        'firewall-forward',
        'iptables-legacy',
        "policy DROP, 2 rule(s) of others; 2 of podnet's rules missing: pods cannot forward through it",
      ],
    ]);
    expect(planFixes(state, diffs, live).firewallInserts).toEqual([
      ['iptables-nft', '-w', '-I', 'FORWARD', '1', '-s', '10.244.0.0/16', '-m', 'comment', '--comment', 'podnet cluster', '-j', 'ACCEPT'],
      [
        'iptables-legacy',
        '-w',
        '-I',
        'FORWARD',
        '1',
        '-d',
        '10.244.0.0/16',
        '-m',
        'comment',
        '--comment',
        'podnet cluster',
        '-j',
        'ACCEPT',
      ],
      [
        'iptables-legacy',
        '-w',
        '-I',
        'FORWARD',
        '1',
        '-s',
        '10.244.0.0/16',
        '-m',
        'comment',
        '--comment',
        'podnet cluster',
        '-j',
        'ACCEPT',
      ],
    ]);
    expect(diffHost(state, withFirewall(DOCKER.replace('COMMIT', `${PODNET_S}\n${PODNET_D}\nCOMMIT`)))).toEqual([]);
  });
});

describe('forwarding per interface', () => {
  it('reads /proc/sys/net/ipv4/conf/*/forwarding and repairs the interfaces pods cross', () => {
    const text = [
      '/proc/sys/net/ipv4/conf/all/forwarding:1',
      '/proc/sys/net/ipv4/conf/cni0/forwarding:0',
      '/proc/sys/net/ipv4/conf/flannel.ipip/forwarding:0',
      '/proc/sys/net/ipv4/conf/docker0/forwarding:0',
    ].join('\n');
    const forwarding = parseForwarding(text);
    expect(forwarding).toEqual({ all: true, cni0: false, 'flannel.ipip': false, docker0: false });
    const diffs = diffHost(state, { ...liveAsDesired(state), forwarding });
    expect(diffs.map((d) => d.subject)).toEqual(['net.ipv4.conf.cni0.forwarding', 'net.ipv4.conf.flannel.ipip.forwarding']);
    expect(planFixes(state, diffs).interfaceForwarding).toEqual(['cni0', 'flannel.ipip']);
  });
});

/** Parts of firewalld 1.3's table as `nft list table inet firewalld` prints it (Debian 12, default zone public). */
const FIREWALLD_DEFAULT = [
  'table inet firewalld {',
  '\tchain filter_INPUT_ZONES {',
  '\t\tgoto filter_IN_public',
  '\t}',
  '',
  '\tchain filter_FORWARD_ZONES {',
  '\t\tgoto filter_FWD_public',
  '\t}',
  '',
  '\tchain filter_IN_public_allow {',
  '\t\ttcp dport 22 accept',
  '\t\tip6 daddr fe80::/64 udp dport 546 accept',
  '\t}',
  '}',
  '',
].join('\n');
const PROTO = '\t\tip6 daddr fe80::/64 udp dport 546 accept\n';
const bound = (zone: string, text = FIREWALLD_DEFAULT): string =>
  text
    .replace('\t\tgoto filter_IN_public', `\t\tip saddr 10.244.0.0/16 goto filter_IN_${zone}\n\t\tgoto filter_IN_public`)
    .replace('\t\tgoto filter_FWD_public', `\t\tip saddr 10.244.0.0/16 goto filter_FWD_${zone}\n\t\tgoto filter_FWD_public`);
const withIpencap = (text: string): string => text.replace(PROTO, `${PROTO}\t\tmeta l4proto ipencap accept\n`);
const busctl = ['busctl', 'call', 'org.fedoraproject.FirewallD1', '/org/fedoraproject/FirewallD1', 'org.fedoraproject.FirewallD1.zone'];

describe('firewalld: the cluster CIDR in the trusted zone, protocol 4 in the underlay zone', () => {
  it('reads sources bound in both dispatch chains, bound interfaces, the default zone and zones allowing protocol 4', () => {
    expect(parseFirewalldZones(FIREWALLD_DEFAULT)).toEqual({ sources: {}, interfaces: {}, defaultZone: 'public', tunnelProtocolZones: [] });
    const eth0 = withIpencap(bound('trusted')).replace(
      '\t\tgoto filter_IN_public',
      '\t\tiifname "eth0" goto filter_IN_public\n\t\tgoto filter_IN_public',
    );
    expect(parseFirewalldZones(eth0)).toEqual({
      sources: { '10.244.0.0/16': 'trusted' },
      interfaces: { eth0: 'public' },
      defaultZone: 'public',
      tunnelProtocolZones: ['public'],
    });
    // Bound for input only is not bound for pods' forwarded traffic.
    const inputOnly = bound('trusted').replace('ip saddr 10.244.0.0/16 goto filter_FWD_trusted\n', '');
    expect(parseFirewalldZones(inputOnly).sources).toEqual({});
  });

  it('names firewalld when it rejects the cluster CIDR and protocol 4, and tells it both over D-Bus', () => {
    const live = { ...liveAsDesired(state), firewalld: parseFirewalldZones(FIREWALLD_DEFAULT) };
    const diffs = diffHost(state, live);
    expect(diffs).toEqual([
      {
        kind: 'firewall-forward',
        action: 'update',
        subject: 'firewalld',
        expected: "zone trusted holds source 10.244.0.0/16, zone public accepts IP protocol 4 (podnet's, runtime)",
        actual:
          "firewalld running; 10.244.0.0/16 in no zone: its default zone public rejects what pods forward and send to the host; zone public (eth0's) rejects IP protocol 4 from peers",
      },
    ]);
    expect(planFixes(state, diffs, live).firewalld).toEqual({ bindSource: true, protocolZone: 'public' });
    expect(firewalldSourceCall('add', '10.244.0.0/16')).toEqual([...busctl, 'addSource', 'ss', 'trusted', '10.244.0.0/16']);
    expect(firewalldProtocolCall('add', 'public')).toEqual([...busctl, 'addProtocol', 'ssi', 'public', '4', '0']);
    const onlyProtocol = { ...liveAsDesired(state), firewalld: parseFirewalldZones(bound('trusted')) };
    expect(planFixes(state, diffHost(state, onlyProtocol), onlyProtocol).firewalld).toEqual({ bindSource: false, protocolZone: 'public' });
  });

  it('asks nothing where both are in effect, the default zone is trusted, or firewalld does not run', () => {
    expect(diffHost(state, { ...liveAsDesired(state), firewalld: parseFirewalldZones(withIpencap(bound('trusted'))) })).toEqual([]);
    const trustedDefault = FIREWALLD_DEFAULT.replace(/_public/g, '_trusted');
    expect(diffHost(state, { ...liveAsDesired(state), firewalld: parseFirewalldZones(trustedDefault) })).toEqual([]);
    expect(diffHost(state, liveAsDesired(state))).toEqual([]);
  });

  it('reports, and never moves, a cluster CIDR someone bound to another zone', () => {
    const live = { ...liveAsDesired(state), firewalld: parseFirewalldZones(withIpencap(bound('internal'))) };
    const diffs = diffHost(state, live);
    expect(diffs.map((d) => [d.kind, d.action, d.subject])).toEqual([['firewall-forward', 'report', 'firewalld']]);
    expect(planFixes(state, diffs, live).firewalld).toBeUndefined();
  });

  it("leaves node1's pods' packets to remote pods untracked, in a table of its own", () => {
    expect(conntrackBypassScript('cluster', '10.244.0.0/16', '10.244.1.0/24', 'cni0')).toBe(
      [
        'table ip podnet_cluster_notrack',
        'delete table ip podnet_cluster_notrack',
        'table ip podnet_cluster_notrack {',
        '  chain prerouting {',
        '    type filter hook prerouting priority raw; policy accept;',
        '    iifname "cni0" ip daddr 10.244.0.0/16 ip daddr != 10.244.1.0/24 notrack',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });
});
