// Routing between pods needs net.ipv4.ip_forward=1. The reconciler notes the value it found
// in the ownership record before calling this, so teardown can put the host back as it was.
import { writeFile } from 'node:fs/promises';
import { IP_FORWARD_PATH } from '../../src/model';

export async function enableIpForward(): Promise<void> {
  await writeFile(IP_FORWARD_PATH, '1\n');
}
