// Live-state reads that have no other home in the unit tests.
import { parseRxFrameErrors } from '../../../src/host/live-state';

describe('parseRxFrameErrors', () => {
  it("reads stats64.rx.frame_errors of iproute2's `ip -json -s -s link show` (where ip tunnels count ECN drops)", () => {
    const rx = {
      bytes: 1,
      packets: 1,
      errors: 4,
      dropped: 0,
      over_errors: 0,
      multicast: 0,
      length_errors: 0,
      crc_errors: 0,
      frame_errors: 4,
    };
    expect(parseRxFrameErrors(JSON.stringify([{ ifname: 'flannel.ipip', stats64: { rx, tx: {} } }]))).toBe(4);
  });
  it('is 0 without the detailed statistics (one -s) and for no output', () => {
    expect(parseRxFrameErrors(JSON.stringify([{ ifname: 'flannel.ipip', stats64: { rx: { bytes: 1, errors: 0 } } }]))).toBe(0);
    expect(parseRxFrameErrors('')).toBe(0);
  });
});
