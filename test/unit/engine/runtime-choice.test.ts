// Which Node.js runs the agent when the host's `node` is one someone other than root could
// replace (review finding 17): never the host's; the plan says why. Pure.
import type { Artifact } from '../../../src/engine/artifacts';
import { chooseRuntime, hostNodeProblem, RuntimeUnavailableError, type HostNode } from '../../../src/engine/runtime-choice';
import { runtimeStep } from '../../../src/engine/host-plan';

const bundled: Artifact = {
  name: 'node',
  localPath: '/dist/node',
  remotePath: '/usr/local/lib/podnet/runtimes/ab/node',
  sha256: 'ab',
  mode: 0o755,
};
const deployUsers: HostNode = {
  path: '/usr/local/bin/node',
  realPath: '/opt/tools/node-v20/bin/node',
  untrusted: [
    { path: '/opt/tools', uid: 1000, mode: '755' },
    { path: '/opt/tools/node-v20/bin', uid: 0, mode: '775' },
  ],
};

describe("an untrusted host's node", () => {
  it('is a problem naming each path, its owner and mode', () => {
    expect(hostNodeProblem(deployUsers)).toBe(
      '/usr/local/bin/node is /opt/tools/node-v20/bin/node, which someone other than root could replace: /opt/tools (uid 1000, mode 755), /opt/tools/node-v20/bin (uid 0, mode 775); the agent runs as root',
    );
  });

  it('counts a check that could not finish (find failed on the host) as untrusted', () => {
    const unchecked: HostNode = { path: '/usr/bin/node', realPath: '/usr/bin/node', untrusted: [], unchecked: true };
    expect(hostNodeProblem(unchecked)).toBe(
      '/usr/bin/node is /usr/bin/node, which root alone may not own (the check could not finish on the host: find failed, or more symlinks than it follows); the agent runs as root',
    );
    expect(chooseRuntime('auto', unchecked, bundled).kind).toBe('bundled');
  });

  it('makes auto ship the bundled runtime, saying why; host refuses', () => {
    expect(chooseRuntime('auto', deployUsers, bundled)).toEqual({ kind: 'bundled', artifact: bundled, why: hostNodeProblem(deployUsers) });
    expect(() => chooseRuntime('host', deployUsers, bundled)).toThrow(RuntimeUnavailableError);
    expect(() => chooseRuntime('host', deployUsers, bundled)).toThrow(
      /someone other than root could replace.*agentRuntime is 'host': make that node and every directory on its way owned by root/,
    );
  });

  it('replaces a link to it that an agent already runs on, with the why in the step', () => {
    expect(runtimeStep(chooseRuntime('auto', deployUsers, bundled), '/usr/local/bin/node')).toEqual({
      action: 'ship',
      artifact: bundled,
      why: hostNodeProblem(deployUsers),
    });
  });

  it('a host without node, or agentRuntime bundled, ships with that as the why', () => {
    expect(chooseRuntime('auto', undefined, bundled)).toMatchObject({ kind: 'bundled', why: 'the host has no `node` on its PATH' });
    expect(chooseRuntime('bundled', undefined, bundled)).toMatchObject({ kind: 'bundled', why: "agentRuntime is 'bundled'" });
  });
});
