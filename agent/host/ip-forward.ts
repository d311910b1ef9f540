// Routing between pods needs net.ipv4.ip_forward=1. The agent notes the value it found
// before changing it, so teardown can put the host back as it was.
import { mkdir, writeFile } from 'node:fs/promises';
import { IP_FORWARD_PATH, ipForwardMemoPath, RUN_DIR } from '../../src/model';

export async function enableIpForward(network: string): Promise<void> {
  await mkdir(RUN_DIR, { recursive: true });
  // 'wx': only the first change is remembered; a later repair must not overwrite it with 1.
  await writeFile(ipForwardMemoPath(network), '0\n', { flag: 'wx' }).catch(() => undefined);
  await writeFile(IP_FORWARD_PATH, '1\n');
}
