// Typed argument parsing for the engine commands: what each command reads, and the messages
// a user gets for a bad option (a CliError ending in the usage, never a stack trace).
import { HELP, parseApplyArgs, parseDestroyArgs, parseDriftArgs, parsePlanArgs } from '../../../src/cli/arguments';
import { CliError } from '../../../src/cli/cli-error';

describe('engine command arguments', () => {
  it('parses the shared options into EngineArgs with defaults', () => {
    expect(parseDriftArgs(['--node', 'node1', '--node', 'node2', '--json', '--lab', 'pn1'])).toEqual({
      engine: { nodes: ['node1', 'node2'], lab: 'pn1', view: 'json', parallel: 16, acceptNewHostKeys: false },
    });
    expect(
      parseApplyArgs([
        '--parallel',
        '4',
        '--revision',
        'r1',
        '--ssh-key',
        '/k',
        '--known-hosts',
        '/kh',
        '--accept-new-host-keys',
        '--manifest',
        'm.json',
      ]),
    ).toEqual({
      engine: { manifest: 'm.json', nodes: [], view: 'human', parallel: 4, sshKey: '/k', knownHosts: '/kh', acceptNewHostKeys: true },
      revision: 'r1',
      lockTimeoutMs: 0,
    });
  });

  it('tells online and offline plans apart, and --help from a run', () => {
    expect(parsePlanArgs(['--detailed-exitcode'])).toMatchObject({ mode: 'online', detailedExitCode: true });
    expect(parsePlanArgs(['--offline', '--node', 'node1'])).toEqual({ mode: 'offline', nodes: ['node1'], view: 'human' });
    expect(parsePlanArgs(['--help'])).toBe(HELP);
    expect(parseDestroyArgs(['-h'])).toBe(HELP);
  });

  it('refuses a bad --parallel and unknown options with the usage', () => {
    expect(() => parseDriftArgs(['--parallel', '0'])).toThrow(new CliError('--parallel 0: must be a whole number >= 1'));
    expect(() => parseDriftArgs(['--parallel', '1.5'])).toThrow(/must be a whole number/);
    expect(() => parsePlanArgs(['--frobnicate'])).toThrow(/Unknown option '--frobnicate'[\s\S]*usage: podnet plan/);
    expect(() => parsePlanArgs(['--offline', '--detailed-exitcode'])).toThrow(CliError);
  });

  it('checks the manifest-free destroy against the model before anything connects', () => {
    const base = ['--network', 'cluster', '--node', 'node3', '--address', '192.168.0.83'];
    expect(parseDestroyArgs([...base, '--if-revision', 'r7', '--ssh-port', '2222'])).toEqual({
      mode: 'address',
      network: 'cluster',
      node: 'node3',
      address: '192.168.0.83',
      sshUser: 'root',
      sshPort: 2222,
      view: 'human',
      ifRevision: 'r7',
      lockTimeoutMs: 0,
    });
    expect(() => parseDestroyArgs(['--address', '192.168.0.83'])).toThrow(/--network, --node and --address go together/);
    expect(() => parseDestroyArgs(['--network', 'a;rm -rf /', '--node', 'n', '--address', '192.168.0.83'])).toThrow(
      /not a valid network name/,
    );
    expect(() => parseDestroyArgs(['--network', 'c', '--node', 'n', '--address', '192.168.0.300'])).toThrow(/not an IPv4 address/);
    expect(() => parseDestroyArgs([...base, '--ssh-port', '70000'])).toThrow(/must be 1-65535/);
    expect(parseDestroyArgs(['--if-revision', 'r1'])).toMatchObject({ mode: 'manifest', ifRevision: 'r1' });
  });
});
