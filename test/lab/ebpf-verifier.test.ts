// Loads podnet's tc IPIP programs into the real kernel (the verifier is the judge), in a network
// namespace and a private bpffs of this test's own: attach, adopt, replace-free re-attach,
// detach, nothing left behind. Needs root; skipped with the reason otherwise.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { LOADER, OBJECT, describeRoot, ensureNativeBuilt } from './ebpf-support';

const NS = `pnbpft-v${process.pid}`;
const POD = `pnbpft-p${process.pid}`; // a pod's network namespace
const FS = `/tmp/pnbpft-fs-${process.pid}`;
const PIN = `${FS}/podnet`;

const sh = (argv: string[], input?: string): string =>
  execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const inNs = (argv: string[], input?: string): string => sh(['ip', 'netns', 'exec', NS, ...argv], input);
const bpf = (args: string[], input?: string): string => inNs([LOADER, '--pin-dir', PIN, ...args], input);
const tcFilters = (dev: string, dir: 'ingress' | 'egress'): string => sh(['tc', '-n', NS, 'filter', 'show', 'dev', dev, dir]);

/** Python that builds IPv4 headers (`ip(total, proto, src, dst)`, checksummed) and sends Ethernet frames to eth0 from its veth peer (`s.send(eth + ...)`); run in NS. */
const PY_FRAMES = `import socket,struct
def cs(b):
  s=sum(struct.unpack('!%dH'%(len(b)//2),b));s=(s&0xffff)+(s>>16);s=(s&0xffff)+(s>>16);return ~s&0xffff
def ip(tot,proto,src,dst):
  h=struct.pack('!BBHHHBBH4s4s',0x45,0,tot,7,0x4000,64,proto,0,socket.inet_aton(src),socket.inet_aton(dst))
  return h[:10]+struct.pack('!H',cs(h))+h[12:]
mac=open('/sys/class/net/eth0/address').read().strip().replace(':','')
eth=bytes.fromhex(mac)+bytes(6)+b'\\x08\\x00'
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind(('peer0',0))
`;

