// `npm run bench:datapath [-- --quick]`: pod-to-pod iperf3 between two lab hosts for each way of
// carrying the traffic (see modes.ts), modes interleaved round by round, medians per mode.
// Progress goes to stderr; the table and, last, one JSON line go to stdout; everything measured
// goes to bench/out/. See bench/README.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { labDown, labStatus, labUp, readLab } from '../../src/lab';
import { VM_KERNEL_ENV, vmKernelChoice } from '../../src/lab/vm-image';
import {
  measureTcp,
  measureUdp,
  podIp,
  startServer,
  stopServer,
  waitForQuietDaemons,
  warmUp,
  type TcpResult,
  type UdpResult,
} from './measure';
import { MODE_IDS, VM_MODE_IDS, hostFootprint, makeModes, settle, type ModeId } from './modes';
import { summarize, renderTable, jsonLine, type RunRecord } from './report';
import { HOSTS, HOST_A, HOST_B, OUT_DIR, POD, benchLab, configureBench, hostSh, log } from './util';
import { podExec } from '../../src/lab';

interface Options {
  rounds: number;
  tcpSeconds: number;
  udpSeconds: number;
  modes: ModeId[];
  quick: boolean;
  affinity?: string;
  /** Two qemu guests on Debian's stock kernel instead of nspawn hosts (kernel ipip, vxlan, ebpf). */
  vm: boolean;
  /** With --vm: the guests' kernel, 'stock' (the machine's /boot) or a Debian suite's (PODNET_LAB_VM_KERNEL). */
  vmKernel?: string;
  lab: string;
}

