// selectDatapath with fake factories: `auto` takes the first supported datapath in registry
// order, reports why each one before it was passed over (not supported vs probe failed), an
// explicit choice never falls back, and the chosen datapath is bound to the host.
import {
  toDatapathHost,
  type Datapath,
  type DatapathFactory,
  type DatapathHost,
  type DatapathKind,
  type ProbeResult,
} from '../../../../agent/datapaths/datapath';
import { NoDatapathError, selectDatapath } from '../../../../agent/datapaths/select';
import { desiredHostState, resolveNetwork } from '../../../../src/model';
import { referenceSpec } from '../../reference-network';

const host = toDatapathHost(desiredHostState(resolveNetwork(referenceSpec), 'node1'));

interface Fake extends DatapathFactory {
  readonly probed: DatapathHost[];
  readonly created: DatapathHost[];
}

function fake(kind: DatapathKind, probe: ProbeResult | Error): Fake {
  const probed: DatapathHost[] = [];
  const created: DatapathHost[] = [];
  return {
    kind,
    probed,
    created,
    probe: async (h) => {
      probed.push(h);
      if (probe instanceof Error) throw probe;
      return probe;
    },
    create: (h) => {
      created.push(h);
      const noop = async () => undefined;
      return {
        kind,
        ensure: noop,
        setPeers: noop,
        counters: async () => ({ peers: [], dropped: 0 }),
        close: noop,
        teardown: noop,
      } satisfies Datapath;
    },
  };
}

const log = () => undefined;

describe('selectDatapath', () => {
  it('auto: the first supported one, bound to the host; the ones before it reported by outcome', async () => {
    const kernel = fake('kernel', { outcome: 'unsupported', reason: 'no ipip module' });
    const ebpf = fake('ebpf', { outcome: 'failed', reason: 'Operation not permitted' });
    const userspace = fake('userspace', { outcome: 'supported' });
    const s = await selectDatapath('auto', host, [kernel, ebpf, userspace], log);
    expect(s.datapath.kind).toBe('userspace');
    expect(userspace.created).toEqual([host]);
    expect(kernel.created).toEqual([]);
    expect(s.passedOver).toEqual({ kernel: 'not supported: no ipip module', ebpf: 'probe failed: Operation not permitted' });
    expect(s.probes).toEqual({
      kernel: { outcome: 'unsupported', reason: 'no ipip module' },
      ebpf: { outcome: 'failed', reason: 'Operation not permitted' },
    });
  });

  it('auto: stops probing at the first supported one', async () => {
    const kernel = fake('kernel', { outcome: 'supported' });
    const ebpf = fake('ebpf', { outcome: 'supported' });
    const s = await selectDatapath('auto', host, [kernel, ebpf], log);
    expect(s.datapath.kind).toBe('kernel');
    expect(s.passedOver).toEqual({});
    expect(ebpf.probed).toEqual([]);
    expect(kernel.probed).toEqual([host]);
  });

  it('an explicit choice is honoured or fails with its own reason, never falling back', async () => {
    const kernel = fake('kernel', { outcome: 'supported' });
    const ebpf = fake('ebpf', { outcome: 'unsupported', reason: 'no BPF' });
    const err = await selectDatapath('ebpf', host, [kernel, ebpf], log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoDatapathError);
    expect((err as NoDatapathError).reasons).toEqual({ ebpf: 'not supported: no BPF' });
    expect((err as NoDatapathError).message).toBe('no datapath can run here: ebpf: not supported: no BPF');
    expect(kernel.probed).toEqual([]);
    expect((await selectDatapath('kernel', host, [kernel, ebpf], log)).datapath.kind).toBe('kernel');
  });

  it('a choice this agent does not carry is reported as not supported', async () => {
    const err = (await selectDatapath('userspace', host, [fake('kernel', { outcome: 'supported' })], log).catch(
      (e: unknown) => e,
    )) as NoDatapathError;
    expect(err.probes).toEqual({ userspace: { outcome: 'unsupported', reason: 'not built into this agent' } });
  });

  it('a probe that throws counts as failed, and none left is a NoDatapathError with every outcome', async () => {
    const err = (await selectDatapath(
      'auto',
      host,
      [fake('kernel', new Error('ip: not found')), fake('ebpf', { outcome: 'unsupported', reason: 'no BPF' })],
      log,
    ).catch((e: unknown) => e)) as NoDatapathError;
    expect(err).toBeInstanceOf(NoDatapathError);
    expect(err.reasons).toEqual({ kernel: 'probe failed: ip: not found', ebpf: 'not supported: no BPF' });
  });
});

describe('toDatapathHost', () => {
  it('takes every field from the desired state', () => {
    expect(host).toEqual({
      tunnelDevice: 'flannel.ipip',
      localAddress: '192.168.0.81',
      underlayDevice: 'eth0',
      mtu: 1480,
      tunnelAddress: '10.244.1.0/32',
      podCidr: '10.244.1.0/24',
      clusterCidr: '10.244.0.0/16',
    });
  });
});