describeRoot('eBPF datapath in the real kernel', () => {
  beforeAll(() => {
    ensureNativeBuilt();
    sh(['ip', 'netns', 'add', NS]);
    // Devices are made inside the namespace: nothing is added to the machine's own.
    sh(['ip', '-n', NS, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    sh(['ip', '-n', NS, 'addr', 'add', '192.168.0.81/24', 'dev', 'eth0']);
    sh(['ip', '-n', NS, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', NS, 'link', 'set', 'peer0', 'up']);
    sh(['ip', '-n', NS, 'tuntap', 'add', 'dev', 'flannel.ipip', 'mode', 'tun']);
    sh(['ip', '-n', NS, 'link', 'set', 'flannel.ipip', 'mtu', '1480', 'up']);
    mkdirSync(FS, { recursive: true });
    sh(['mount', '-t', 'bpf', 'bpf', FS]);
  }, 120_000);

  afterAll(() => {
    try {
      sh(['umount', FS]);
    } catch {
      /* not mounted */
    }
    try {
      rmdirSync(FS);
    } catch {
      /* gone */
    }
    for (const ns of [NS, POD])
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        /* gone */
      }
  });

  it('probe says BPF can be loaded here', () => {
    expect(bpf(['probe', '--object', OBJECT]).trim()).toBe('ok');
  });

  it('attaches both programs (the verifier accepts them) and pins maps and programs', () => {
    const r = JSON.parse(
      bpf(['attach', '--json', '--object', OBJECT, '--tunnel-dev', 'flannel.ipip', '--underlay-dev', 'eth0', '--local', '192.168.0.81']),
    );
    expect(r).toEqual({ egress: 'attached', ingress: 'attached' });
    expect(tcFilters('eth0', 'ingress')).toMatch(/pn_underlay_ing.*direct-action/);
    expect(tcFilters('flannel.ipip', 'egress')).toMatch(/pn_tun_egress.*direct-action/);
    expect(readdirSync(PIN).sort()).toEqual([
      'pn_config',
      'pn_counters',
      'pn_drops',
      'pn_drops_ext',
      'pn_peer_addrs',
      'pn_peers',
      'pn_pmtu',
      'pn_pods',
      'pn_tun_egress',
      'pn_underlay_ingress',
    ]);
    const st = JSON.parse(bpf(['status']));
    expect(st).toMatchObject({
      local: '192.168.0.81',
      pinnedMaps: 8,
      egress: { attached: true, dev: 'flannel.ipip' },
      ingress: { attached: true, dev: 'eth0' },
    });
  });

  it('adopts on re-attach: same programs stay, map contents survive', () => {
    const before = JSON.parse(bpf(['status']));
    bpf(['peer-set', '10.244.2.0/24', '192.168.0.82']);
    expect(
      JSON.parse(
        bpf(['attach', '--json', '--object', OBJECT, '--tunnel-dev', 'flannel.ipip', '--underlay-dev', 'eth0', '--local', '192.168.0.81']),
      ),
    ).toEqual({ egress: 'adopted', ingress: 'adopted' });
    const after = JSON.parse(bpf(['status']));
    expect(after.egress.progId).toBe(before.egress.progId);
    expect(after.ingress.progId).toBe(before.ingress.progId);
    expect(JSON.parse(bpf(['peers', '--json']))).toEqual([{ cidr: '10.244.2.0/24', address: '192.168.0.82', index: 0 }]);
  });

  it('keeps peer maps equal to the desired set, in place', () => {
    expect(JSON.parse(bpf(['peers-sync'], '10.244.2.0/24 192.168.0.82\n10.244.0.0/24 192.168.0.80\n'))).toEqual({
      added: 1,
      changed: 0,
      removed: 0,
    });
    expect(JSON.parse(bpf(['peers-sync'], '10.244.0.0/24 192.168.0.80\n'))).toEqual({ added: 0, changed: 0, removed: 1 });
    const peers = JSON.parse(bpf(['peers', '--json']));
    expect(peers).toEqual([{ cidr: '10.244.0.0/24', address: '192.168.0.80', index: 1 }]);
    const c = JSON.parse(bpf(['counters', '--json']));
    expect(c.peers.map((p: { address: string }) => p.address)).toEqual(['192.168.0.80']);
    expect(c.dropped).toBe(0);
    expect(() => bpf(['peers-sync'], '10.244.0.1/24 192.168.0.80\n')).toThrow();
    expect(JSON.parse(bpf(['pods-sync'], '10.244.1.2 7 aa:bb:cc:dd:ee:01 aa:bb:cc:dd:ee:ff\n'))).toEqual({ set: 1, removed: 0 });
    expect(JSON.parse(bpf(['pods', '--json']))).toEqual([
      { ip: '10.244.1.2', ifindex: 7, podMac: 'aa:bb:cc:dd:ee:01', hostMac: 'aa:bb:cc:dd:ee:ff' },
    ]);
  });

  it('pods-sync takes exactly PN_MAX_PODS pods and refuses one more, as peers-sync does (review finding 22)', () => {
    // PN_MAX_PODS (podnet-ipip.h) is 4096; 10.244.16.0 on gives distinct addresses.
    const pods = (n: number): string =>
      Array.from({ length: n }, (_, i) => `10.244.${16 + (i >> 8)}.${i & 255} 7 aa:bb:cc:dd:ee:01 aa:bb:cc:dd:ee:ff\n`).join('');
    expect(() => bpf(['pods-sync'], pods(4097))).toThrow(/more than 4096 pods/);
    expect(JSON.parse(bpf(['pods-sync'], pods(4096)))).toMatchObject({ set: 4096 });
    expect(JSON.parse(bpf(['pods', '--json']))).toHaveLength(4096);
    expect(JSON.parse(bpf(['pods-sync'], '10.244.1.2 7 aa:bb:cc:dd:ee:01 aa:bb:cc:dd:ee:ff\n'))).toEqual({ set: 1, removed: 4096 });
  });

  it('learns a path MTU only from a whole "fragmentation needed": not from one whose quote lies in the Ethernet padding', () => {
    // Frames from peer0 into eth0's tc ingress, inside this test's namespace: a router's ICMP
    // (type 3 code 4, valid checksum) quoting node .81's protocol 4 to peer .80. In the first the
    // IP length ends after the ICMP header (28 bytes) and the quote is trailing padding (review
    // finding 7: main learned from it); the second is whole, and is learned.
    const frames = `${PY_FRAMES}def icmp(mtu,quote):
  m=struct.pack('!BBHHH',3,4,0,0,mtu)+quote
  return m[:2]+struct.pack('!H',cs(m))+m[4:]
quote=ip(1500,4,'192.168.0.81','192.168.0.80')+ip(1480,6,'10.244.1.2','10.244.0.2')+bytes(8)
s.send(eth+ip(28,1,'192.168.0.254','192.168.0.81')+icmp(1000,b'')+quote)
s.send(eth+ip(28+len(quote),1,'192.168.0.254','192.168.0.81')+icmp(1100,quote))`;
    const peer80 = () =>
      (JSON.parse(bpf(['counters', '--json'])) as { peers: { address: string; pathMtu?: number; fragNeededIn: number }[] }).peers.find(
        (p) => p.address === '192.168.0.80',
      );
    expect(peer80()).toMatchObject({ fragNeededIn: 0 });
    inNs(['python3', '-c', frames]);
    expect(peer80()).toMatchObject({ pathMtu: 1100, fragNeededIn: 1 });
  });

  it("goes straight into a pod only from the sending peer's pod subnet; any other inner source enters the stack on flannel.ipip (review finding 6)", () => {
    // A real pod: its own namespace, a veth whose host side is in NS. Peer .80 owns 10.244.0.0/24,
    // peer .82 10.244.2.0/24. Each frame is protocol 4 from .80 to a UDP port of the pod.
    sh(['ip', 'netns', 'add', POD]);
    sh(['ip', '-n', NS, 'link', 'add', 'veth-pod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', POD]);
    sh(['ip', '-n', NS, 'link', 'set', 'veth-pod', 'up']);
    sh(['ip', '-n', POD, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', POD, 'addr', 'add', '10.244.1.2/24', 'dev', 'eth0']);
    const link = (ns: string, dev: string) =>
      (JSON.parse(sh(['ip', '-n', ns, '-json', 'link', 'show', dev])) as { ifindex: number; address: string }[])[0]!;
    const host = link(NS, 'veth-pod');
    bpf(['pods-sync'], `10.244.1.2 ${host.ifindex} ${link(POD, 'eth0').address} ${host.address}\n`);
    bpf(['peers-sync'], '10.244.0.0/24 192.168.0.80\n10.244.2.0/24 192.168.0.82\n');
    // The pod's UDP socket (entered by setns) says what arrived in the pod; a packet socket on
    // flannel.ipip what the program handed to the stack there.
    const run = `${PY_FRAMES}import ctypes,os,json
def enter(ns):
  fd=os.open('/run/netns/'+ns,os.O_RDONLY); assert ctypes.CDLL(None).setns(fd,0x40000000)==0; os.close(fd)
enter('${POD}'); pod=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); pod.bind(('10.244.1.2',9999)); pod.settimeout(0.3)
enter('${NS}'); tun=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3)); tun.bind(('flannel.ipip',0)); tun.settimeout(0.3)
def send(src):
  udp=struct.pack('!HHHH',4000,9999,12,0)+b'ping'
  s.send(eth+ip(52,4,'192.168.0.80','192.168.0.81')+ip(32,17,src,'10.244.1.2')+udp)
  got={'pod':[],'stack':[]}
  for name,sock in (('pod',pod),('stack',tun)):
    try:
      while True:
        d,a=sock.recvfrom(2048); got[name].append(a[0] if name=='pod' else socket.inet_ntoa(d[12:16]))
    except socket.timeout: pass
  return got
print(json.dumps({src:send(src) for src in ('10.244.0.5','10.244.0.0','10.244.2.5','10.9.9.9')}))`;
    expect(JSON.parse(inNs(['python3', '-c', run]))).toEqual({
      '10.244.0.5': { pod: ['10.244.0.5'], stack: [] }, // a pod of the sender's: the fast path
      '10.244.0.0': { pod: ['10.244.0.0'], stack: [] }, // the sender's tunnel address (its host)
      '10.244.2.5': { pod: [], stack: ['10.244.2.5'] }, // another peer's pod, spoofed by .80
      '10.9.9.9': { pod: [], stack: ['10.9.9.9'] }, // outside the cluster: forwarded by .80, or spoofed
    });
  });

  it('leaves a foreign filter alone and detaches only its own', () => {
    // Someone else's classifier on the same device, another priority: it must survive detach.
    sh([
      'tc',
      '-n',
      NS,
      'filter',
      'add',
      'dev',
      'eth0',
      'ingress',
      'prio',
      '7',
      'bpf',
      'bytecode',
      '1,6 0 0 4294967295,',
      'classid',
      '1:1',
    ]);
    expect(JSON.parse(bpf(['detach', '--json', '--tunnel-dev', 'flannel.ipip', '--underlay-dev', 'eth0']))).toEqual({
      egress: 'detached',
      ingress: 'detached',
    });
    expect(tcFilters('eth0', 'ingress')).not.toMatch(/pn_/);
    expect(tcFilters('eth0', 'ingress')).toMatch(/bytecode/);
    expect(tcFilters('flannel.ipip', 'egress')).not.toMatch(/pn_/);
    expect(existsSync(PIN)).toBe(false);
  });
});
