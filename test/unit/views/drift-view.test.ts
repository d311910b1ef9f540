// `podnet drift`: the human and JSON renderings of one run, against golden files.
import { driftFromSnapshot } from '../../../src/engine/drift';
import { renderDrift } from '../../../src/views/drift-view';
import { driftJson, printJson } from '../../../src/views/json';
import { palette } from '../../../src/views/view';
import { artifacts, expectGolden, snapshot } from './scenario';

const drift = driftFromSnapshot(snapshot(), artifacts);

describe('drift view', () => {
  it("lists each host's differences, the unreadable host and the verdict (golden drift.txt)", () => {
    expectGolden('drift.txt', renderDrift(drift, palette(false)));
  });

  it('prints the drift document, host errors with their kind (golden drift.json)', () => {
    const text = printJson(driftJson(drift));
    expectGolden('drift.json', text);
    expect(JSON.parse(text).hosts[2].error).toEqual({ kind: 'host-key-unknown', message: expect.stringContaining('SHA256:') });
  });
});