const USAGE = `usage: npx tsx bench/datapath/run.ts [--quick] [--rounds N] [--time S] [--udp-time S] [--modes a,b,...]
  --quick        1 round, TCP -t 2, UDP -t 1 (about a minute)
  default        3 rounds, TCP -t 5, UDP -t 5
  --modes        subset of ${MODE_IDS.join(',')} (with --vm: of ${VM_MODE_IDS.join(',')})
  --vm           the two hosts are VM guests on Debian's stock kernel (lab dpbench-vm): kernel ipip
                 vs kernel vxlan vs podnet ebpf; under emulation (TCG) only the ratios mean anything
  --vm-kernel K  with --vm: the guests' kernel, 'stock' (the machine's /boot: Debian 12's 6.1, no
                 ebpf row) or a Debian suite's linux-image-amd64, e.g. bookworm-backports (6.12:
                 ebpf runs); built once into the VM cache, the machine's /boot is not touched
  --lab NAME     the benchmark's lab (default dpbench, dpbench-vm with --vm)
  --affinity C,S iperf3 -A: pin the client to CPU C and the server to CPU S (default 0,1 on 2+ CPUs;
                 'none': let the scheduler place them)`;

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const vm = argv.includes('--vm');
  const allowed = vm ? VM_MODE_IDS : MODE_IDS;
  const o: Options = {
    rounds: quick ? 1 : 3,
    tcpSeconds: quick ? 2 : 5,
    udpSeconds: quick ? 1 : 5,
    modes: [...allowed],
    quick,
    vm,
    lab: vm ? 'dpbench-vm' : 'dpbench',
    ...(cpus().length >= 2 ? { affinity: '0,1' } : {}),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const num = (): number => {
      const n = Number(val());
      if (!Number.isInteger(n) || n < 1 || n > 60) throw new Error(`${a}: 1..60\n${USAGE}`);
      return n;
    };
    if (a === '--quick' || a === '--vm') continue;
    else if (a === '--lab') o.lab = val();
    else if (a === '--vm-kernel') {
      o.vmKernel = val();
      vmKernelChoice(o.vmKernel); // refuses a bad name before anything boots
    } else if (a === '--rounds') o.rounds = num();
    else if (a === '--time') o.tcpSeconds = num();
    else if (a === '--udp-time') o.udpSeconds = num();
    else if (a === '--affinity') {
      const v = val();
      if (v === 'none') delete o.affinity;
      else if (/^\d+,\d+$/.test(v)) o.affinity = v;
      else throw new Error(`--affinity wants C,S (CPU numbers) or none\n${USAGE}`);
    } else if (a === '--modes') {
      o.modes = val()
        .split(',')
        .map((m) => m.trim()) as ModeId[];
      const bad = o.modes.filter((m) => !allowed.includes(m));
      if (bad.length) throw new Error(`unknown mode(s) ${bad.join(', ')}\n${USAGE}`);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (o.vmKernel && !vm) throw new Error(`--vm-kernel needs --vm\n${USAGE}`);
  return o;
}

function machine(): Record<string, unknown> {
  const sh = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '';
  return {
    nproc: Number(sh('nproc', [])),
    model,
    kernel: sh('uname', ['-r']),
    node: process.version,
    iperf3: sh('iperf3', ['--version']).split('\n')[0],
  };
}

const uptime = (): string => {
  try {
    return execFileSync('uptime', [], { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(', ')}`;
  }
};

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  configureBench({ lab: opts.lab, vm: opts.vm });
  const LAB = benchLab();
  const started = new Date();
  const t0 = Date.now();
  const loadStart = uptime();
  log(`machine: ${JSON.stringify(machine())}; ${loadStart}`);
  log(
    `plan: ${opts.rounds} round(s) x [${opts.modes.join(', ')}], TCP -t ${opts.tcpSeconds}, UDP 64 B -t ${opts.udpSeconds}, iperf3 ${opts.affinity ? `-A ${opts.affinity}` : 'not pinned'}`,
  );

  // The lab reads the guests' kernel from the environment (src/lab/vm-image.ts).
  if (opts.vmKernel) process.env[VM_KERNEL_ENV] = opts.vmKernel;
  let guestKernels: string[] | undefined;

  if (readLab(LAB)) {
    log(`lab '${LAB}' is up from an earlier run: taking it down first`);
    await labDown(LAB, log);
  }
  const runs: RunRecord[] = [];
  let accel: string[] | undefined;
  const unavailable = new Map<ModeId, string>();
  let stopping = false;
  let interrupted = false;
  const onSignal = (sig: string): void => {
    log(`${sig}: finishing the current step, then taking the lab down`);
    stopping = true;
    interrupted = true;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    await labUp({ name: LAB, hosts: 2, ...(opts.vm ? { vmHosts: HOSTS.map((h) => h.name) } : {}), log: (l) => log(`lab: ${l}`) });
    if (opts.vm) {
      accel = labStatus(LAB).hosts.map((h) => `${h.name}: ${h.kind}/${h.accel ?? '-'}`);
      guestKernels = [];
      for (const h of HOSTS) guestKernels.push(`${h.name}: ${(await hostSh(h.name, 'uname -r')).trim()}`);
      log(`VM hosts: ${accel.join(', ')}; kernels ${guestKernels.join(', ')}`);
      // Loading ipip.ko makes the kernel's tunl0, which stays (podnet does not unload modules):
      // load it before the clean footprint is taken, so every mode starts from the same host.
      for (const h of HOSTS) await hostSh(h.name, 'modprobe ipip');
    }
    const modes = makeModes(opts.vm);
    const clean = new Map<string, string>();
    for (const h of HOSTS) clean.set(h.name, await hostFootprint(h.name));
    for (let r = 0; r < opts.rounds && !stopping; r++) {
      // Rotate the order each round so no mode always follows the same one.
      const order = opts.modes.map((_, i) => opts.modes[(i + r) % opts.modes.length]!);
      for (const id of order) {
        if (stopping) break;
        if (unavailable.has(id)) continue;
        const mode = modes[id]!;
        const rec: RunRecord = { round: r + 1, mode: id, startedAt: new Date().toISOString() };
        const ts = Date.now();
        try {
          const up = await mode.up(r + 1);
          rec.facts = up.facts;
          const ip = await podIp(HOST_B);
          rec.facts.podMtu = Number((await podExec(LAB, HOST_A.name, POD, ['cat', '/sys/class/net/eth0/mtu'])).stdout.trim());
          // VM hosts: the agents' start and pod passes are one-off work, not the datapath's steady cost.
          if (opts.vm && up.daemons.length) rec.facts.settleSeconds = await waitForQuietDaemons(up.daemons);
          await warmUp(ip);
          await startServer();
          try {
            const tcp: TcpResult = await measureTcp(ip, opts.tcpSeconds, up.daemons, opts.affinity);
            const udp: UdpResult = await measureUdp(ip, opts.udpSeconds, opts.affinity);
            rec.tcp = tcp;
            rec.udp = udp;
          } finally {
            await stopServer();
          }
          if (mode.after) rec.after = await mode.after();
          log(`round ${r + 1} ${id}: ${rec.tcp!.gbps.toFixed(2)} Gbit/s (${rec.tcp!.retransmits} retr), ${Math.round(rec.udp!.pps)} pps`);
        } catch (err) {
          rec.error = err instanceof Error ? err.message : String(err);
          log(`round ${r + 1} ${id}: FAILED: ${rec.error}`);
          // A podnet datapath the agent does not have yet stays unavailable for the whole run.
          if (id === 'userspace' && /datapath|userspace/i.test(rec.error)) unavailable.set(id, rec.error);
        } finally {
          try {
            const notes = await mode.down();
            if (notes.length) rec.leftovers = notes;
            for (const h of HOSTS) {
              const now = await hostFootprint(h.name);
              if (now !== clean.get(h.name))
                throw new Error(`${h.name} is not as before the mode:\n--- before\n${clean.get(h.name)}\n--- after\n${now}`);
            }
          } catch (err) {
            // A mode that cannot be torn down would spoil every later one: stop here.
            rec.error = `${rec.error ? `${rec.error}; ` : ''}teardown: ${err instanceof Error ? err.message : String(err)}`;
            log(`round ${r + 1} ${id}: teardown FAILED, stopping: ${rec.error}`);
            stopping = true;
          }
          rec.seconds = (Date.now() - ts) / 1000;
          runs.push(rec);
          await settle();
        }
      }
    }
  } finally {
    log(`taking lab '${LAB}' down`);
    await labDown(LAB, log).catch((e: unknown) => log(`lab down: ${String(e)}`));
  }

  const loadEnd = uptime();
  const summary = summarize(runs, opts.modes, unavailable);
  const result = {
    schema: 'podnet.dev/bench-datapath/v1',
    startedAt: started.toISOString(),
    wallSeconds: (Date.now() - t0) / 1000,
    ...(interrupted ? { interrupted: true } : {}),
    options: opts,
    machine: machine(),
    ...(accel ? { vmHosts: accel } : {}),
    ...(guestKernels ? { guestKernels } : {}),
    load: { start: loadStart, end: loadEnd },
    hosts: { client: HOST_A, server: HOST_B },
    summary,
    runs,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const kind = `${opts.vm ? 'vm-' : ''}${opts.quick ? 'quick' : 'full'}`;
  const file = join(OUT_DIR, `datapath-${opts.vm ? 'vm-' : ''}${opts.quick ? 'quick-' : ''}${stamp}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(OUT_DIR, `datapath-${kind}-latest.json`), JSON.stringify(result, null, 2) + '\n');
  log(`load at end: ${loadEnd}`);
  log(`wrote ${file} (${result.wallSeconds.toFixed(1)} s)`);
  process.stdout.write(renderTable(summary, opts) + '\n');
  process.stdout.write(jsonLine(summary, opts.vm, guestKernels?.[0]?.replace(/^\S+: /, '')) + '\n');
  if (interrupted) return 130;
  return runs.some((r) => r.error && !unavailable.has(r.mode)) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:datapath: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
