import { isChannelRefused, Slots } from '../../../src/ssh/ssh-connection';

describe('SSH channel slots', () => {
  it('run at most the limit at once, and one at a time once serialized', async () => {
    const slots = new Slots(3);
    let now = 0;
    let most = 0;
    const job = () =>
      slots.run(async () => {
        most = Math.max(most, ++now);
        await new Promise((r) => setTimeout(r, 10));
        now--;
      });
    await Promise.all(Array.from({ length: 6 }, job));
    expect(most).toBe(3);
    most = 0;
    slots.serialize();
    await Promise.all(Array.from({ length: 4 }, job));
    expect(most).toBe(1);
  });

  it("tells a refused channel (ssh2's open failure with a reason code) from other errors", () => {
    expect(isChannelRefused(Object.assign(new Error('(SSH) Channel open failure: open failed'), { reason: 1 }))).toBe(true);
    expect(isChannelRefused(new Error('(SSH) Channel open failure: server closed channel unexpectedly'))).toBe(false);
    expect(isChannelRefused(new Error('Not connected'))).toBe(false);
  });
});
