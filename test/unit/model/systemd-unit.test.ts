import { BPFFS_MOUNT_COMMAND, renderAgentUnit } from '../../../src/model';

describe('renderAgentUnit', () => {
  it("mounts the host's bpffs before the agent, outside its mount namespace, wherever the datapath may be ebpf (review finding 21)", () => {
    // `-+` and nsenter into PID 1's: in the host's mount namespace (the agent's own, or the one
    // systemd gives a `+` command, would keep the pins private to one run); a failure is the
    // agent's to report.
    for (const datapath of ['ebpf', 'auto'] as const)
      expect(renderAgentUnit('cluster', datapath).split('\n')).toContain(`ExecStartPre=-+${BPFFS_MOUNT_COMMAND}`);
    for (const datapath of ['kernel', 'userspace'] as const) expect(renderAgentUnit('cluster', datapath)).not.toContain('mount -t bpf');
    expect(BPFFS_MOUNT_COMMAND).toBe(
      `/usr/bin/nsenter --mount=/proc/1/ns/mnt /bin/sh -c 'grep -qs "^[^ ]* /sys/fs/bpf bpf " /proc/self/mounts || mount -t bpf bpf /sys/fs/bpf'`,
    );
  });
});
