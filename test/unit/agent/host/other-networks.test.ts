// An agent trusts another network's status file only while the pid it names is that network's agent.
import { isAgentOf } from '../../../../agent/host/other-networks';

describe('other running networks', () => {
  it("takes a status file's pid for that network's agent only when its command line runs the agent bundle with its config", () => {
    const agent = (config: string) =>
      ['/usr/local/lib/podnet/node', '/usr/local/lib/podnet/podnet-agent.js', 'run', '--config', config, ''].join('\0');
    expect(isAgentOf(agent('/etc/podnet/blue.json'), 'blue')).toBe(true);
    // The pid reused by something else after blue's agent was stopped (its status file left).
    expect(isAgentOf(['/usr/sbin/sshd', '-D', ''].join('\0'), 'blue')).toBe(false);
    expect(isAgentOf('', 'blue')).toBe(false);
    // Another network's agent (the status file says blue, the pid is green's now).
    expect(isAgentOf(agent('/etc/podnet/green.json'), 'blue')).toBe(false);
  });
});
