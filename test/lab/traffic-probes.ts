// Traffic the datapath lab tests send: byte-exact transfers and a protocol-4 packet from a
// non-peer. Programs run inside lab hosts and pods (node) or the workstation (python3).

/** Byte-exact transfer between two pods with node (copied into the hosts): sha256 both ends. */
export const SERVER = `const net=require('net'),c=require('crypto');const h=c.createHash('sha256');let n=0;
const s=net.createServer(k=>{k.on('data',d=>{h.update(d);n+=d.length});k.on('end',()=>{console.log(JSON.stringify({bytes:n,sha:h.digest('hex')}));s.close()})});
s.listen(9000,()=>console.error('listening'));setTimeout(()=>process.exit(3),60000).unref();`;
export const CLIENT = `const net=require('net'),c=require('crypto');const [host,mb]=process.argv.slice(1);const h=c.createHash('sha256');
let left=Number(mb)*1048576,n=0;const k=net.connect(9000,host,()=>{const w=()=>{while(left>0){const b=c.randomBytes(Math.min(left,65536));left-=b.length;n+=b.length;h.update(b);if(!k.write(b))return k.once('drain',w)}k.end()};w()});
k.on('close',()=>console.log(JSON.stringify({bytes:n,sha:h.digest('hex')})));`;

/** One ICMP echo inside protocol 4 from a non-peer (the workstation). */
export const IPIP_SENDER = `import socket,struct,sys
def cs(b):
  s=sum(struct.unpack('!%dH'%(len(b)//2),b));s=(s&0xffff)+(s>>16);s=(s&0xffff)+(s>>16);return ~s&0xffff
i=struct.pack('!BBHHH',8,0,0,1,1)+b'podnet-probe!!'
i=i[:2]+struct.pack('!H',cs(i))+i[4:]
h=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(i),7,0,64,1,0,socket.inet_aton('10.244.9.9'),socket.inet_aton(sys.argv[2]))
h=h[:10]+struct.pack('!H',cs(h))+h[12:]
socket.socket(socket.AF_INET,socket.SOCK_RAW,4).sendto(h+i,(sys.argv[1],0))`;
