import { ChangeWatcher } from '../../../../agent/reconcile/change-watcher';

describe('ChangeWatcher debounce', () => {
  it('reports every source that fired within the window, so a tc event is never hidden behind an nft one', async () => {
    const seen: string[][] = [];
    const watcher = new ChangeWatcher((sources) => seen.push([...sources].sort()), 20);
    const fire = (watcher as unknown as { fire(s: string): void }).fire.bind(watcher);
    fire('nft');
    fire('tc');
    fire('nft');
    await new Promise((r) => setTimeout(r, 60));
    fire('ip');
    await new Promise((r) => setTimeout(r, 60));
    watcher.stop();
    expect(seen).toEqual([['nft', 'tc'], ['ip']]);
  });
});
