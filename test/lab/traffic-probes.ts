// Traffic the datapath lab tests send: byte-exact transfers and a protocol-4 packet from a
// non-peer. Programs run inside lab hosts and pods (node) or the workstation (python3).

/** Byte-exact transfer between two pods with node (copied into the hosts): sha256 both ends. */
export const SERVER = `const net=require('net'),c=require('crypto');const h=c.createHash('sha256');let n=0;
const s=net.createServer(k=>{k.on('data',d=>{h.update(d);n+=d.length});k.on('end',()=>{console.log(JSON.stringify({bytes:n,sha:h.digest('hex')}));s.close()})});
s.listen(9000,()=>console.error('listening'));setTimeout(()=>process.exit(3),60000).unref();`;
export const CLIENT = `const net=require('net'),c=require('crypto');const [host,mb]=process.argv.slice(1);const h=c.createHash('sha256');
let left=Number(mb)*1048576,n=0;const k=net.connect(9000,host,()=>{const w=()=>{while(left>0){const b=c.randomBytes(Math.min(left,65536));left-=b.length;n+=b.length;h.update(b);if(!k.write(b))return k.once('drain',w)}k.end()};w()});
k.on('close',()=>console.log(JSON.stringify({bytes:n,sha:h.digest('hex')})));`;

/**
 * python3: `ip4(tos, proto, src, dst, payload)` builds an IPv4 packet; `hdr(totlen, proto, src,
 * dst)` a DF IPv4 header alone (as quoted in an ICMP error); `echo` is an ICMP echo.
 */
const IP_PY = `import socket,struct,sys
def cs(b):
  s=sum(struct.unpack('!%dH'%(len(b)//2),b));s=(s&0xffff)+(s>>16);s=(s&0xffff)+(s>>16);return ~s&0xffff
def hdr(tot,proto,src,dst):
  h=struct.pack('!BBHHHBBH4s4s',0x45,0,tot,7,0x4000,64,proto,0,socket.inet_aton(src),socket.inet_aton(dst))
  return h[:10]+struct.pack('!H',cs(h))+h[12:]
def ip4(tos,proto,src,dst,p):
  h=struct.pack('!BBHHHBBH4s4s',0x45,tos,20+len(p),7,0,64,proto,0,socket.inet_aton(src),socket.inet_aton(dst))
  return h[:10]+struct.pack('!H',cs(h))+h[12:]+p
echo=struct.pack('!BBHHH',8,0,0,1,1)+b'podnet-probe!!'
echo=echo[:2]+struct.pack('!H',cs(echo))+echo[4:]
`;

/** One ICMP echo inside protocol 4 from a non-peer (the workstation). argv: node address, inner destination. */
export const IPIP_SENDER = `${IP_PY}
socket.socket(socket.AF_INET,socket.SOCK_RAW,4).sendto(ip4(0,1,'10.244.9.9',sys.argv[2],echo),(sys.argv[1],0))`;

/**
 * One ICMP echo inside protocol 4 that names a peer as its outer source, with CE on the outer
 * header and a not-ECT inner packet: RFC 6040 (and kernel ipip) drop it. Sent with a header of its
 * own (IPPROTO_RAW) from the workstation. argv: node address, claimed peer address, inner destination.
 */
export const IPIP_CE_SENDER = `${IP_PY}
p=ip4(3,4,sys.argv[2],sys.argv[1],ip4(0,1,'10.244.2.9',sys.argv[3],echo))
socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW).sendto(p,(sys.argv[1],0))`;

/** The four inner ECN codepoints, by the inner TOS value the ECN probe sends (RFC 3168 names). */
export const INNER_ECN = { 0: 'not-ECT', 1: 'ECT(1)', 2: 'ECT(0)', 3: 'CE' } as const;

/**
 * For each `TARGET=INNERDST` argument, four ICMP echoes inside protocol 4 with a peer's address as
 * the outer source and CE on the outer header, inner TOS 0..3 (not-ECT, ECT(1), ECT(0), CE); the
 * inner source `PREFIX.(100 + TOS)` tells them apart at the receiver. Sent with a header of its own
 * (IPPROTO_RAW) from the workstation: the hosts' base has no python3, and no datapath (kernel
 * ipip included) puts CE on an outer header it makes. argv: peer address, inner source prefix
 * (three octets), TARGET=INNERDST...
 */
export const IPIP_ECN_SENDER = `${IP_PY}
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)
for t in sys.argv[3:]:
  node,dst=t.split('=')
  for tos in range(4):
    s.sendto(ip4(3,4,sys.argv[1],node,ip4(tos,1,'%s.%d'%(sys.argv[2],100+tos),dst,echo)),(node,0))`;

/**
 * ICMP errors from the workstation to a node about a protocol-4 packet it "sent": each quotes an
 * outer header node > peer (DF) around an inner DF TCP header of a chosen total length, source
 * and destination, as a router on the path would (the quoted packet is made up: anyone on the
 * underlay can send this). For each SPEC `TYPE/CODE/MTU/INNERSRC/INNERDST/INNERLEN`, in turn,
 * `count` times with `gap` seconds between sends. argv: node address, peer address, count, gap, SPEC...
 */
export const ICMP_ERROR_SENDER = `${IP_PY}
import time
node,peer,count,gap=sys.argv[1],sys.argv[2],int(sys.argv[3]),float(sys.argv[4])
msgs=[]
for spec in sys.argv[5:]:
  t,c,mtu,isrc,idst,ilen=spec.split('/')
  q=hdr(int(ilen)+20,4,node,peer)+hdr(int(ilen),6,isrc,idst)+struct.pack('!HHI',40000,5201,1)
  m=struct.pack('!BBHHH',int(t),int(c),0,0,int(mtu))+q
  msgs.append(m[:2]+struct.pack('!H',cs(m))+m[4:])
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP)
for i in range(count):
  for m in msgs:
    s.sendto(m,(node,0));time.sleep(gap)`;

/**
 * ICMP "fragmentation needed" messages to a node about a protocol-4 packet it "sent" to a peer, as
 * a router on the path would send them, but made up: each quotes an outer header node > peer (DF)
 * around an inner DF packet of a chosen protocol, source, destination and total length (its first
 * 8 bytes: TCP ports and sequence number, or an ICMP echo reply). Sent with an ICMP raw socket (the
 * kernel adds this host's IP header). For each SPEC `PEER/PROTO/INNERSRC/INNERDST/INNERLEN/MTU/CSUM`
 * (PROTO `tcp` or `icmp`; CSUM `ok`, or `bad`: the ICMP checksum off by 0x0101), one message.
 * argv: node address, SPEC...
 */
export const FRAG_NEEDED_FORGER = `${IP_PY}
node=sys.argv[1]
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP)
for spec in sys.argv[2:]:
  peer,proto,isrc,idst,ilen,mtu,ck=spec.split('/')
  l4=struct.pack('!HHI',40000,5201,1) if proto=='tcp' else struct.pack('!BBHHH',0,0,0,1,1)
  m=struct.pack('!BBHHH',3,4,0,0,int(mtu))+hdr(int(ilen)+20,4,node,peer)+hdr(int(ilen),6 if proto=='tcp' else 1,isrc,idst)+l4
  c=cs(m)^(0 if ck=='ok' else 0x0101)
  s.sendto(m[:2]+struct.pack('!H',c)+m[4:],(node,0))`;

/** Bits per second the receiver counted, from `iperf3 -J` output (the client's or the server's). */
export function iperfReceivedBps(json: string): number {
  return (JSON.parse(json) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
}
