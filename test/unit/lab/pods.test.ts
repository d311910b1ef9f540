import { desiredHostState, resolveNetwork } from '../../../src/model';
import { conflistFromSubnetEnv, firstConfigFile, parseConfList, pluginStdin } from '../../../src/lab/pods';
import { flavourPackages, baseHash, BASE_PACKAGES } from '../../../src/lab/base-image';
import { referenceSpec } from '../reference-network';

const node1 = desiredHostState(resolveNetwork(referenceSpec), 'node1');

describe("the lab's CNI runtime", () => {
  const list = parseConfList(node1.cni.content, node1.cni.path);

  it('hands each plugin its own keys with the list name and version, chaining results as libcni does', () => {
    const bridge = JSON.parse(
      pluginStdin(list, 0, undefined, { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }),
    ) as Record<string, unknown>;
    expect(bridge).toMatchObject({ type: 'bridge', name: 'cluster', cniVersion: '1.0.0', bridge: 'cni0' });
    expect(bridge).not.toHaveProperty('prevResult');
    expect(bridge).not.toHaveProperty('runtimeConfig'); // bridge declares no capabilities
    const prev = { cniVersion: '1.0.0', ips: [{ address: '10.244.1.2/24' }] };
    const portmap = JSON.parse(
      pluginStdin(list, 1, prev, { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }),
    ) as Record<string, unknown>;
    expect(portmap).toMatchObject({
      type: 'portmap',
      name: 'cluster',
      prevResult: prev,
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
    });
    expect(JSON.parse(pluginStdin(list, 1, prev, {}))).not.toHaveProperty('runtimeConfig');
  });

  it('reads a single-plugin .conf as a list of one and refuses what is not a config', () => {
    expect(parseConfList('{"cniVersion":"0.4.0","name":"x","type":"bridge"}', 'x.conf').plugins.map((p) => p.type)).toEqual(['bridge']);
    expect(() => parseConfList('{"name":"x"}', 'x.conf')).toThrow(/x.conf is not a CNI network config/);
    expect(() => parseConfList('{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../../bin/sh"}]}', 'x.conflist')).toThrow(
      /not a CNI network config/,
    );
    expect(() => parseConfList('nope', 'y.conf')).toThrow(/y.conf is not JSON/);
  });

  it('uses the first config file of the directory, as kubelet and containerd do', () => {
    expect(firstConfigFile(['99-loopback.conf', '10-podnet-cluster.conflist', 'README', '.00-hidden.conf'])).toBe(
      '10-podnet-cluster.conflist',
    );
    expect(firstConfigFile(['README'])).toBeUndefined();
  });

  it('without an installed config, derives the one podnet would install from subnet.env', () => {
    const text = conflistFromSubnetEnv(node1.subnetEnv.content);
    expect(text).toBe(node1.cni.content.replace('"name": "cluster"', '"name": "cbr0"'));
    expect(() => conflistFromSubnetEnv('FLANNEL_NETWORK=10.244.0.0/16\n')).toThrow(/lacks/);
  });
});

describe('lab base flavours', () => {
  it('adds extra packages after the base ones, sorted, each flavour its own cache key', () => {
    expect(flavourPackages(['podman', 'nodejs', 'buildah'])).toEqual([...BASE_PACKAGES, 'buildah', 'podman']);
    expect(baseHash(['podman'])).not.toBe(baseHash());
    expect(baseHash(['podman', 'podman'])).toBe(baseHash(['podman']));
    expect(() => flavourPackages(['x; rm -rf /'])).toThrow(/invalid Debian package name/);
  });
});
