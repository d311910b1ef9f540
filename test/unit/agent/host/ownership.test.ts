// The ownership record notes every address podnet puts on a link it found, so a clusterCidr
// change's old bridge address is podnet's to take back, and forgets one once taken back.
import { Ownership } from '../../../../agent/host/ownership';
import { EMPTY_RECORD } from '../../../../src/model';

describe('ownership record', () => {
  it('an adopted link gets each address podnet adds noted, and forgets the ones taken back', async () => {
    const o = Ownership.inMemory();
    await o.adopted('cni0', '10.244.1.1/24', false);
    await o.adopted('cni0', '10.244.1.1/24', true);
    await o.adopted('cni0', '10.246.1.1/24', false);
    expect(o.record.adoptedLinks).toEqual([{ name: 'cni0', addedAddresses: ['10.244.1.1/24', '10.246.1.1/24'] }]);
    await o.removedAddresses('cni0', ['10.244.1.1/24']);
    expect(o.record.adoptedLinks).toEqual([{ name: 'cni0', addedAddresses: ['10.246.1.1/24'] }]);
  });

  it('a link found holding the address already notes nothing; one podnet created is never adopted', async () => {
    const o = Ownership.inMemory();
    await o.adopted('cni0', '10.244.1.1/24', true);
    expect(o.record.adoptedLinks).toEqual([{ name: 'cni0', addedAddresses: [] }]);
    const created = Ownership.inMemory({ ...EMPTY_RECORD, createdLinks: ['cni0'] });
    await created.adopted('cni0', '10.246.1.1/24', false);
    expect(created.record.adoptedLinks).toEqual([]);
  });

  it("a link podnet created notes the addresses podnet wants on it (not an admin's), and forgets the ones taken back", async () => {
    const o = Ownership.inMemory();
    await o.created('cni0');
    expect(o.record.createdLinkAddresses).toEqual({ cni0: [] });
    await o.adopted('cni0', '10.244.1.1/24', true);
    await o.adopted('cni0', '10.244.1.1/24', true);
    await o.adopted('cni0', '10.246.1.1/24', false);
    expect(o.record.createdLinkAddresses).toEqual({ cni0: ['10.244.1.1/24', '10.246.1.1/24'] });
    await o.removedAddresses('cni0', ['10.244.1.1/24']);
    expect(o.record).toEqual({ ...EMPTY_RECORD, createdLinks: ['cni0'], createdLinkAddresses: { cni0: ['10.246.1.1/24'] } });
  });
});
